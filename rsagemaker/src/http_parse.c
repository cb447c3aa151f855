/* The worker's HTTP/1.1 request parser (http_parse.h): plain C over a connection's buffered bytes. */
#include "http_parse.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

#define MAX_CHUNK_LINE 4096 /* a chunk's size line with its extensions, or a trailer field */

int http_equal_nocase(const char *a, size_t a_len, const char *b) {
  size_t b_len = strlen(b);
  if (a_len != b_len) return 0;
  for (size_t i = 0; i < a_len; i++) {
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
  }
  return 1;
}

/* Each comma-separated element of a header value, blanks around it trimmed, empty ones skipped. */
typedef int (*element_visitor)(void *state, const char *element, size_t length);

static int each_element(const char *value, size_t len, element_visitor visit, void *state) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) i++;
    size_t start = i;
    while (i < len && value[i] != ',') i++;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) end--;
    if (end > start && !visit(state, value + start, end - start)) return 0;
  }
  return 1;
}

typedef struct {
  const char *token;
  int found;
} token_search;

static int find_token(void *state, const char *element, size_t length) {
  token_search *search = (token_search *)state;
  if (http_equal_nocase(element, length, search->token)) search->found = 1;
  return 1;
}

/* Does the comma-separated header value hold `token` (case-insensitive)? */
static int has_token(const char *value, size_t len, const char *token) {
  token_search search = {token, 0};
  each_element(value, len, find_token, &search);
  return search.found;
}

size_t http_skip_blank_lines(const char *data, size_t used) {
  size_t skip = 0;
  while (skip < used && (data[skip] == '\r' || data[skip] == '\n')) skip++;
  return skip;
}

/* The end of the header block ("\r\n\r\n", or a bare "\n\n"), 0 if not in the buffer yet; the
 * search resumes where the last one stopped. */
static size_t find_header_end(const char *data, size_t used, size_t *scanned) {
  size_t i = *scanned > 3 ? *scanned - 3 : 0;
  for (; i + 1 < used; i++) {
    if (data[i] == '\n') {
      if (data[i + 1] == '\n') return i + 2;
      if (data[i + 1] == '\r') {
        if (i + 2 >= used) break; /* "\n\r" at the end: look again with more */
        if (data[i + 2] == '\n') return i + 3;
      }
    }
  }
  *scanned = used;
  return 0;
}

int http_each_header(const char *data, size_t header_end, http_header_visitor visit, void *state) {
  const char *p = memchr(data, '\n', header_end);
  if (p == NULL) return 0;
  p++;
  const char *end = data + header_end;
  while (p < end) {
    const char *line_end = memchr(p, '\n', (size_t)(end - p));
    if (line_end == NULL) return 0;
    size_t len = (size_t)(line_end - p);
    if (len > 0 && p[len - 1] == '\r') len--;
    if (len == 0) break; /* the blank line */
    if (*p == ' ' || *p == '\t') return 0; /* obsolete line folding: refused, as RFC 9112 allows */
    const char *colon = memchr(p, ':', len);
    if (colon == NULL || colon == p) return 0;
    size_t name_len = (size_t)(colon - p);
    for (size_t i = 0; i < name_len; i++) {
      unsigned char c = (unsigned char)p[i];
      if (c <= ' ' || c >= 127) return 0;
    }
    const char *value = colon + 1;
    size_t value_len = len - name_len - 1;
    while (value_len > 0 && (*value == ' ' || *value == '\t')) value++, value_len--;
    while (value_len > 0 && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t')) value_len--;
    for (size_t i = 0; i < value_len; i++) { /* control bytes (NUL, a bare CR) are no header's */
      unsigned char c = (unsigned char)value[i];
      if ((c < ' ' && c != '\t') || c == 127) return 0;
    }
    if (visit != NULL && !visit(state, p, name_len, value, value_len)) return 0;
    p = line_end + 1;
  }
  return 1;
}

/* Transfer-Encoding's codings, in order: chunked at most once, and last. */
static int note_coding(void *state, const char *coding, size_t length) {
  http_head *head = (http_head *)state;
  if (http_equal_nocase(coding, length, "chunked")) {
    if (head->chunked) return 0; /* chunked twice */
    head->chunked = 1;
  } else {
    head->unknown_coding = 1;
    if (head->chunked) head->chunked_not_last = 1;
  }
  return 1;
}

static int note_header(void *state, const char *name, size_t name_len, const char *value, size_t value_len) {
  http_head *head = (http_head *)state;
  if (http_equal_nocase(name, name_len, "content-length")) {
    if (value_len == 0 || value_len > 18) return 0;
    int64_t n = 0;
    for (size_t i = 0; i < value_len; i++) {
      if (value[i] < '0' || value[i] > '9') return 0;
      n = n * 10 + (value[i] - '0');
    }
    if (head->content_length >= 0 && head->content_length != n) return 0;
    head->content_length = n;
  } else if (http_equal_nocase(name, name_len, "transfer-encoding")) {
    head->transfer_encodings++;
    if (!each_element(value, value_len, note_coding, head)) return 0;
  } else if (http_equal_nocase(name, name_len, "connection")) {
    if (has_token(value, value_len, "close")) head->keep_alive = 0;
    if (has_token(value, value_len, "keep-alive")) head->keep_alive = 1;
  } else if (http_equal_nocase(name, name_len, "expect")) {
    head->expect_continue = http_equal_nocase(value, value_len, "100-continue");
  }
  return 1;
}

/* Parse the request line and the headers that frame the request. */
static enum http_verdict parse_head(const char *data, size_t header_end, http_head *head) {
  memset(head, 0, sizeof *head);
  head->content_length = -1;
  const char *line_end = memchr(data, '\n', header_end);
  size_t len = (size_t)(line_end - data);
  if (len > 0 && data[len - 1] == '\r') len--;
  const char *space1 = memchr(data, ' ', len);
  if (space1 == NULL || space1 == data) return HTTP_MALFORMED;
  const char *space2 = memchr(space1 + 1, ' ', len - (size_t)(space1 + 1 - data));
  if (space2 == NULL || space2 == space1 + 1) return HTTP_MALFORMED;
  const char *target = space1 + 1, *version = space2 + 1;
  head->method_len = (size_t)(space1 - data);
  head->target_at = (size_t)(target - data);
  head->target_len = (size_t)(space2 - target);
  head->version_at = (size_t)(version - data);
  size_t version_len = len - head->version_at;
  for (size_t i = 0; i < head->method_len; i++) {
    if (!isupper((unsigned char)data[i])) return HTTP_MALFORMED;
  }
  if (target[0] != '/' && !(head->target_len == 1 && target[0] == '*')) return HTTP_MALFORMED;
  for (size_t i = 0; i < head->target_len; i++) {
    unsigned char c = (unsigned char)target[i];
    if (c <= ' ' || c == 127) return HTTP_MALFORMED;
  }
  if (version_len != 8 || memcmp(version, "HTTP/1.", 7) != 0 || (version[7] != '0' && version[7] != '1')) {
    return HTTP_MALFORMED;
  }
  head->keep_alive = version[7] == '1';
  if (!http_each_header(data, header_end, note_header, head)) return HTTP_MALFORMED;
  if (head->transfer_encodings > 0) {
    /* RFC 9112, 6.1 and 6.3: with a Content-Length too, in HTTP/1.0, or without chunked last, the
     * body's length is unknown (400); chunked after a coding this server does not apply: 501. */
    if (head->content_length >= 0 || version[7] == '0' || !head->chunked || head->chunked_not_last) {
      return HTTP_MALFORMED;
    }
    if (head->unknown_coding) return HTTP_UNKNOWN_CODING;
  }
  return HTTP_COMPLETE;
}

static int hex_value(char c) {
  return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* The end of the line starting at `p` (the byte after its '\n'), 0 while it is incomplete; -1
 * when it is longer than MAX_CHUNK_LINE. */
static long line_after(const char *data, size_t used, size_t p) {
  size_t limit = used - p < MAX_CHUNK_LINE ? used - p : MAX_CHUNK_LINE;
  const char *nl = memchr(data + p, '\n', limit);
  if (nl == NULL) return used - p < MAX_CHUNK_LINE ? 0 : -1;
  return (long)(nl - data) + 1;
}

/* Walk a chunked body from request->chunk_at, each chunk's size checked against the limit as soon
 * as its size line is in. */
static enum http_verdict walk_chunks(const char *data, size_t used, double max_body, http_request *request) {
  size_t p = request->chunk_at;
  while (!request->in_trailer) {
    long next = line_after(data, used, p);
    if (next < 0) return HTTP_BAD_CHUNKS;
    if (next == 0) return HTTP_INCOMPLETE;
    size_t size = 0, digits = 0, q = p;
    while (isxdigit((unsigned char)data[q])) {
      if (++digits > 15) return HTTP_BAD_CHUNKS;
      size = size * 16 + (size_t)hex_value(data[q++]);
    }
    if (digits == 0) return HTTP_BAD_CHUNKS;
    /* what may follow the size: blanks, chunk extensions (ignored), the line's end */
    if (data[q] != ';' && data[q] != ' ' && data[q] != '\t' && data[q] != '\r' && data[q] != '\n') {
      return HTTP_BAD_CHUNKS;
    }
    if ((double)request->chunk_decoded + (double)size > max_body) {
      request->refused_bytes = (double)request->chunk_decoded + (double)size;
      request->at_least = 1;
      return HTTP_TOO_LARGE;
    }
    size_t start = (size_t)next;
    if (size == 0) {
      request->chunk_at = request->trailer_at = start;
      request->in_trailer = 1;
      break;
    }
    if (used - start < size + 1) return HTTP_INCOMPLETE;
    size_t end = start + size;
    if (data[end] == '\r') end++;
    if (end >= used) return HTTP_INCOMPLETE;
    if (data[end] != '\n') return HTTP_BAD_CHUNKS;
    request->chunk_decoded += size;
    request->chunk_at = p = end + 1;
  }
  /* trailer fields (ignored), then the blank line */
  for (;;) {
    size_t at = request->chunk_at;
    if (at - request->trailer_at > HTTP_MAX_HEADER_BYTES) return HTTP_HEAD_TOO_LARGE;
    long next = line_after(data, used, at);
    if (next < 0) return HTTP_BAD_CHUNKS;
    if (next == 0) return HTTP_INCOMPLETE;
    size_t len = (size_t)next - 1 - at;
    request->chunk_at = (size_t)next;
    if (len == 0 || (len == 1 && data[at] == '\r')) break;
  }
  request->body_len = request->chunk_decoded;
  request->request_end = request->chunk_at;
  return HTTP_COMPLETE;
}

/* The raw bytes a chunked body under `max_body` may take (its framing besides). */
static double chunked_allowance(double max_body) { return max_body * 1.1 + 65536; }

enum http_verdict http_parse(const char *data, size_t used, double max_body, http_request *request) {
  if (request->header_end == 0) {
    size_t end = find_header_end(data, used, &request->scanned);
    if (end == 0) {
      if (used > HTTP_MAX_HEADER_BYTES) return HTTP_HEAD_TOO_LARGE;
      request->read_cap = (size_t)HTTP_MAX_HEADER_BYTES + 1;
      return HTTP_INCOMPLETE;
    }
    if (end > HTTP_MAX_HEADER_BYTES) return HTTP_HEAD_TOO_LARGE;
    enum http_verdict head = parse_head(data, end, &request->head);
    if (head != HTTP_COMPLETE) return head;
    request->header_end = end;
    request->chunk_at = end;
  }
  const http_head *head = &request->head;
  if (head->chunked) {
    enum http_verdict state = walk_chunks(data, used, max_body, request);
    if (state != HTTP_INCOMPLETE) return state;
    double allowance = chunked_allowance(max_body);
    if ((double)(used - request->header_end) > allowance) {
      /* the chunks' framing aside, the body is over the limit already */
      request->refused_bytes = max_body;
      request->at_least = 1;
      return HTTP_TOO_LARGE;
    }
    double cap = (double)request->header_end + allowance + 1;
    request->read_cap = cap >= (double)SIZE_MAX ? SIZE_MAX : (size_t)cap;
    return HTTP_INCOMPLETE;
  }
  int64_t length = head->content_length < 0 ? 0 : head->content_length;
  if ((double)length > max_body) {
    request->refused_bytes = (double)length;
    request->at_least = 0;
    return HTTP_TOO_LARGE;
  }
  if ((uint64_t)(used - request->header_end) < (uint64_t)length) {
    request->read_cap = request->header_end + (size_t)length;
    return HTTP_INCOMPLETE;
  }
  request->body_len = (size_t)length;
  request->request_end = request->header_end + (size_t)length;
  return HTTP_COMPLETE;
}

void http_copy_body(const char *data, const http_request *request, unsigned char *out) {
  if (!request->head.chunked) {
    if (request->body_len > 0) memcpy(out, data + request->header_end, request->body_len);
    return;
  }
  size_t p = request->header_end, total = 0;
  while (total < request->body_len) {
    size_t size = 0;
    while (isxdigit((unsigned char)data[p])) size = size * 16 + (size_t)hex_value(data[p++]);
    p = (size_t)((const char *)memchr(data + p, '\n', request->request_end - p) - data) + 1;
    memcpy(out + total, data + p, size);
    total += size;
    p += size;
    if (data[p] == '\r') p++;
    p++; /* the '\n' after the chunk */
  }
}

/* ---- the headers, grouped by name ------------------------------------------------------------- */

typedef struct {
  const char *name, *value;
  size_t name_len, value_len;
  size_t group;
} header_line;

typedef struct {
  header_line *lines;
  size_t count;
} line_list;

static int count_line(void *state, const char *name, size_t name_len, const char *value, size_t value_len) {
  (void)name, (void)name_len, (void)value, (void)value_len;
  ((line_list *)state)->count++;
  return 1;
}

static int keep_line(void *state, const char *name, size_t name_len, const char *value, size_t value_len) {
  line_list *list = (line_list *)state;
  header_line *line = &list->lines[list->count++];
  line->name = name;
  line->name_len = name_len;
  line->value = value;
  line->value_len = value_len;
  return 1;
}

/* The name as the environment spells it: upper case, '-' as '_'. */
static char key_char(char c) {
  c = (char)toupper((unsigned char)c);
  return c == '-' ? '_' : c;
}

static uint64_t key_hash(const char *name, size_t len) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)key_char(name[i])) * 1099511628211u;
  return h;
}

static int same_key(const header_line *a, const header_line *b) {
  if (a->name_len != b->name_len) return 0;
  for (size_t i = 0; i < a->name_len; i++) {
    if (key_char(a->name[i]) != key_char(b->name[i])) return 0;
  }
  return 1;
}

size_t http_group_headers(const char *data, size_t header_end, void *(*alloc)(size_t, void *), void *context,
                          http_header_group **groups) {
  line_list list = {NULL, 0};
  http_each_header(data, header_end, count_line, &list);
  *groups = NULL;
  if (list.count == 0) return 0;
  list.lines = (header_line *)alloc(list.count * sizeof(header_line), context);
  size_t lines = list.count;
  list.count = 0;
  http_each_header(data, header_end, keep_line, &list);
  /* open addressing: each slot holds 1 + the index of a group's first line */
  size_t slots = 16;
  while (slots < 2 * lines) slots *= 2;
  size_t *table = (size_t *)alloc(slots * sizeof(size_t), context);
  memset(table, 0, slots * sizeof(size_t));
  size_t *first = (size_t *)alloc(lines * sizeof(size_t), context);
  size_t *total = (size_t *)alloc(lines * sizeof(size_t), context);
  size_t count = 0;
  for (size_t i = 0; i < lines; i++) {
    header_line *line = &list.lines[i];
    if (line->name_len > HTTP_MAX_NAME_BYTES) { /* no handler reads such a header */
      line->group = (size_t)-1;
      continue;
    }
    size_t slot = (size_t)key_hash(line->name, line->name_len) & (slots - 1);
    while (table[slot] != 0 && !same_key(&list.lines[table[slot] - 1], line)) slot = (slot + 1) & (slots - 1);
    if (table[slot] == 0) {
      table[slot] = i + 1;
      first[count] = i;
      total[count] = line->value_len;
      line->group = count++;
    } else {
      line->group = list.lines[table[slot] - 1].group;
      total[line->group] += 2 + line->value_len;
    }
  }
  http_header_group *out = (http_header_group *)alloc((count ? count : 1) * sizeof(http_header_group), context);
  for (size_t g = 0; g < count; g++) {
    const header_line *line = &list.lines[first[g]];
    out[g].key_len = 5 + line->name_len;
    out[g].key = (char *)alloc(out[g].key_len + 1, context);
    memcpy(out[g].key, "HTTP_", 5);
    for (size_t i = 0; i < line->name_len; i++) out[g].key[5 + i] = key_char(line->name[i]);
    out[g].key[out[g].key_len] = '\0';
    out[g].value = (char *)alloc(total[g] ? total[g] : 1, context);
    out[g].value_len = 0;
  }
  for (size_t i = 0; i < lines; i++) {
    const header_line *line = &list.lines[i];
    if (line->group == (size_t)-1) continue;
    http_header_group *group = &out[line->group];
    if (first[line->group] != i) {
      memcpy(group->value + group->value_len, ", ", 2);
      group->value_len += 2;
    }
    if (line->value_len > 0) memcpy(group->value + group->value_len, line->value, line->value_len);
    group->value_len += line->value_len;
  }
  *groups = out;
  return count;
}
