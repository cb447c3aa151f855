/* The fast path of the default CSV handlers (serving.R): numeric CSV read in one pass, and
 * numbers, text and factors written in one, every double exact. Anything this path does not take (quotes, text, blank lines, ragged rows,
 * Inf/NaN/hex, a leading '+', a column with no number) answers NULL, and serving.R's general path
 * (fread or read.csv, then exact_doubles) reads the body with read.csv's meaning instead; the two
 * agree on every body this path takes. Writing likewise leaves dates, times, subnormal numbers and
 * the rare power of two that needs R's search to the general path.
 */
#include <R.h>
#include <Rinternals.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 10^0 .. 10^22: each exactly a double. */
static const double POWERS_OF_TEN[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                       1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                       1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#define LONGEST_FIELD 400 /* longer numeric texts go to the general path */

enum field_kind { FIELD_NA, FIELD_NUMBER, FIELD_OTHER };

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

/* One field [s, end): NA ("" or "NA"), a plain decimal number (its nearest double, and whether it
 * is a whole number that fits an R integer, as type.convert would type it), or anything else. */
static enum field_kind read_field(const char *s, const char *end, double *value, int *whole) {
  while (s < end && is_blank(*s)) s++;
  while (end > s && is_blank(end[-1])) end--;
  if (s == end || (end - s == 2 && s[0] == 'N' && s[1] == 'A')) return FIELD_NA;
  if (end - s > LONGEST_FIELD) return FIELD_OTHER;
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
  if (digits == 0) return FIELD_OTHER;
  if (p < end && (*p == 'e' || *p == 'E')) {
    has_exponent = 1;
    p++;
    int exponent_negative = 0, exponent_digits = 0;
    if (p < end && (*p == '-' || *p == '+')) exponent_negative = *p++ == '-';
    for (; p < end && *p >= '0' && *p <= '9'; p++, exponent_digits++) {
      if (exponent < 100000) exponent = exponent * 10 + (*p - '0');
    }
    if (exponent_digits == 0) return FIELD_OTHER;
    if (exponent_negative) exponent = -exponent;
  }
  if (p != end) return FIELD_OTHER;

  *whole = !point && !has_exponent && significant <= 10 && mantissa <= INT_MAX;
  int scale = exponent - fraction; /* the value is mantissa * 10^scale */
  if (significant == 0) {
    *value = negative ? -0.0 : 0.0;
  } else if (significant > 19 || !exact_decimal(mantissa, scale, value)) { /* past 19 digits: cut */
    char text[LONGEST_FIELD + 1]; /* else C's strtod, which rounds correctly (R's reader does not) */
    memcpy(text, s, (size_t)(end - s));
    text[end - s] = '\0';
    *value = strtod(text, NULL);
    if (!isfinite(*value)) return FIELD_OTHER; /* an overflow: R's reading decides */
    return FIELD_NUMBER;
  }
  if (negative) *value = -*value;
  return FIELD_NUMBER;
}

/* A numeric CSV body (character(1), or its bytes as a raw vector) as a list of columns (integer
 * where every value is a whole number that fits, else double), or NULL for the general path. */
SEXP rsm_read_numeric_csv(SEXP body) {
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
  if (start == stop) return R_NilValue;

  R_xlen_t rows = 0;
  int columns = 1;
  for (const char *p = start; p < stop; p++) {
    if (*p == '\n') rows++;
  }
  if (stop[-1] != '\n') rows++;
  for (const char *p = start; p < stop && *p != '\n'; p++) {
    if (*p == ',') columns++;
  }

  /* every field takes at least its separator: more fields than that is a ragged body (and no
   * reason to allocate them) */
  if ((double)columns * (double)rows > (double)(stop - start) + (double)rows) return R_NilValue;

  SEXP result = PROTECT(allocVector(VECSXP, columns));
  double **values = (double **)R_alloc((size_t)columns, sizeof(double *));
  int *whole = (int *)R_alloc((size_t)columns, sizeof(int));
  int *numbers = (int *)R_alloc((size_t)columns, sizeof(int));
  for (int j = 0; j < columns; j++) {
    SET_VECTOR_ELT(result, j, allocVector(REALSXP, rows));
    values[j] = REAL(VECTOR_ELT(result, j));
    whole[j] = 1;
    numbers[j] = 0;
  }

  const char *p = start;
  for (R_xlen_t i = 0; i < rows; i++) {
    const char *line_end = memchr(p, '\n', (size_t)(stop - p));
    const char *next = line_end == NULL ? stop : line_end + 1;
    if (line_end == NULL) line_end = stop;
    if (line_end > p && line_end[-1] == '\r') line_end--; /* CRLF; a CR elsewhere is no number */
    const char *q = p;
    while (q < line_end && is_blank(*q)) q++;
    if (q == line_end) goto general; /* a blank line: read.csv skips it */
    for (int j = 0; j < columns; j++) {
      const char *field_end = memchr(p, ',', (size_t)(line_end - p));
      if (field_end == NULL) field_end = line_end;
      if ((field_end == line_end) != (j == columns - 1)) goto general; /* ragged row */
      double value;
      int is_whole = 0;
      switch (read_field(p, field_end, &value, &is_whole)) {
      case FIELD_NA:
        values[j][i] = NA_REAL;
        break;
      case FIELD_NUMBER:
        values[j][i] = value;
        numbers[j] = 1;
        if (!is_whole) whole[j] = 0;
        break;
      default:
        goto general;
      }
      p = field_end + 1;
    }
    p = next;
  }

  for (int j = 0; j < columns; j++) {
    if (!numbers[j]) goto general; /* no number at all: type.convert types it (logical, text) */
    if (whole[j]) {
      SEXP integers = PROTECT(allocVector(INTSXP, rows));
      int *out = INTEGER(integers);
      for (R_xlen_t i = 0; i < rows; i++) out[i] = ISNA(values[j][i]) ? NA_INTEGER : (int)values[j][i];
      SET_VECTOR_ELT(result, j, integers);
      UNPROTECT(1);
    }
  }
  UNPROTECT(1);
  return result;

general:
  UNPROTECT(1);
  return R_NilValue;
}

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

/* x as the shortest of 15, 16 or 17 significant digits that reads back as x, the very text of
 * printf's %.15g, %.16g or %.17g (serving.R's shortest_doubles, done in C: one printf of 17 digits,
 * rounded here to 16 and 15, each checked; printf again only where the 17 digits end in 5 or 50,
 * too few to round by); 0 when R's search must decide: a subnormal number may need fewer digits,
 * and a power of two whose nearest 16-digit text misses may have one above it that fits. */
static int shortest_text(double x, char *buffer) {
  if (x == 0) return copy_text(buffer, signbit(x) ? "-0" : "0");
  if (fabs(x) < DBL_MIN) return 0;
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

/* The text being written: R_alloc'd, so an R error on the way (translateCharUTF8) frees it too. */
typedef struct {
  char *data;
  size_t used, capacity;
} text_buffer;

static void reserve(text_buffer *buffer, size_t more) {
  if (buffer->used + more <= buffer->capacity) return;
  size_t capacity = 2 * buffer->capacity + more;
  char *grown = R_alloc(capacity, 1);
  memcpy(grown, buffer->data, buffer->used);
  buffer->data = grown;
  buffer->capacity = capacity;
}

static void append(text_buffer *buffer, const char *bytes, size_t length) {
  reserve(buffer, length);
  memcpy(buffer->data + buffer->used, bytes, length);
  buffer->used += length;
}

/* A text field as data.table's fwrite writes it (quote = "auto"): in double quotes, inner ones
 * doubled, when it holds a comma, a quote or a line break; an empty one as an empty field. */
static void append_text(text_buffer *buffer, SEXP text) {
  if (text == NA_STRING || LENGTH(text) == 0) return;
  const char *t = translateCharUTF8(text);
  size_t length = strlen(t);
  if (strpbrk(t, ",\"\n\r") == NULL) {
    append(buffer, t, length);
    return;
  }
  reserve(buffer, 2 * length + 2);
  buffer->data[buffer->used++] = '"';
  for (const char *c = t; *c; c++) {
    if (*c == '"') buffer->data[buffer->used++] = '"';
    buffer->data[buffer->used++] = *c;
  }
  buffer->data[buffer->used++] = '"';
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

  text_buffer buffer = {NULL, 0, 0};
  reserve(&buffer, (size_t)rows * (size_t)columns * 8 + 64);
  char field[40];
  for (R_xlen_t i = 0; i < rows; i++) {
    for (int j = 0; j < columns; j++) {
      SEXP column = VECTOR_ELT(frame, j);
      int length = 0;
      if (types[j] == NILSXP) { /* a factor */
        int code = INTEGER(column)[i];
        if (code != NA_INTEGER && code >= 1 && code <= XLENGTH(levels[j])) {
          append_text(&buffer, STRING_ELT(levels[j], code - 1));
        }
      } else if (types[j] == STRSXP) {
        append_text(&buffer, STRING_ELT(column, i));
      } else if (types[j] == REALSXP) {
        double x = REAL(column)[i];
        if (ISNAN(x)) {
          length = 0;
        } else if (!R_FINITE(x)) {
          length = copy_text(field, x > 0 ? "Inf" : "-Inf");
        } else if ((length = shortest_text(x, field)) == 0) {
          return R_NilValue;
        }
      } else if (types[j] == INTSXP) {
        int x = INTEGER(column)[i];
        length = x == NA_INTEGER ? 0 : snprintf(field, sizeof field, "%d", x);
      } else {
        int x = LOGICAL(column)[i];
        length = x == NA_LOGICAL ? 0 : copy_text(field, x ? "TRUE" : "FALSE");
      }
      append(&buffer, field, (size_t)length);
      append(&buffer, j == columns - 1 ? "\n" : ",", 1);
    }
  }
  if (!asLogical(final_newline)) buffer.used--;
  if (buffer.used > INT_MAX) return R_NilValue;
  return ScalarString(mkCharLenCE(buffer.data, (int)buffer.used, CE_UTF8));
}
