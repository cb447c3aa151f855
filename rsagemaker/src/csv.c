/* The fast path of the default CSV handlers (serving.R): numeric CSV read in one pass, and
 * numbers, text and factors written in one, every double exact. Anything this path does not take (quotes, text, blank lines, ragged rows,
 * Inf/NaN/hex, a leading '+', a column with no number) answers NULL, and serving.R's general path
 * (fread or read.csv, then exact_doubles) reads the body with read.csv's meaning instead; the two
 * agree on every body this path takes. Writing likewise leaves dates, times, subnormal numbers and
 * the rare power of two that needs R's search to the general path. The reading and writing
 * themselves are csv_core.c's (plain C, fuzzed by rsagemaker/fuzz); this is their R side.
 */
#include <R.h>
#include <Rinternals.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "csv_core.h"

/* A numeric CSV body (character(1), or its bytes as a raw vector) as a list of columns (integer
 * where every value is a whole number that fits, else double), or NULL for the general path (also
 * for a first line of more than `max_columns` fields: the general path refuses it). Each column is
 * made once, of its final type, from the numbers read into one scratch array. */
SEXP rsm_read_numeric_csv(SEXP body, SEXP max_columns) {
  const char *start, *stop;
  if (TYPEOF(body) == RAWSXP) {
    start = (const char *)RAW(body);
    stop = start + XLENGTH(body);
  } else if (TYPEOF(body) == STRSXP && XLENGTH(body) == 1 && STRING_ELT(body, 0) != NA_STRING) {
    start = CHAR(STRING_ELT(body, 0));
    stop = start + XLENGTH(STRING_ELT(body, 0));
  } else {
    return R_NilValue;
  }
  size_t rows, columns, limit = (size_t)asReal(max_columns);
  if (!csv_numeric_shape(start, stop, limit, &rows, &columns) || columns > INT_MAX) return R_NilValue;

  double *cells = (double *)R_alloc(rows * columns, sizeof(double));
  int *whole = (int *)R_alloc(columns, sizeof(int));
  int *numbers = (int *)R_alloc(columns, sizeof(int));
  if (!csv_read_numbers(start, stop, rows, columns, NA_REAL, cells, whole, numbers)) return R_NilValue;
  for (size_t j = 0; j < columns; j++) {
    if (!numbers[j]) return R_NilValue; /* no number at all: type.convert types it (logical, text) */
  }
  SEXP result = PROTECT(allocVector(VECSXP, (R_xlen_t)columns));
  for (size_t j = 0; j < columns; j++) {
    const double *from = cells + j * rows;
    SEXP column;
    if (whole[j]) {
      column = allocVector(INTSXP, (R_xlen_t)rows);
      int *out = INTEGER(column);
      for (size_t i = 0; i < rows; i++) out[i] = ISNA(from[i]) ? NA_INTEGER : (int)from[i];
    } else {
      column = allocVector(REALSXP, (R_xlen_t)rows);
      memcpy(REAL(column), from, rows * sizeof(double));
    }
    SET_VECTOR_ELT(result, (R_xlen_t)j, column);
  }
  UNPROTECT(1);
  return result;
}

static void set_field(void *state, size_t row, size_t column, const char *field, size_t length) {
  SEXP text = VECTOR_ELT((SEXP)state, (R_xlen_t)column);
  int na = length == 2 && field[0] == 'N' && field[1] == 'A';
  SET_STRING_ELT(text, (R_xlen_t)row, na ? NA_STRING : mkCharLenCE(field, (int)length, CE_UTF8));
}

/* The fields of a plain text body (csv_plain_shape) as a list of character columns, as read.csv
 * reads them ("NA" is NA); NULL for any other body. */
SEXP rsm_csv_plain_fields(SEXP body, SEXP max_columns) {
  if (TYPEOF(body) != STRSXP || XLENGTH(body) != 1 || STRING_ELT(body, 0) == NA_STRING) return R_NilValue;
  const char *start = CHAR(STRING_ELT(body, 0));
  const char *stop = start + XLENGTH(STRING_ELT(body, 0));
  size_t rows, columns;
  if (!csv_plain_shape(start, stop, (size_t)asReal(max_columns), &rows, &columns) || columns > INT_MAX) {
    return R_NilValue;
  }
  SEXP result = PROTECT(allocVector(VECSXP, (R_xlen_t)columns));
  for (size_t j = 0; j < columns; j++) SET_VECTOR_ELT(result, (R_xlen_t)j, allocVector(STRSXP, (R_xlen_t)rows));
  csv_plain_fields(start, stop, set_field, result);
  UNPROTECT(1);
  return result;
}

/* The fields of the body's widest record (quotes understood), counted up to `limit` + 1. */
SEXP rsm_csv_widest_record(SEXP body, SEXP limit) {
  const char *start = "", *stop = start;
  if (TYPEOF(body) == RAWSXP) {
    start = (const char *)RAW(body);
    stop = start + XLENGTH(body);
  } else if (TYPEOF(body) == STRSXP && XLENGTH(body) == 1 && STRING_ELT(body, 0) != NA_STRING) {
    start = CHAR(STRING_ELT(body, 0));
    stop = start + XLENGTH(STRING_ELT(body, 0));
  }
  return ScalarReal((double)csv_widest_record(start, stop, (size_t)asReal(limit)));
}

static void *r_arena(size_t size, void *context) {
  (void)context;
  return R_alloc(size, 1); /* freed when the .Call returns, also after an R error on the way */
}

static void append_text(csv_text *text, SEXP field) {
  if (field == NA_STRING || LENGTH(field) == 0) return;
  const char *t = translateCharUTF8(field);
  csv_append_field(text, t, strlen(t));
}

/* Columns of doubles, integers, logicals, text and factors (no other classes: no dates, times) as
 * CSV text, a line per row, NA (and NaN) as an empty field; NULL for the general path. */
SEXP rsm_write_csv(SEXP frame, SEXP final_newline) {
  if (TYPEOF(frame) != VECSXP || XLENGTH(frame) == 0) return R_NilValue;
  int columns = (int)XLENGTH(frame);
  R_xlen_t rows = XLENGTH(VECTOR_ELT(frame, 0));
  /* each column's type, a factor as its levels (STRSXP) and codes, decided once */
  int *types = (int *)R_alloc((size_t)columns, sizeof(int));
  SEXP *levels = (SEXP *)R_alloc((size_t)columns, sizeof(SEXP));
  for (int j = 0; j < columns; j++) {
    SEXP column = VECTOR_ELT(frame, j);
    int type = TYPEOF(column);
    int plain = (type == REALSXP || type == INTSXP || type == LGLSXP || type == STRSXP) && !OBJECT(column);
    int factor = isFactor(column);
    if (!(plain || factor) || XLENGTH(column) != rows || getAttrib(column, R_DimSymbol) != R_NilValue) {
      return R_NilValue;
    }
    levels[j] = factor ? getAttrib(column, R_LevelsSymbol) : R_NilValue; /* kept alive by the column */
    types[j] = factor ? NILSXP : type;
  }
  if (rows == 0) return mkString("");

  csv_text text = {NULL, 0, 0, r_arena, NULL};
  csv_reserve(&text, (size_t)rows * (size_t)columns * 8 + 64);
  char field[CSV_NUMBER_CHARS];
  for (R_xlen_t i = 0; i < rows; i++) {
    for (int j = 0; j < columns; j++) {
      SEXP column = VECTOR_ELT(frame, j);
      int length = 0;
      if (types[j] == NILSXP) { /* a factor */
        int code = INTEGER(column)[i];
        if (code != NA_INTEGER && code >= 1 && code <= XLENGTH(levels[j])) {
          append_text(&text, STRING_ELT(levels[j], code - 1));
        }
      } else if (types[j] == STRSXP) {
        append_text(&text, STRING_ELT(column, i));
      } else if (types[j] == REALSXP) {
        double x = REAL(column)[i];
        if (ISNAN(x)) {
          length = 0;
        } else if (!R_FINITE(x)) {
          length = snprintf(field, sizeof field, "%s", x > 0 ? "Inf" : "-Inf");
        } else if ((length = csv_shortest_text(x, field)) == 0) {
          return R_NilValue;
        }
      } else if (types[j] == INTSXP) {
        int x = INTEGER(column)[i];
        length = x == NA_INTEGER ? 0 : snprintf(field, sizeof field, "%d", x);
      } else {
        int x = LOGICAL(column)[i];
        length = x == NA_LOGICAL ? 0 : snprintf(field, sizeof field, "%s", x ? "TRUE" : "FALSE");
      }
      csv_append(&text, field, (size_t)length);
      csv_append(&text, j == columns - 1 ? "\n" : ",", 1);
    }
  }
  if (!asLogical(final_newline)) text.used--;
  if (text.used > INT_MAX) return R_NilValue;
  return ScalarString(mkCharLenCE(text.data, (int)text.used, CE_UTF8));
}
