/* libFuzzer harness for the CSV reader and writer (src/csv_core.c), the C behind the default
 * text/csv input_fn and output_fn.
 *
 * The first byte picks what the rest is:
 *   0  a request body: the numeric reader (shape, then numbers), the plain-field splitter and the
 *      widest-record count, each checked against a reference: every number read is the nearest
 *      double to its text (C's strtod, correctly rounded), every plain field is the text between
 *      its separators with the blanks around it stripped, the counts agree with each other;
 *   1  doubles to write (8 bytes each): each text written reads back (strtod) as the same double,
 *      in at most 17 significant digits, and no shorter text of 15 or 16 digits was missed;
 *   2  text fields to write (split at NUL bytes): each reads back, quotes undone, as it was, and is
 *      quoted exactly when it holds a comma, a quote or a line break.
 * The writer's buffer grows from nothing (the first reserve has no buffer to copy: UBSan checks
 * the memcpy), in an arena the harness frees after each input (LeakSanitizer checks the rest).
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_core.h"
#include "fuzz_arena.h"


static int is_blank(char c) { return c == ' ' || c == '\t'; }

/* ---- reading ------------------------------------------------------------------------------------ */

/* A field the reader took for a number is a plain decimal: strtod reads the same text, exactly. */
static void check_field(const char *s, const char *end) {
  double value;
  int whole = 0;
  enum csv_field_kind kind = csv_read_field(s, end, &value, &whole);
  if (kind != CSV_FIELD_NUMBER) return;
  while (s < end && is_blank(*s)) s++;
  while (end > s && is_blank(end[-1])) end--;
  size_t n = (size_t)(end - s);
  char *text = (char *)malloc(n + 1);
  memcpy(text, s, n);
  text[n] = '\0';
  char *stop;
  double reference = strtod(text, &stop);
  assert(stop == text + n);
  assert(value == reference && signbit(value) == signbit(reference));
  if (whole) assert(value == floor(value) && fabs(value) <= 2147483647.0);
  free(text);
}

typedef struct {
  const char *start, *stop;
  size_t rows, columns, visits, next_row, next_column;
} plain_check;

static void visit_plain(void *state, size_t row, size_t column, const char *field, size_t length) {
  plain_check *check = (plain_check *)state;
  assert(row == check->next_row && column == check->next_column);
  assert(row < check->rows && column < check->columns);
  assert(field >= check->start && field + length <= check->stop);
  for (size_t i = 0; i < length; i++) assert(field[i] != ',' && field[i] != '\n' && field[i] != '"');
  if (length > 0) assert(field[0] != ' ' && field[length - 1] != ' ');
  check->visits++;
  if (column + 1 == check->columns) {
    check->next_row++;
    check->next_column = 0;
  } else {
    check->next_column++;
  }
}

static void read_body(const char *start, size_t size) {
  const char *stop = start + size;
  size_t limit = size % 7 == 0 ? 3 : 50000;

  size_t rows, columns;
  if (csv_numeric_shape(start, stop, limit, &rows, &columns)) {
    assert(rows > 0 && columns > 0 && columns <= limit && rows * columns <= size + rows);
    double *cells = (double *)malloc(rows * columns * sizeof(double));
    int *whole = (int *)malloc(columns * sizeof(int));
    int *numbers = (int *)malloc(columns * sizeof(int));
    if (csv_read_numbers(start, stop, rows, columns, NAN, cells, whole, numbers)) {
      /* every field of every line, found again by a plain split, reads the same */
      const char *p = start;
      for (size_t i = 0; i < rows; i++) {
        const char *line_end = memchr(p, '\n', (size_t)(stop - p));
        if (line_end == NULL) line_end = stop;
        const char *end = line_end > p && line_end[-1] == '\r' ? line_end - 1 : line_end;
        for (size_t j = 0; j < columns; j++) {
          const char *comma = memchr(p, ',', (size_t)(end - p));
          const char *field_end = comma == NULL ? end : comma;
          check_field(p, field_end);
          p = field_end + 1;
        }
        p = line_end + 1;
      }
    }
    free(cells);
    free(whole);
    free(numbers);
  }

  size_t widest = csv_widest_record(start, stop, limit);
  assert(widest <= limit + 1);

  if (csv_plain_shape(start, stop, limit, &rows, &columns)) {
    assert(columns <= limit && columns <= widest);
    plain_check check = {start, stop, rows, columns, 0, 0, 0};
    csv_plain_fields(start, stop, visit_plain, &check);
    assert(check.visits == rows * columns);
  }
}

/* ---- writing ------------------------------------------------------------------------------------ */

static void write_numbers(const uint8_t *data, size_t size) {
  arena memory = {NULL, 0, 0};
  csv_text text = {NULL, 0, 0, arena_alloc, &memory};
  for (size_t at = 0; at + 8 <= size; at += 8) {
    double x;
    memcpy(&x, data + at, 8);
    char field[CSV_NUMBER_CHARS];
    int length = csv_shortest_text(x, field);
    if (length == 0) {
      assert(!isfinite(x) || fabs(x) < 2.2250738585072014e-308 || fabs(frexp(x, &(int){0})) == 0.5);
      continue;
    }
    assert(length < CSV_NUMBER_CHARS && (size_t)length == strlen(field));
    char *stop;
    double back = strtod(field, &stop);
    assert(stop == field + length);
    assert(back == x && signbit(back) == signbit(x));
    /* no shorter text of 15 digits reads back when 16 or 17 were written */
    char shorter[40];
    snprintf(shorter, sizeof shorter, "%.15g", x);
    if (strtod(shorter, NULL) == x) assert((size_t)length <= strlen(shorter));
    csv_append(&text, field, (size_t)length);
    csv_append(&text, ",", 1);
  }
  arena_free(&memory);
}

static void write_texts(const uint8_t *data, size_t size) {
  arena memory = {NULL, 0, 0};
  csv_text text = {NULL, 0, 0, arena_alloc, &memory};
  size_t start = 0;
  while (start <= size) {
    const uint8_t *nul = memchr(data + start, 0, size - start);
    size_t length = nul == NULL ? size - start : (size_t)(nul - (data + start));
    const char *field = (const char *)data + start;
    size_t before = text.used;
    csv_append_field(&text, field, length);
    size_t written_len = text.used - before;
    const char *written = written_len > 0 ? text.data + before : "";
    int must_quote = 0;
    for (size_t i = 0; i < length; i++) {
      char c = field[i];
      must_quote |= c == ',' || c == '"' || c == '\n' || c == '\r';
    }
    if (!must_quote) {
      assert(written_len == length && (length == 0 || memcmp(written, field, length) == 0));
    } else {
      assert(written_len >= length + 2 && written[0] == '"' && written[written_len - 1] == '"');
      size_t k = 0;
      for (size_t i = 1; i + 1 < written_len; i++, k++) {
        if (written[i] == '"') {
          assert(written[i + 1] == '"' && i + 2 < written_len);
          i++;
        }
        assert(k < length && written[i] == field[k]);
      }
      assert(k == length);
    }
    if (nul == NULL) break;
    start += length + 1;
  }
  arena_free(&memory);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
  if (size < 1) return 0;
  const uint8_t *data = input + 1;
  size -= 1;
  /* each case in a block of its own, so that ASan sees a read past its end */
  uint8_t *copy = (uint8_t *)malloc(size ? size : 1);
  memcpy(copy, data, size);
  switch (input[0] % 3) {
  case 0: read_body((const char *)copy, size); break;
  case 1: write_numbers(copy, size); break;
  default: write_texts(copy, size); break;
  }
  free(copy);
  return 0;
}
