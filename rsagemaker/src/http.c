/* A worker's HTTP/1.1 server, on R's own thread (server.R).
 *
 * A worker answers one request at a time, behind nginx on a unix socket (or, run alone, on a TCP
 * port). So it needs no I/O thread: poll() waits for the listening socket and the open connections,
 * a complete request is handed to R as an environment (method, path, query, HTTP_* headers, the
 * body's raw bytes), and R's response (status, headers, body) is written back before the next poll. Nothing
 * crosses threads, nothing is written to disk, and the process stays single-threaded, so the master
 * may fork workers at any time.
 *
 * It speaks what nginx's proxy sends (Content-Length bodies, keep-alive connections) and what a
 * client talking to a lone worker may send besides: chunked bodies, Expect: 100-continue, HTTP/1.0.
 * Malformed requests get a JSON 400 and the connection is closed; a body over the payload limit, a
 * JSON 413 (with serving.R's wording).
 */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/eventloop.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNECTIONS 64       /* nginx keeps 8 per worker; the rest are direct clients */
#define MAX_HEADER_BYTES 65536   /* request line and headers; nginx's own limit is lower */
#define READ_CHUNK 65536
#define IDLE_SECONDS 300         /* a connection without a request for that long is closed */
#define WRITE_TIMEOUT_MS 60000   /* a client that stops reading the response is dropped */

typedef struct {
  int fd;
  char *data; /* what has been read and not yet answered */
  size_t used, size;
  size_t header_end;      /* bytes of request line + headers (with the blank line), 0 until seen */
  int continue_sent;      /* "100 Continue" answered to Expect */
  int peer_closed;        /* the client has finished sending: answer what is buffered, then close */
  double last_active;
} connection;

typedef struct {
  int listen_fd;
  double max_body; /* bytes; R_PosInf is no limit (batch transform's MaxPayloadInMB=0) */
  connection conns[MAX_CONNECTIONS];
  int count;
} http_server;

/* One parsed request, pointing into its connection's buffer. */
typedef struct {
  const char *method, *target, *version;
  size_t method_len, target_len, version_len;
  int keep_alive, expect_continue, chunked;
  int64_t content_length; /* -1 when absent */
} request_head;

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int set_nonblocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  return flags < 0 ? -1 : fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

/* After an error answered early (the client may still be sending): stop writing, and read and drop
 * what comes for a moment, so that the close does not reset the connection before the client has
 * read the answer (nginx's lingering close). */
static void linger(int fd) {
  char sink[16384];
  shutdown(fd, SHUT_WR);
  double until = now_seconds() + 0.5;
  for (;;) {
    int left = (int)((until - now_seconds()) * 1000);
    struct pollfd waiting = {fd, POLLIN, 0};
    if (left <= 0 || poll(&waiting, 1, left) <= 0) return;
    ssize_t n = recv(fd, sink, sizeof sink, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) return;
  }
}

static void close_connection(http_server *server, int i) {
  close(server->conns[i].fd);
  free(server->conns[i].data);
  server->conns[i] = server->conns[server->count - 1];
  server->count--;
}

static void finalize_server(SEXP pointer) {
  http_server *server = (http_server *)R_ExternalPtrAddr(pointer);
  if (server == NULL) return;
  while (server->count > 0) close_connection(server, server->count - 1);
  if (server->listen_fd >= 0) close(server->listen_fd);
  free(server);
  R_ClearExternalPtr(pointer);
}

static http_server *get_server(SEXP pointer) {
  http_server *server = TYPEOF(pointer) == EXTPTRSXP ? (http_server *)R_ExternalPtrAddr(pointer) : NULL;
  if (server == NULL) error("not an open rsagemaker HTTP server");
  return server;
}

/* Listen on a unix socket (`path`) or on TCP `host`:`port`; returns the server as an external
 * pointer (closed by the collector, or by rsm_http_close). */
SEXP rsm_http_listen(SEXP path, SEXP host, SEXP port, SEXP max_body) {
  int fd;
  if (!isNull(path)) {
    const char *where = CHAR(STRING_ELT(path, 0));
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    if (strlen(where) >= sizeof address.sun_path) error("socket path too long: %s", where);
    strcpy(address.sun_path, where);
    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0) error("socket(): %s", strerror(errno));
    unlink(where);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
      int saved = errno;
      close(fd);
      error("cannot listen on %s: %s", where, strerror(saved));
    }
    /* nginx's worker runs as another user: it needs write permission to connect */
    chmod(where, 0777);
  } else {
    struct sockaddr_in address;
    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)asInteger(port));
    if (inet_pton(AF_INET, CHAR(STRING_ELT(host, 0)), &address.sin_addr) != 1) {
      error("not an IPv4 address: %s", CHAR(STRING_ELT(host, 0)));
    }
    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) error("socket(): %s", strerror(errno));
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
      int saved = errno;
      close(fd);
      error("cannot listen on %s:%d: %s", CHAR(STRING_ELT(host, 0)), asInteger(port), strerror(saved));
    }
  }
  if (listen(fd, 128) < 0 || set_nonblocking(fd) < 0) {
    int saved = errno;
    close(fd);
    error("listen(): %s", strerror(saved));
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  http_server *server = (http_server *)calloc(1, sizeof(http_server));
  if (server == NULL) {
    close(fd);
    error("out of memory");
  }
  server->listen_fd = fd;
  server->max_body = asReal(max_body);
  /* A handler's Sys.sleep() waits in one select() unless R has an event loop to serve: then it wakes
   * every R_wait_usec to check interrupts and setTimeLimit(), the request timeout (serving.R). */
  if (R_wait_usec <= 0 || R_wait_usec > 100000) R_wait_usec = 100000;
  SEXP pointer = PROTECT(R_MakeExternalPtr(server, R_NilValue, R_NilValue));
  R_RegisterCFinalizerEx(pointer, finalize_server, TRUE);
  UNPROTECT(1);
  return pointer;
}

SEXP rsm_http_close(SEXP pointer) {
  finalize_server(pointer);
  return R_NilValue;
}

/* ---- reading a request ------------------------------------------------------------------------ */

static int equal_nocase(const char *a, size_t a_len, const char *b) {
  size_t b_len = strlen(b);
  if (a_len != b_len) return 0;
  for (size_t i = 0; i < a_len; i++) {
    if (tolower((unsigned char)a[i]) != tolower((unsigned char)b[i])) return 0;
  }
  return 1;
}

/* Does the comma-separated header value hold `token` (case-insensitive)? */
static int has_token(const char *value, size_t len, const char *token) {
  size_t i = 0;
  while (i < len) {
    while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ',')) i++;
    size_t start = i;
    while (i < len && value[i] != ',') i++;
    size_t end = i;
    while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t')) end--;
    if (equal_nocase(value + start, end - start, token)) return 1;
  }
  return 0;
}

/* The end of the header block ("\r\n\r\n", or a bare "\n\n"), 0 if not in the buffer yet. */
static size_t find_header_end(const char *data, size_t used) {
  for (size_t i = 0; i + 1 < used; i++) {
    if (data[i] == '\n') {
      if (data[i + 1] == '\n') return i + 2;
      if (data[i + 1] == '\r' && i + 2 < used && data[i + 2] == '\n') return i + 3;
    }
  }
  return 0;
}

/* Each header line of the block after the request line: calls `visit` with name and value (value
 * trimmed). Returns 0 for a malformed line. */
typedef int (*header_visitor)(void *state, const char *name, size_t name_len, const char *value, size_t value_len);

static int each_header(const char *data, size_t header_end, header_visitor visit, void *state) {
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

static int note_header(void *state, const char *name, size_t name_len, const char *value, size_t value_len) {
  request_head *head = (request_head *)state;
  if (equal_nocase(name, name_len, "content-length")) {
    if (value_len == 0 || value_len > 18) return 0;
    int64_t n = 0;
    for (size_t i = 0; i < value_len; i++) {
      if (value[i] < '0' || value[i] > '9') return 0;
      n = n * 10 + (value[i] - '0');
    }
    if (head->content_length >= 0 && head->content_length != n) return 0;
    head->content_length = n;
  } else if (equal_nocase(name, name_len, "transfer-encoding")) {
    if (!has_token(value, value_len, "chunked")) return 0; /* no other coding is accepted */
    head->chunked = 1;
  } else if (equal_nocase(name, name_len, "connection")) {
    if (has_token(value, value_len, "close")) head->keep_alive = 0;
    if (has_token(value, value_len, "keep-alive")) head->keep_alive = 1;
  } else if (equal_nocase(name, name_len, "expect")) {
    head->expect_continue = equal_nocase(value, value_len, "100-continue");
  }
  return 1;
}

/* Parse the request line and the headers that frame the request. 0: malformed. */
static int parse_head(const char *data, size_t header_end, request_head *head) {
  memset(head, 0, sizeof *head);
  head->content_length = -1;
  const char *line_end = memchr(data, '\n', header_end);
  size_t len = (size_t)(line_end - data);
  if (len > 0 && data[len - 1] == '\r') len--;
  const char *space1 = memchr(data, ' ', len);
  if (space1 == NULL || space1 == data) return 0;
  const char *space2 = memchr(space1 + 1, ' ', len - (size_t)(space1 + 1 - data));
  if (space2 == NULL || space2 == space1 + 1) return 0;
  head->method = data;
  head->method_len = (size_t)(space1 - data);
  head->target = space1 + 1;
  head->target_len = (size_t)(space2 - space1 - 1);
  head->version = space2 + 1;
  head->version_len = len - (size_t)(space2 + 1 - data);
  for (size_t i = 0; i < head->method_len; i++) {
    if (!isupper((unsigned char)data[i])) return 0;
  }
  if (head->target[0] != '/' && !(head->target_len == 1 && head->target[0] == '*')) return 0;
  for (size_t i = 0; i < head->target_len; i++) {
    unsigned char c = (unsigned char)head->target[i];
    if (c <= ' ' || c == 127) return 0;
  }
  if (head->version_len != 8 || memcmp(head->version, "HTTP/1.", 7) != 0 ||
      (head->version[7] != '0' && head->version[7] != '1')) {
    return 0;
  }
  head->keep_alive = head->version[7] == '1';
  return each_header(data, header_end, note_header, head);
}

static int hex_value(char c) {
  return isdigit((unsigned char)c) ? c - '0' : tolower((unsigned char)c) - 'a' + 10;
}

/* Walk a chunked body from `start`: its decoded size and where it ends in the buffer; with `out`,
 * the chunks' bytes are copied there too (once the body is known complete). 0 when complete, -1
 * while it is incomplete, -2 when malformed. */
static int walk_chunks(const char *data, size_t used, size_t start, size_t *decoded, size_t *end,
                       unsigned char *out) {
  size_t p = start, total = 0;
  for (;;) {
    size_t size = 0, digits = 0;
    while (p < used && isxdigit((unsigned char)data[p])) {
      if (++digits > 15) return -2;
      size = size * 16 + (size_t)hex_value(data[p++]);
    }
    if (p >= used) return -1;
    if (digits == 0) return -2;
    while (p < used && data[p] != '\n') p++; /* chunk extensions are ignored */
    if (p >= used) return -1;
    p++;
    if (size == 0) break;
    if (used - p < size + 1) return -1;
    if (out != NULL) memcpy(out + total, data + p, size);
    p += size;
    if (data[p] == '\r') p++;
    if (p >= used) return -1;
    if (data[p] != '\n') return -2;
    p++;
    total += size;
  }
  /* trailer fields, then the blank line */
  for (;;) {
    const char *nl = memchr(data + p, '\n', used - p);
    if (nl == NULL) return -1;
    size_t len = (size_t)(nl - (data + p));
    int blank = len == 0 || (len == 1 && data[p] == '\r');
    p = (size_t)(nl - data) + 1;
    if (blank) break;
  }
  *decoded = total;
  *end = p;
  return 0;
}

/* ---- writing a response ----------------------------------------------------------------------- */

static const char *reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 507: return "Insufficient Storage";
    default: return "Status";
  }
}

/* Send all of `parts`, waiting while the socket is full; 0 when the peer went or stopped reading. */
static int send_all(int fd, struct iovec *parts, int count) {
  while (count > 0) {
    struct msghdr message;
    memset(&message, 0, sizeof message);
    message.msg_iov = parts;
    message.msg_iovlen = (size_t)count;
    ssize_t sent = sendmsg(fd, &message, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) return 0;
      struct pollfd waiting = {fd, POLLOUT, 0};
      if (poll(&waiting, 1, WRITE_TIMEOUT_MS) <= 0) return 0;
      continue;
    }
    while (count > 0 && (size_t)sent >= parts->iov_len) {
      sent -= (ssize_t)parts->iov_len;
      parts++;
      count--;
    }
    if (count > 0) {
      parts->iov_base = (char *)parts->iov_base + sent;
      parts->iov_len -= (size_t)sent;
    }
  }
  return 1;
}

typedef struct {
  char *data;
  size_t used, size;
} text_buffer;

static void text_append(text_buffer *b, const char *s, size_t n) {
  if (b->used + n > b->size) {
    size_t size = b->size ? b->size : 512;
    while (size < b->used + n) size *= 2;
    char *grown = (char *)realloc(b->data, size);
    if (grown == NULL) error("out of memory");
    b->data = grown;
    b->size = size;
  }
  memcpy(b->data + b->used, s, n);
  b->used += n;
}

/* A header value with its CR and LF made spaces: a handler's text cannot start a header of its own. */
static void append_header_value(text_buffer *b, const char *value) {
  for (const char *p = value; *p; p++) {
    char c = (*p == '\r' || *p == '\n') ? ' ' : *p;
    text_append(b, &c, 1);
  }
}

static int write_response(int fd, int status, SEXP headers, const char *body, size_t body_len,
                          int keep_alive, int head_only) {
  text_buffer head = {NULL, 0, 0};
  char line[128];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", status, reason_phrase(status));
  text_append(&head, line, strlen(line));
  SEXP names = isNull(headers) ? R_NilValue : getAttrib(headers, R_NamesSymbol);
  for (R_xlen_t i = 0; i < xlength(headers); i++) {
    SEXP value = VECTOR_ELT(headers, i);
    if (isNull(names) || TYPEOF(value) != STRSXP || XLENGTH(value) < 1 || STRING_ELT(value, 0) == NA_STRING) continue;
    const char *name = CHAR(STRING_ELT(names, i));
    if (equal_nocase(name, strlen(name), "content-length") || equal_nocase(name, strlen(name), "connection")) continue;
    append_header_value(&head, name);
    text_append(&head, ": ", 2);
    append_header_value(&head, translateCharUTF8(STRING_ELT(value, 0)));
    text_append(&head, "\r\n", 2);
  }
  snprintf(line, sizeof line, "Content-Length: %zu\r\n%s\r\n", body_len,
           keep_alive ? "" : "Connection: close\r\n");
  text_append(&head, line, strlen(line));
  struct iovec parts[2] = {{head.data, head.used}, {(void *)body, head_only ? 0 : body_len}};
  int ok = send_all(fd, parts, head_only || body_len == 0 ? 1 : 2);
  free(head.data);
  return ok;
}

static int write_json_error(int fd, int status, const char *message) {
  char body[512];
  int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", message);
  SEXP headers = PROTECT(allocVector(VECSXP, 1));
  SET_VECTOR_ELT(headers, 0, mkString("application/json"));
  setAttrib(headers, R_NamesSymbol, mkString("Content-Type"));
  int ok = write_response(fd, status, headers, body, (size_t)n, 0, 0);
  UNPROTECT(1);
  return ok;
}

/* ---- handing a request to R ------------------------------------------------------------------- */

/* HTTP_<NAME> as the CGI convention and httpuv name headers (upper case, '-' as '_'); a repeated
 * header's values are joined with ", " (RFC 9110's combination). */
static int define_header(void *state, const char *name, size_t name_len, const char *value, size_t value_len) {
  SEXP request = (SEXP)state;
  char key[256];
  if (name_len > sizeof key - 6) return 1; /* no handler reads such a header */
  memcpy(key, "HTTP_", 5);
  for (size_t i = 0; i < name_len; i++) {
    char c = (char)toupper((unsigned char)name[i]);
    key[5 + i] = c == '-' ? '_' : c;
  }
  key[5 + name_len] = '\0';
  SEXP symbol = install(key); /* before any value is made: install may allocate */
  SEXP earlier = findVarInFrame(request, symbol);
  if (earlier != R_UnboundValue) {
    const char *old = CHAR(STRING_ELT(earlier, 0));
    size_t old_len = strlen(old);
    char *joined = R_alloc(old_len + 2 + value_len, 1);
    memcpy(joined, old, old_len);
    memcpy(joined + old_len, ", ", 2);
    memcpy(joined + old_len + 2, value, value_len);
    defineVar(symbol, ScalarString(mkCharLenCE(joined, (int)(old_len + 2 + value_len), CE_UTF8)), request);
  } else {
    defineVar(symbol, ScalarString(mkCharLenCE(value, (int)value_len, CE_UTF8)), request);
  }
  return 1;
}

/* name <- value in the request, `value` kept from the collector while the name is installed. */
static void define(SEXP request, const char *name, SEXP value) {
  PROTECT(value);
  defineVar(install(name), value, request);
  UNPROTECT(1);
}

/* The request as R sees it: an environment (as httpuv's requests were: `req$HTTP_ACCEPT` must not
 * match HTTP_ACCEPT_ENCODING, as a list's `$` would) of REQUEST_METHOD, PATH_INFO, QUERY_STRING
 * ("?..." or ""), the HTTP_* headers and body. */
static SEXP request_environment(const connection *conn, const request_head *head, size_t body_start,
                                size_t body_len) {
  SEXP request = PROTECT(R_NewEnv(R_EmptyEnv, FALSE, 0));
  const char *query = memchr(head->target, '?', head->target_len);
  size_t path_len = query ? (size_t)(query - head->target) : head->target_len;
  define(request, "REQUEST_METHOD", ScalarString(mkCharLen(head->method, (int)head->method_len)));
  define(request, "PATH_INFO", ScalarString(mkCharLenCE(head->target, (int)path_len, CE_UTF8)));
  define(request, "QUERY_STRING",
         ScalarString(query ? mkCharLenCE(query, (int)(head->target_len - path_len), CE_UTF8) : mkChar("")));
  each_header(conn->data, conn->header_end, define_header, request);
  SEXP body = PROTECT(allocVector(RAWSXP, (R_xlen_t)body_len));
  if (head->chunked) {
    size_t decoded, end;
    walk_chunks(conn->data, conn->used, body_start, &decoded, &end, RAW(body));
  } else if (body_len > 0) {
    memcpy(RAW(body), conn->data + body_start, body_len);
  }
  define(request, "body", body);
  UNPROTECT(2);
  return request;
}

/* Call `handler(request)`; write what it returns. An R error (the app catches its own: this is
 * the last resort) is a JSON 500. */
static int answer(connection *conn, const request_head *head, SEXP request, SEXP handler, SEXP env) {
  int failed = 0;
  SEXP call = PROTECT(lang2(handler, request));
  SEXP response = PROTECT(R_tryEval(call, env, &failed));
  int head_only = head->method_len == 4 && memcmp(head->method, "HEAD", 4) == 0;
  int ok;
  SEXP fields = failed ? R_NilValue : getAttrib(response, R_NamesSymbol);
  if (failed || TYPEOF(response) != VECSXP || isNull(fields)) {
    ok = write_json_error(conn->fd, 500, "the model server's handler failed");
  } else {
    SEXP status_value = R_NilValue, headers = R_NilValue, body = R_NilValue;
    for (R_xlen_t i = 0; i < XLENGTH(response); i++) {
      const char *name = CHAR(STRING_ELT(fields, i));
      if (strcmp(name, "status") == 0) status_value = VECTOR_ELT(response, i);
      else if (strcmp(name, "headers") == 0) headers = VECTOR_ELT(response, i);
      else if (strcmp(name, "body") == 0) body = VECTOR_ELT(response, i);
    }
    int code = isNull(status_value) ? 200 : asInteger(status_value);
    if (code == NA_INTEGER || code < 100 || code > 599) code = 500;
    if (!isNull(headers) && TYPEOF(headers) != VECSXP) headers = R_NilValue;
    const char *bytes = "";
    size_t length = 0;
    if (TYPEOF(body) == RAWSXP) {
      bytes = (const char *)RAW(body);
      length = (size_t)XLENGTH(body);
    } else if (TYPEOF(body) == STRSXP && XLENGTH(body) >= 1 && STRING_ELT(body, 0) != NA_STRING) {
      bytes = CHAR(STRING_ELT(body, 0));
      length = (size_t)LENGTH(STRING_ELT(body, 0));
    }
    ok = write_response(conn->fd, code, headers, bytes, length, head->keep_alive && !conn->peer_closed, head_only);
  }
  UNPROTECT(2);
  return ok && head->keep_alive && !conn->peer_closed;
}

/* A JSON 413 in serving.R's words (request_body); -2: linger, then close. */
static int refuse_too_large(connection *conn, double bytes, double limit, int at_least) {
  char message[200];
  snprintf(message, sizeof message, "payload of %s%.0f bytes exceeds the limit of %.0f bytes",
           at_least ? "over " : "", bytes, limit);
  write_json_error(conn->fd, 413, message);
  return -2;
}

/* What the connection's buffer holds: 1 a whole request (answered), 0 not yet, -1 close it, -2 an
 * error answered: linger, then close it. */
static int take_request(http_server *server, connection *conn, SEXP handler, SEXP env) {
  if (conn->header_end == 0) {
    /* blank lines before a request are allowed (RFC 9112, 2.2) */
    size_t skip = 0;
    while (skip < conn->used && (conn->data[skip] == '\r' || conn->data[skip] == '\n')) skip++;
    if (skip > 0) {
      memmove(conn->data, conn->data + skip, conn->used - skip);
      conn->used -= skip;
    }
    conn->header_end = find_header_end(conn->data, conn->used);
    if (conn->header_end == 0) {
      if (conn->peer_closed) return -1;
      if (conn->used > MAX_HEADER_BYTES) {
        write_json_error(conn->fd, 400, "the request line or headers are too large");
        return -2;
      }
      return 0;
    }
    if (conn->header_end > MAX_HEADER_BYTES) {
      write_json_error(conn->fd, 400, "the request line or headers are too large");
      return -2;
    }
  }
  request_head head;
  if (!parse_head(conn->data, conn->header_end, &head)) {
    write_json_error(conn->fd, 400, "malformed HTTP request");
    return -2;
  }
  size_t body_len = 0, request_end;
  if (head.chunked) {
    int state = walk_chunks(conn->data, conn->used, conn->header_end, &body_len, &request_end, NULL);
    if (state == -2) {
      write_json_error(conn->fd, 400, "malformed chunked body");
      return -2;
    }
    if ((double)(conn->used - conn->header_end) > server->max_body * 1.1 + 65536) {
      /* the chunk framing aside, the body is over the limit already */
      return refuse_too_large(conn, server->max_body, server->max_body, 1);
    }
    if (state == -1) goto incomplete;
  } else {
    int64_t length = head.content_length < 0 ? 0 : head.content_length;
    if ((double)length > server->max_body) return refuse_too_large(conn, (double)length, server->max_body, 0);
    if ((int64_t)(conn->used - conn->header_end) < length) goto incomplete;
    body_len = (size_t)length;
    request_end = conn->header_end + body_len;
  }
  if ((double)body_len > server->max_body) return refuse_too_large(conn, (double)body_len, server->max_body, 0);
  {
    SEXP request = PROTECT(request_environment(conn, &head, conn->header_end, body_len));
    int keep = answer(conn, &head, request, handler, env);
    UNPROTECT(1);
    if (!keep) return -1;
    /* what follows (a pipelined request) stays for the next call */
    memmove(conn->data, conn->data + request_end, conn->used - request_end);
    conn->used -= request_end;
    conn->header_end = 0;
    conn->continue_sent = 0;
    if (conn->used == 0 && conn->size > 4 * READ_CHUNK) {
      /* a large body's buffer is not kept on an idle keep-alive connection */
      free(conn->data);
      conn->data = NULL;
      conn->size = 0;
    }
    return 1;
  }
incomplete:
  if (conn->peer_closed) return -1;
  if (head.expect_continue && !conn->continue_sent) {
    static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";
    struct iovec part = {(void *)CONTINUE, sizeof CONTINUE - 1};
    if (!send_all(conn->fd, &part, 1)) return -1;
    conn->continue_sent = 1;
  }
  return 0;
}

/* Read what is there; 0 when the peer closed (or failed). */
static int read_available(connection *conn) {
  for (;;) {
    if (conn->size - conn->used < READ_CHUNK) {
      size_t size = conn->size ? conn->size * 2 : READ_CHUNK * 2;
      while (size - conn->used < READ_CHUNK) size *= 2;
      char *grown = (char *)realloc(conn->data, size);
      if (grown == NULL) return 0;
      conn->data = grown;
      conn->size = size;
    }
    ssize_t n = recv(conn->fd, conn->data + conn->used, conn->size - conn->used, 0);
    if (n > 0) {
      conn->used += (size_t)n;
      if ((size_t)n < READ_CHUNK) return 1;
      continue;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
}

static void accept_connections(http_server *server) {
  for (;;) {
    int fd = accept(server->listen_fd, NULL, NULL);
    if (fd < 0) return; /* EAGAIN: no more waiting (or a transient error: poll tells again) */
    if (server->count == MAX_CONNECTIONS || set_nonblocking(fd) < 0) {
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on); /* fails harmlessly on a unix socket */
    connection *conn = &server->conns[server->count++];
    memset(conn, 0, sizeof *conn);
    conn->fd = fd;
    conn->last_active = now_seconds();
  }
}

/* Wait up to `timeout_ms` for requests and answer one. TRUE when one was answered. */
SEXP rsm_http_service(SEXP pointer, SEXP handler, SEXP env, SEXP timeout_ms) {
  http_server *server = get_server(pointer);
  double deadline = now_seconds() + asInteger(timeout_ms) / 1000.0;
  for (;;) {
    /* a request already buffered (read whole, or pipelined) is answered before waiting */
    for (int i = server->count - 1; i >= 0; i--) {
      if (server->conns[i].used == 0) continue;
      int fd = server->conns[i].fd;
      int taken = take_request(server, &server->conns[i], handler, env);
      if (taken == -2) linger(fd);
      if (taken < 0) close_connection(server, i);
      if (taken == 1) return ScalarLogical(1);
    }
    double now = now_seconds();
    for (int i = server->count - 1; i >= 0; i--) {
      if (server->conns[i].used == 0 && now - server->conns[i].last_active > IDLE_SECONDS) close_connection(server, i);
    }
    if (now >= deadline) return ScalarLogical(0);
    struct pollfd fds[MAX_CONNECTIONS + 1];
    fds[0].fd = server->listen_fd;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    for (int i = 0; i < server->count; i++) {
      /* a closed peer's end would poll readable for ever: what it sent is answered above */
      fds[i + 1].fd = server->conns[i].peer_closed ? -1 : server->conns[i].fd;
      fds[i + 1].events = POLLIN;
      fds[i + 1].revents = 0;
    }
    int ready = poll(fds, (nfds_t)server->count + 1, (int)((deadline - now) * 1000) + 1);
    if (ready < 0 && errno != EINTR) error("poll(): %s", strerror(errno));
    R_CheckUserInterrupt();
    if (ready <= 0) continue;
    now = now_seconds();
    /* from the last: closing one moves the last connection into its place */
    for (int i = server->count - 1; i >= 0; i--) {
      if (fds[i + 1].revents == 0) continue;
      server->conns[i].last_active = now;
      if (!read_available(&server->conns[i])) {
        if (server->conns[i].used == 0) close_connection(server, i);
        else server->conns[i].peer_closed = 1;
      }
    }
    if (fds[0].revents & POLLIN) accept_connections(server);
  }
}
