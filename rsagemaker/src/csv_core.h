/* The CSV reader's and writer's own work, in plain C (no R API): csv.c gives it R's vectors, and
 * the fuzzing harness (rsagemaker/fuzz) drives it directly. */
#ifndef RSM_CSV_CORE_H
#define RSM_CSV_CORE_H

#include <stddef.h>
#include <stdint.h>

enum csv_field_kind { CSV_FIELD_NA, CSV_FIELD_NUMBER, CSV_FIELD_OTHER };

/* One field [s, end): NA ("" or "NA"), a plain decimal number (its nearest double, and whether it
 * is a whole number that fits an R integer, as type.convert would type it), or anything else. */
enum csv_field_kind csv_read_field(const char *s, const char *end, double *value, int *whole);

/* The rows (lines) of a body and the fields of its first line; 0 when the body cannot be plain
 * numbers of that shape (empty, more fields than bytes, or more than `max_columns` fields). */
int csv_numeric_shape(const char *start, const char *stop, size_t max_columns, size_t *rows,
                      size_t *columns);

/* Read a body of `rows` x `columns` plain numbers into cells[j * rows + i] (NA as `na`); whole[j]:
 * every number of column j is whole and fits an integer; numbers[j]: column j has a number. 0 when
 * the body is anything else (a blank line, a ragged row, a field that is no plain number). */
int csv_read_numbers(const char *start, const char *stop, size_t rows, size_t columns, double na,
                     double *cells, int *whole, int *numbers);

/* The shape of a body of plain fields: no double quote, tab or lone CR (CRLF is a line break),
 * no blank or all-blank line, every line as many fields as the first (at most `max_columns`). 0 for
 * any other body (read.csv reads those). */
int csv_plain_shape(const char *start, const char *stop, size_t max_columns, size_t *rows, size_t *columns);

/* Each field of a plain body (csv_plain_shape's), blanks around it stripped, as read.csv reads it. */
typedef void (*csv_field_visitor)(void *state, size_t row, size_t column, const char *field, size_t length);
void csv_plain_fields(const char *start, const char *stop, csv_field_visitor visit, void *state);

/* The fields of the widest record, quotes understood (a quoted comma or line break is no
 * separator); counting stops once past `limit` (the result is then limit + 1). */
size_t csv_widest_record(const char *start, const char *stop, size_t limit);

/* A finite x as the shortest of 15, 16 or 17 significant digits that reads back as x (printf's
 * %.15g, %.16g or %.17g); 0 when R's search must decide (subnormals, some powers of two) and for
 * NaN and the infinities. `buffer` holds CSV_NUMBER_CHARS. */
#define CSV_NUMBER_CHARS 40
int csv_shortest_text(double x, char *buffer);

/* Text being written. Memory comes from `alloc` and is never freed here (R_alloc's way: csv.c's
 * arena is R's, the harness's its own). */
typedef struct {
  char *data;
  size_t used, capacity;
  void *(*alloc)(size_t size, void *context);
  void *context;
} csv_text;

void csv_reserve(csv_text *text, size_t more);
void csv_append(csv_text *text, const char *bytes, size_t length);
/* A text field as data.table's fwrite writes it (quote = "auto"): in double quotes, inner ones
 * doubled, when it holds a comma, a quote or a line break; as it is otherwise. */
void csv_append_field(csv_text *text, const char *field, size_t length);

#endif
