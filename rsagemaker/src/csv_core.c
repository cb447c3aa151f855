/* The CSV reader's and writer's own work in plain C (csv_core.h); csv.c is its R side. */
#include "csv_core.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 10^0 .. 10^22: each exactly a double. */
static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define LONGEST_FIELD 400 /* longer numeric texts go to the general path */

/* mantissa x 10^scale where that is one IEEE operation on exact operands (Clinger's fast path:
 * mantissa < 2^53, |scale| <= 22), hence correctly rounded; 0 where it is not. */
static int exact_decimal(uint64_t mantissa, int scale, double *value) {
  if (mantissa >= ((uint64_t)1 << 53) || scale < -22 || scale > 22) return 0;
  *value = scale >= 0 ? (double)mantissa * POWERS_OF_TEN[scale] : (double)mantissa / POWERS_OF_TEN[-scale];
  return 1;
}

static int is_blank(char c) { return c == ' ' || c == '\t'; }

static int copy_text(char *buffer, const char *text) {
  strcpy(buffer, text);
  return (int)strlen(text);
}

enum csv_field_kind csv_read_field(const char *s, const char *end, double *value, int *whole) {
  while (s < end && is_blank(*s)) s++;
  while (end > s && is_blank(end[-1])) end--;
  if (s == end || (end - s == 2 && s[0] == 'N' && s[1] == 'A')) return CSV_FIELD_NA;
  if (end - s > LONGEST_FIELD) return CSV_FIELD_OTHER;
  const char *p = s;
  int negative = 0;
  if (*p == '-') {
    negative = 1;
    p++;
  }
  uint64_t mantissa = 0;
  int significant = 0, digits = 0, fraction = 0, point = 0, exponent = 0, has_exponent = 0;
  for (; p < end; p++) {
    if (*p >= '0' && *p <= '9') {
      digits++;
      if (point) fraction++;
      if (significant > 0 || *p != '0') {
        if (significant < 19) mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        significant++;
      }
    } else if (*p == '.' && !point) {
      point = 1;
    } else {
      break;
    }
  }
  if (digits == 0) return CSV_FIELD_OTHER;
  if (p < end && (*p == 'e' || *p == 'E')) {
    has_exponent = 1;
    p++;
    int exponent_negative = 0, exponent_digits = 0;
    if (p < end && (*p == '-' || *p == '+')) exponent_negative = *p++ == '-';
    for (; p < end && *p >= '0' && *p <= '9'; p++, exponent_digits++) {
      if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
    }
    if (exponent_digits == 0) return CSV_FIELD_OTHER;
    if (exponent_negative) exponent = -exponent;
  }
  if (p != end) return CSV_FIELD_OTHER;

  *whole = !point && !has_exponent && significant <= 10 && mantissa <= INT_MAX;
  int scale = exponent - fraction; /* the value is mantissa * 10^scale */
  if (significant == 0) {
    *value = negative ? -0.0 : 0.0; /* "-0" is -0, as strtod and exact_doubles read it */
    return CSV_FIELD_NUMBER;
  }
  if (significant > 19 || !exact_decimal(mantissa, scale, value)) { /* past 19 digits: cut */
    char text[LONGEST_FIELD + 1]; /* else C's strtod, which rounds correctly (R's reader does not) */
    memcpy(text, s, (size_t)(end - s));
    text[end - s] = '\0';
    *value = strtod(text, NULL);
    if (!isfinite(*value)) return CSV_FIELD_OTHER; /* an overflow: R's reading decides */
    return CSV_FIELD_NUMBER;
  }
  if (negative) *value = -*value;
  return CSV_FIELD_NUMBER;
}

int csv_numeric_shape(const char *start, const char *stop, size_t max_columns, size_t *rows,
                      size_t *columns) {
  if (start == stop) return 0;
  size_t lines = 0, fields = 1;
  for (const char *p = start; p < stop; p++) {
    if (*p == '\n') lines++;
  }
  if (stop[-1] != '\n') lines++;
  for (const char *p = start; p < stop && *p != '\n'; p++) {
    if (*p == ',' && ++fields > max_columns) return 0;
  }
  /* every field takes at least its separator: more fields than that is a ragged body (and no
   * reason to allocate them) */
  if ((double)fields * (double)lines > (double)(stop - start) + (double)lines) return 0;
  *rows = lines;
  *columns = fields;
  return 1;
}

int csv_read_numbers(const char *start, const char *stop, size_t rows, size_t columns, double na,
                     double *cells, int *whole, int *numbers) {
  for (size_t j = 0; j < columns; j++) whole[j] = 1, numbers[j] = 0;
  const char *p = start;
  for (size_t i = 0; i < rows; i++) {
    const char *line_end = memchr(p, '\n', (size_t)(stop - p));
    const char *next = line_end == NULL ? stop : line_end + 1;
    if (line_end == NULL) line_end = stop;
    if (line_end > p && line_end[-1] == '\r') line_end--; /* CRLF; a CR elsewhere is no number */
    const char *q = p;
    while (q < line_end && is_blank(*q)) q++;
    if (q == line_end) return 0; /* a blank line: read.csv skips it */
    for (size_t j = 0; j < columns; j++) {
      const char *field_end = memchr(p, ',', (size_t)(line_end - p));
      if (field_end == NULL) field_end = line_end;
      if ((field_end == line_end) != (j == columns - 1)) return 0; /* ragged row */
      double value;
      int is_whole = 0;
      switch (csv_read_field(p, field_end, &value, &is_whole)) {
      case CSV_FIELD_NA:
        cells[j * rows + i] = na;
        break;
      case CSV_FIELD_NUMBER:
        cells[j * rows + i] = value;
        numbers[j] = 1;
        if (!is_whole) whole[j] = 0;
        break;
      default:
        return 0;
      }
      p = field_end + 1;
    }
    p = next;
  }
  return 1;
}

/* The end of a line of a plain body: it counts when it holds something and as many fields as the
 * first line. */
typedef struct {
  size_t lines, fields, expected;
  int content;
} plain_count;

static int end_plain_line(plain_count *count) {
  if (!count->content) return 0; /* a blank line: read.csv skips it */
  if (count->lines == 0) count->expected = count->fields;
  if (count->fields != count->expected) return 0; /* ragged */
  count->lines++;
  count->fields = 1;
  count->content = 0;
  return 1;
}

int csv_plain_shape(const char *start, const char *stop, size_t max_columns, size_t *rows, size_t *columns) {
  plain_count count = {0, 1, 0, 0};
  for (const char *p = start; p < stop; p++) {
    char c = *p;
    if (c == '"' || c == '\t') return 0;
    if (c == '\r') {
      if (p + 1 == stop || p[1] != '\n') return 0; /* a CR only in CRLF */
    } else if (c == ',') {
      count.content = 1;
      if (++count.fields > max_columns) return 0;
    } else if (c == '\n') {
      if (!end_plain_line(&count)) return 0;
    } else if (c != ' ') {
      count.content = 1;
    }
  }
  if (stop > start && stop[-1] != '\n' && !end_plain_line(&count)) return 0;
  if (count.lines == 0) return 0;
  *rows = count.lines;
  *columns = count.expected;
  return 1;
}

void csv_plain_fields(const char *start, const char *stop, csv_field_visitor visit, void *state) {
  size_t row = 0, column = 0;
  const char *field = start;
  for (const char *p = start; p <= stop; p++) {
    int line_end = p == stop || *p == '\n';
    if (!line_end && *p != ',') continue;
    if (p == stop && p == field && column == 0) break; /* after the last line break */
    const char *end = p;
    if (line_end && end > field && end[-1] == '\r') end--;
    const char *begin = field;
    while (begin < end && *begin == ' ') begin++;
    while (end > begin && end[-1] == ' ') end--;
    visit(state, row, column, begin, (size_t)(end - begin));
    field = p + 1;
    if (line_end) {
      row++;
      column = 0;
    } else {
      column++;
    }
  }
}

size_t csv_widest_record(const char *start, const char *stop, size_t limit) {
  size_t widest = 0, fields = 1;
  int quoted = 0, content = 0;
  for (const char *p = start; p < stop; p++) {
    char c = *p;
    if (c == '"') {
      quoted = !quoted; /* a doubled quote inside quotes toggles twice */
      content = 1;
    } else if (quoted) {
      continue;
    } else if (c == ',') {
      content = 1;
      if (++fields > limit) return limit + 1;
    } else if (c == '\n') {
      if (content && fields > widest) widest = fields;
      fields = 1;
      content = 0;
    } else if (!is_blank(c) && c != '\r') {
      content = 1;
    }
  }
  if (content && fields > widest) widest = fields;
  return widest;
}

/* ---- writing ---------------------------------------------------------------------------------- */

/* The value d1.d2d3... x 10^exponent of `count` decimal digits (characters), written as printf's
 * %.<count>g writes it: fixed notation when -4 <= exponent < count, else d.ddde+XX; trailing zeros
 * (and a bare point) dropped. */
static int format_g(int negative, const char *digits, int count, int exponent, char *out) {
  int precision = count;
  while (count > 1 && digits[count - 1] == '0') count--;
  char *p = out;
  if (negative) *p++ = '-';
  if (exponent < -4 || exponent >= precision) {
    *p++ = digits[0];
    if (count > 1) {
      *p++ = '.';
      memcpy(p, digits + 1, (size_t)(count - 1));
      p += count - 1;
    }
    p += sprintf(p, "e%c%02d", exponent < 0 ? '-' : '+', abs(exponent));
  } else if (exponent < 0) {
    *p++ = '0';
    *p++ = '.';
    for (int i = -1; i > exponent; i--) *p++ = '0';
    memcpy(p, digits, (size_t)count);
    p += count;
  } else {
    for (int i = 0; i <= exponent; i++) *p++ = i < count ? digits[i] : '0';
    if (count > exponent + 1) {
      *p++ = '.';
      memcpy(p, digits + exponent + 1, (size_t)(count - exponent - 1));
      p += count - exponent - 1;
    }
  }
  *p = '\0';
  return (int)(p - out);
}

/* Whether the decimal digits[0..count) x 10^scale read back as x (exact_decimal, else C's
 * correctly rounded strtod). */
static int reads_back(double x, const char *digits, int count, int scale) {
  uint64_t mantissa = 0;
  for (int i = 0; i < count; i++) mantissa = mantissa * 10 + (uint64_t)(digits[i] - '0');
  double magnitude = fabs(x), value;
  if (exact_decimal(mantissa, scale, &value)) return value == magnitude;
  char text[48];
  snprintf(text, sizeof text, "%.*se%d", count, digits, scale);
  return strtod(text, NULL) == magnitude;
}

/* |x| to `count` significant digits, correctly rounded, as digits and a decimal exponent. */
static int printf_digits(double x, int count, char *digits) {
  char text[40];
  snprintf(text, sizeof text, "%.*e", count - 1, fabs(x)); /* d.ddd...e+XX */
  digits[0] = text[0];
  memcpy(digits + 1, text + 2, (size_t)(count - 1));
  return atoi(text + count + 2);
}

/* serving.R's shortest_doubles, done in C: one printf of 17 digits, rounded here to 16 and 15, each
 * checked; printf again only where the 17 digits end in 5 or 50, too few to round by. A subnormal
 * number may need fewer digits, and a power of two whose nearest 16-digit text misses may have one
 * above it that fits: those are R's to decide (0). */
int csv_shortest_text(double x, char *buffer) {
  if (x == 0) return copy_text(buffer, signbit(x) ? "-0" : "0");
  if (!isfinite(x) || fabs(x) < DBL_MIN) return 0;
  char digits[17];
  int exponent = printf_digits(x, 17, digits);
  for (int count = 15; count <= 16; count++) {
    char rounded[17];
    int rounded_exponent = exponent;
    if (digits[count] == '5' && (count == 16 || digits[16] == '0')) {
      rounded_exponent = printf_digits(x, count, rounded);
    } else {
      memcpy(rounded, digits, (size_t)count);
      if (digits[count] >= '5') { /* round up, carrying */
        int i = count - 1;
        while (i >= 0 && rounded[i] == '9') rounded[i--] = '0';
        if (i >= 0) {
          rounded[i]++;
        } else {
          rounded[0] = '1';
          rounded_exponent++;
        }
      }
    }
    if (reads_back(x, rounded, count, rounded_exponent - count + 1)) {
      return format_g(x < 0, rounded, count, rounded_exponent, buffer);
    }
  }
  int binary_exponent;
  if (fabs(frexp(x, &binary_exponent)) == 0.5) return 0;
  return format_g(x < 0, digits, 17, exponent, buffer);
}

void csv_reserve(csv_text *text, size_t more) {
  if (text->used + more <= text->capacity) return;
  size_t capacity = 2 * text->capacity + more;
  char *grown = (char *)text->alloc(capacity, text->context);
  /* the first reserve has nothing to copy (and no buffer: memcpy from NULL is undefined) */
  if (text->used > 0) memcpy(grown, text->data, text->used);
  text->data = grown;
  text->capacity = capacity;
}

void csv_append(csv_text *text, const char *bytes, size_t length) {
  if (length == 0) return;
  csv_reserve(text, length);
  memcpy(text->data + text->used, bytes, length);
  text->used += length;
}

void csv_append_field(csv_text *text, const char *field, size_t length) {
  int quote = 0;
  for (size_t i = 0; i < length && !quote; i++) {
    char c = field[i];
    quote = c == ',' || c == '"' || c == '\n' || c == '\r';
  }
  if (!quote) {
    csv_append(text, field, length);
    return;
  }
  csv_reserve(text, 2 * length + 2);
  text->data[text->used++] = '"';
  for (size_t i = 0; i < length; i++) {
    if (field[i] == '"') text->data[text->used++] = '"';
    text->data[text->used++] = field[i];
  }
  text->data[text->used++] = '"';
}
