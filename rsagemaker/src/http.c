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
 * JSON 413 (with serving.R's wording); a transfer coding other than chunked, a 501.
 *
 * What a request may cost is bounded whatever the client sends: the request parser (http_parse.c,
 * plain C, fuzzed) reads each byte about once, buffers no more than the request needs, and refuses
 * an oversized head, chunk or body as soon as it is announced; a request whose head does not come
 * whole within the header timeout, or whose body stops coming for the body timeout, gets a 408; a
 * header name is made an R symbol only when it is a known one or among the first few others (R
 * never frees a symbol). Every connection nginx opens is accepted (up to the open-file limit): the
 * ones waiting for their turn wait in the server, never refused. An R error on the way (no memory
 * for a body, a response this server cannot send) answers that request 507 or 500; the worker goes
 * on.
 */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/eventloop.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "http_parse.h"

#define READ_CHUNK 65536
#define IDLE_SECONDS 300          /* a connection without a request for that long is closed */
#define WRITE_TIMEOUT_MS 60000    /* a client that stops reading the response is dropped */
#define LISTEN_BACKLOG 4096       /* the kernel caps it at net.core.somaxconn */
#define MIN_CONNECTIONS 64
#define MAX_OPEN_FILES 65536      /* the soft limit is raised towards the hard one, up to this */
#define RESERVED_FILES 64         /* kept for R's own files and connections */
#define MAX_OTHER_HEADER_NAMES 64 /* header names made symbols besides the known ones */

typedef struct {
  int fd;
  char *data; /* what has been read and not yet answered */
  size_t used, size;
  http_request request;   /* the parse of the request being read, kept as its bytes come */
  int continue_sent;      /* "100 Continue" answered to Expect */
  int peer_closed;        /* the client has finished sending: answer what is buffered, then close */
  double last_active;     /* the last read */
  double request_started; /* the first byte of the request being read */
} connection;

/* Scratch memory for one request's answer (its headers grouped, the response's head): kept by the
 * server and reset after each request, so that answering makes no R garbage (R collects when
 * garbage accrues: the tail of the latency) and an R error on the way leaks nothing. */
#define ARENA_BLOCK 16384
typedef struct arena_block {
  struct arena_block *next;
  size_t size, used;
  char data[];
} arena_block;

typedef struct {
  int listen_fd;
  arena_block *arena;
  double max_body;        /* bytes; R_PosInf is no limit (batch transform's MaxPayloadInMB=0) */
  double header_timeout;  /* seconds for a request's line and headers, from its first byte */
  double body_timeout;    /* seconds a body may stop coming */
  connection *conns;
  struct pollfd *fds;     /* conns' slots + 1 */
  int count, capacity, max_count;
} http_server;

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

/* Memory from the server's arena (an R error when there is none: answer() catches it). */
static void *arena_alloc(size_t size, void *context) {
  http_server *server = (http_server *)context;
  size = (size + 15) & ~(size_t)15;
  arena_block *block = server->arena;
  if (block == NULL || block->size - block->used < size) {
    size_t room = size > ARENA_BLOCK ? size : ARENA_BLOCK;
    arena_block *added = (arena_block *)malloc(sizeof(arena_block) + room);
    if (added == NULL) error("cannot allocate %zu bytes for the request", size);
    added->next = block;
    added->size = room;
    added->used = 0;
    server->arena = block = added;
  }
  void *memory = block->data + block->used;
  block->used += size;
  return memory;
}

/* After a request: the arena's memory is free again; one standard block stays for the next. */
static void arena_reset(http_server *server) {
  arena_block *block = server->arena, *kept = NULL;
  while (block != NULL) {
    arena_block *next = block->next;
    if (kept == NULL && block->size == ARENA_BLOCK) {
      kept = block;
      kept->used = 0;
      kept->next = NULL;
    } else {
      free(block);
    }
    block = next;
  }
  server->arena = kept;
}

static void finalize_server(SEXP pointer) {
  http_server *server = (http_server *)R_ExternalPtrAddr(pointer);
  if (server == NULL) return;
  while (server->count > 0) close_connection(server, server->count - 1);
  arena_reset(server);
  free(server->arena);
  if (server->listen_fd >= 0) close(server->listen_fd);
  free(server->conns);
  free(server->fds);
  free(server);
  R_ClearExternalPtr(pointer);
}

static http_server *get_server(SEXP pointer) {
  http_server *server = TYPEOF(pointer) == EXTPTRSXP ? (http_server *)R_ExternalPtrAddr(pointer) : NULL;
  if (server == NULL) error("not an open rsagemaker HTTP server");
  return server;
}

/* How many connections the worker may hold: its open-file limit (raised towards the hard limit)
 * less what R keeps for itself. */
static int connection_limit(void) {
  struct rlimit limit;
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return MIN_CONNECTIONS;
  rlim_t wanted = limit.rlim_max == RLIM_INFINITY || limit.rlim_max > MAX_OPEN_FILES ? MAX_OPEN_FILES : limit.rlim_max;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    struct rlimit raised = {wanted, limit.rlim_max};
    if (setrlimit(RLIMIT_NOFILE, &raised) == 0) limit.rlim_cur = wanted;
  }
  rlim_t files = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > MAX_OPEN_FILES ? MAX_OPEN_FILES : limit.rlim_cur;
  return files > RESERVED_FILES + MIN_CONNECTIONS ? (int)(files - RESERVED_FILES) : MIN_CONNECTIONS;
}

/* Listen on a unix socket (`path`) or on TCP `host`:`port`; returns the server as an external
 * pointer (closed by the collector, or by rsm_http_close). `timeouts`: the header and body
 * timeouts in seconds. */
SEXP rsm_http_listen(SEXP path, SEXP host, SEXP port, SEXP max_body, SEXP timeouts) {
  if (TYPEOF(timeouts) != REALSXP || XLENGTH(timeouts) != 2 || !(REAL(timeouts)[0] > 0) || !(REAL(timeouts)[1] > 0)) {
    error("timeouts must be two positive numbers of seconds (header, body)");
  }
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
  /* A long queue: nginx opens a connection per request in flight, all at once under a burst; they
   * wait here while the worker answers one request (the worker takes them all at its next turn). */
  if (listen(fd, LISTEN_BACKLOG) < 0 || set_nonblocking(fd) < 0) {
    int saved = errno;
    close(fd);
    error("listen(): %s", strerror(saved));
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  http_server *server = (http_server *)calloc(1, sizeof(http_server));
  if (server != NULL) {
    server->capacity = MIN_CONNECTIONS;
    server->conns = (connection *)calloc((size_t)server->capacity, sizeof(connection));
    server->fds = (struct pollfd *)calloc((size_t)server->capacity + 1, sizeof(struct pollfd));
  }
  if (server == NULL || server->conns == NULL || server->fds == NULL) {
    if (server != NULL) free(server->conns), free(server->fds), free(server);
    close(fd);
    error("out of memory");
  }
  server->listen_fd = fd;
  server->max_body = asReal(max_body);
  server->header_timeout = REAL(timeouts)[0];
  server->body_timeout = REAL(timeouts)[1];
  server->max_count = connection_limit();
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

/* ---- writing a response (plain C: no R allocation, so it also answers when R cannot) ----------- */

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
    case 501: return "Not Implemented";
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

/* A JSON error of our own (`message` holds no character JSON would escape); the connection is
 * closed after it. */
static int write_json_error(int fd, int status, const char *message) {
  char body[512], head[256];
  int body_len = snprintf(body, sizeof body, "{\"error\":\"%s\"}", message);
  if (body_len < 0 || body_len >= (int)sizeof body) body_len = (int)sizeof body - 1;
  int head_len = snprintf(head, sizeof head,
                          "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n"
                          "Connection: close\r\n\r\n",
                          status, reason_phrase(status), body_len);
  struct iovec parts[2] = {{head, (size_t)head_len}, {body, (size_t)body_len}};
  return send_all(fd, parts, 2);
}

/* ---- handing a request to R ------------------------------------------------------------------- */

/* Header names that are always made symbols (what handlers and proxies commonly read); any other
 * name only while fewer than MAX_OTHER_HEADER_NAMES others have been: R never frees a symbol, so a
 * client sending new names would otherwise grow the worker for good. The others' headers are left
 * out of the request. */
static const char *const KNOWN_HEADERS[] = {
    "HTTP_ACCEPT", "HTTP_ACCEPT_CHARSET", "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT_LANGUAGE",
    "HTTP_AUTHORIZATION", "HTTP_CACHE_CONTROL", "HTTP_CONNECTION", "HTTP_CONTENT_ENCODING",
    "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_MD5", "HTTP_CONTENT_TYPE", "HTTP_COOKIE", "HTTP_DATE",
    "HTTP_EXPECT", "HTTP_FORWARDED", "HTTP_HOST", "HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH", "HTTP_ORIGIN",
    "HTTP_PRAGMA", "HTTP_RANGE", "HTTP_REFERER", "HTTP_TE", "HTTP_TRACEPARENT", "HTTP_TRACESTATE",
    "HTTP_TRANSFER_ENCODING", "HTTP_USER_AGENT", "HTTP_VIA", "HTTP_X_AMZ_DATE",
    "HTTP_X_AMZ_SECURITY_TOKEN", "HTTP_X_AMZN_INVOCATION_TIMEOUT", "HTTP_X_AMZN_REQUESTID",
    "HTTP_X_AMZN_SAGEMAKER_CLOSED_SESSION_ID", "HTTP_X_AMZN_SAGEMAKER_CUSTOM_ATTRIBUTES",
    "HTTP_X_AMZN_SAGEMAKER_ENABLE_EXPLANATIONS", "HTTP_X_AMZN_SAGEMAKER_INFERENCE_COMPONENT",
    "HTTP_X_AMZN_SAGEMAKER_INFERENCE_ID", "HTTP_X_AMZN_SAGEMAKER_NEW_SESSION_ID",
    "HTTP_X_AMZN_SAGEMAKER_SESSION_ID", "HTTP_X_AMZN_SAGEMAKER_TARGET_CONTAINER_HOSTNAME",
    "HTTP_X_AMZN_SAGEMAKER_TARGET_MODEL", "HTTP_X_AMZN_SAGEMAKER_TARGET_VARIANT", "HTTP_X_AMZN_TRACE_ID",
    "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT", "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_REAL_IP", "HTTP_X_REQUEST_ID"};

#define NAME_SLOTS 256 /* > known + others, a power of two */
static char *header_names[NAME_SLOTS];
static int other_header_names = -1; /* -1: the table is not filled yet */

static size_t name_slot(const char *key) {
  uint64_t h = 1469598103934665603u;
  for (const char *p = key; *p; p++) h = (h ^ (unsigned char)*p) * 1099511628211u;
  size_t slot = (size_t)h & (NAME_SLOTS - 1);
  while (header_names[slot] != NULL && strcmp(header_names[slot], key) != 0) slot = (slot + 1) & (NAME_SLOTS - 1);
  return slot;
}

static int header_name_allowed(const char *key) {
  if (other_header_names < 0) {
    for (size_t i = 0; i < sizeof KNOWN_HEADERS / sizeof KNOWN_HEADERS[0]; i++) {
      header_names[name_slot(KNOWN_HEADERS[i])] = (char *)KNOWN_HEADERS[i];
    }
    other_header_names = 0;
  }
  size_t slot = name_slot(key);
  if (header_names[slot] != NULL) return 1;
  if (other_header_names >= MAX_OTHER_HEADER_NAMES) return 0;
  char *copy = strdup(key);
  if (copy == NULL) return 0;
  header_names[slot] = copy;
  other_header_names++;
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
 * ("?..." or ""), the HTTP_* headers (a repeated one's values joined with ", ") and body. */
static SEXP request_environment(http_server *server, const connection *conn) {
  const char *data = conn->data;
  const http_request *parsed = &conn->request;
  const http_head *head = &parsed->head;
  http_header_group *groups;
  size_t count = http_group_headers(data, parsed->header_end, arena_alloc, server, &groups);
  SEXP request = PROTECT(R_NewEnv(R_EmptyEnv, FALSE, 0));
  const char *target = data + head->target_at;
  const char *query = memchr(target, '?', head->target_len);
  size_t path_len = query ? (size_t)(query - target) : head->target_len;
  define(request, "REQUEST_METHOD", ScalarString(mkCharLen(data, (int)head->method_len)));
  define(request, "PATH_INFO", ScalarString(mkCharLenCE(target, (int)path_len, CE_UTF8)));
  define(request, "QUERY_STRING",
         ScalarString(query ? mkCharLenCE(query, (int)(head->target_len - path_len), CE_UTF8) : mkChar("")));
  for (size_t g = 0; g < count; g++) {
    if (!header_name_allowed(groups[g].key)) continue;
    define(request, groups[g].key, ScalarString(mkCharLenCE(groups[g].value, (int)groups[g].value_len, CE_UTF8)));
  }
  SEXP body = PROTECT(allocVector(RAWSXP, (R_xlen_t)parsed->body_len));
  http_copy_body(data, parsed, RAW(body));
  define(request, "body", body);
  UNPROTECT(2);
  return request;
}

typedef struct {
  char *data;
  size_t used, size;
  http_server *server;
} text_buffer;

static void text_append(text_buffer *b, const char *s, size_t n) {
  if (b->used + n > b->size) {
    size_t size = b->size ? b->size : 512;
    while (size < b->used + n) size *= 2;
    char *grown = (char *)arena_alloc(size, b->server); /* may raise an R error: answer() catches it */
    if (b->used > 0) memcpy(grown, b->data, b->used);
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

enum answer_stage { STAGE_REQUEST, STAGE_HANDLER, STAGE_RESPONSE, STAGE_WRITE, STAGE_DONE };

typedef struct {
  http_server *server;
  connection *conn;
  SEXP handler, env;
  int head_only, keep_alive;
  enum answer_stage stage;
  int written; /* the response went out whole */
} answer_call;

/* Build the request, call the handler, write what it returns: run by R_ToplevelExec, so that an R
 * error anywhere on the way ends here (answer() then answers it), never in the worker's loop. */
static void answer_in_r(void *data) {
  answer_call *call = (answer_call *)data;
  call->stage = STAGE_REQUEST;
  SEXP request = PROTECT(request_environment(call->server, call->conn));
  call->stage = STAGE_HANDLER;
  int failed = 0;
  SEXP expression = PROTECT(lang2(call->handler, request));
  SEXP response = PROTECT(R_tryEval(expression, call->env, &failed));
  call->stage = STAGE_RESPONSE;
  SEXP fields = failed ? R_NilValue : getAttrib(response, R_NamesSymbol);
  int code = 500;
  SEXP headers = R_NilValue, body = R_NilValue;
  static const char HANDLER_FAILED[] = "{\"error\":\"the model server's handler failed\"}";
  const char *bytes = HANDLER_FAILED;
  size_t length = sizeof HANDLER_FAILED - 1;
  int valid = !failed && TYPEOF(response) == VECSXP && TYPEOF(fields) == STRSXP;
  if (valid) {
    SEXP status_value = R_NilValue;
    for (R_xlen_t i = 0; i < XLENGTH(response) && i < XLENGTH(fields); i++) {
      const char *name = CHAR(STRING_ELT(fields, i));
      if (strcmp(name, "status") == 0) status_value = VECTOR_ELT(response, i);
      else if (strcmp(name, "headers") == 0) headers = VECTOR_ELT(response, i);
      else if (strcmp(name, "body") == 0) body = VECTOR_ELT(response, i);
    }
    code = isNull(status_value) ? 200 : asInteger(status_value);
    if (code == NA_INTEGER || code < 100 || code > 599) code = 500;
    if (TYPEOF(headers) != VECSXP) headers = R_NilValue;
    bytes = "";
    length = 0;
    if (TYPEOF(body) == RAWSXP) {
      bytes = (const char *)RAW(body);
      length = (size_t)XLENGTH(body);
    } else if (TYPEOF(body) == STRSXP && XLENGTH(body) >= 1 && STRING_ELT(body, 0) != NA_STRING) {
      bytes = CHAR(STRING_ELT(body, 0));
      length = (size_t)LENGTH(STRING_ELT(body, 0));
    }
  }
  text_buffer head = {NULL, 0, 0, call->server};
  char line[160];
  snprintf(line, sizeof line, "HTTP/1.1 %d %s\r\n", code, reason_phrase(code));
  text_append(&head, line, strlen(line));
  if (!valid) text_append(&head, "Content-Type: application/json\r\n", 32);
  SEXP names = isNull(headers) ? R_NilValue : getAttrib(headers, R_NamesSymbol);
  for (R_xlen_t i = 0; TYPEOF(names) == STRSXP && i < XLENGTH(headers) && i < XLENGTH(names); i++) {
    SEXP value = VECTOR_ELT(headers, i);
    if (TYPEOF(value) != STRSXP || XLENGTH(value) < 1 || STRING_ELT(value, 0) == NA_STRING) continue;
    const char *name = CHAR(STRING_ELT(names, i));
    if (http_equal_nocase(name, strlen(name), "content-length") || http_equal_nocase(name, strlen(name), "connection")) continue;
    append_header_value(&head, name);
    text_append(&head, ": ", 2);
    append_header_value(&head, translateCharUTF8(STRING_ELT(value, 0))); /* may raise an R error */
    text_append(&head, "\r\n", 2);
  }
  snprintf(line, sizeof line, "Content-Length: %zu\r\n%s\r\n", length, call->keep_alive ? "" : "Connection: close\r\n");
  text_append(&head, line, strlen(line));
  call->stage = STAGE_WRITE;
  struct iovec parts[2] = {{head.data, head.used}, {(void *)bytes, call->head_only ? 0 : length}};
  call->written = send_all(call->conn->fd, parts, call->head_only || length == 0 ? 1 : 2);
  call->stage = STAGE_DONE;
  UNPROTECT(3);
}

/* Answer a whole request. 1: answered, the connection kept; -1: close it; -2: an error answered:
 * linger, then close it. */
static int answer(http_server *server, connection *conn, SEXP handler, SEXP env) {
  const http_head *head = &conn->request.head;
  answer_call call = {server, conn, handler, env, 0, 0, STAGE_REQUEST, 0};
  call.head_only = head->method_len == 4 && memcmp(conn->data, "HEAD", 4) == 0;
  call.keep_alive = head->keep_alive && !conn->peer_closed;
  Rboolean completed = R_ToplevelExec(answer_in_r, &call);
  arena_reset(server);
  if (completed) return call.written && call.keep_alive ? 1 : -1;
  /* An R error outside the handler's own evaluation (R has printed it): no memory for the request,
   * or a response this server cannot send. */
  if (call.stage == STAGE_REQUEST || call.stage == STAGE_HANDLER) { /* what R allocates there: memory */
    write_json_error(conn->fd, 507, "the model server has no memory left for this request; retry it");
  } else if (call.stage == STAGE_RESPONSE) {
    write_json_error(conn->fd, 500, "the model server's handler returned a response it cannot send");
  } else {
    return -1; /* cut short while it was being written: nothing sensible can follow */
  }
  return -2;
}

/* A JSON 413 in serving.R's words (request_body); -2: linger, then close. */
static int refuse_too_large(connection *conn, double bytes, double limit, int at_least) {
  char message[200];
  snprintf(message, sizeof message, "payload of %s%.0f bytes exceeds the limit of %.0f bytes",
           at_least ? "over " : "", bytes, limit);
  write_json_error(conn->fd, 413, message);
  return -2;
}

static void start_request(connection *conn, double now) {
  memset(&conn->request, 0, sizeof conn->request);
  conn->continue_sent = 0;
  conn->request_started = now;
}

/* What the connection's buffer holds: 1 a whole request (answered), 0 not yet, -1 close it, -2 an
 * error answered: linger, then close it. */
static int take_request(http_server *server, connection *conn, SEXP handler, SEXP env) {
  if (conn->request.header_end == 0) {
    size_t skip = http_skip_blank_lines(conn->data, conn->used);
    if (skip > 0) {
      memmove(conn->data, conn->data + skip, conn->used - skip);
      conn->used -= skip;
      conn->request.scanned = 0;
      if (conn->used == 0) return 0;
    }
  }
  http_request *request = &conn->request;
  switch (http_parse(conn->data, conn->used, server->max_body, request)) {
  case HTTP_INCOMPLETE:
    if (conn->peer_closed) return -1;
    if (request->header_end > 0 && request->head.expect_continue && !conn->continue_sent) {
      static const char CONTINUE[] = "HTTP/1.1 100 Continue\r\n\r\n";
      struct iovec part = {(void *)CONTINUE, sizeof CONTINUE - 1};
      if (!send_all(conn->fd, &part, 1)) return -1;
      conn->continue_sent = 1;
    }
    return 0;
  case HTTP_MALFORMED:
    write_json_error(conn->fd, 400, "malformed HTTP request");
    return -2;
  case HTTP_HEAD_TOO_LARGE:
    write_json_error(conn->fd, 400, "the request line or headers are too large");
    return -2;
  case HTTP_BAD_CHUNKS:
    write_json_error(conn->fd, 400, "malformed chunked body");
    return -2;
  case HTTP_TOO_LARGE:
    return refuse_too_large(conn, request->refused_bytes, server->max_body, request->at_least);
  case HTTP_UNKNOWN_CODING:
    write_json_error(conn->fd, 501, "a transfer coding other than chunked is not implemented");
    return -2;
  case HTTP_COMPLETE:
    break;
  }
  int kept = answer(server, conn, handler, env);
  if (kept != 1) return kept;
  /* what follows (a pipelined request) stays for the next call */
  size_t end = request->request_end;
  memmove(conn->data, conn->data + end, conn->used - end);
  conn->used -= end;
  start_request(conn, now_seconds());
  if (conn->used == 0 && conn->size > 4 * READ_CHUNK) {
    /* a large body's buffer is not kept on an idle keep-alive connection */
    free(conn->data);
    conn->data = NULL;
    conn->size = 0;
  }
  return 1;
}

/* The bytes worth buffering for the request being read: its parse says (no more than its head,
 * then its body, need). */
static size_t read_cap(const connection *conn) {
  return conn->request.read_cap > 0 ? conn->request.read_cap : (size_t)HTTP_MAX_HEADER_BYTES + 1;
}

/* Read what is there, up to the cap: 1 read (or nothing there yet), 0 the peer closed (or failed),
 * -1 no memory for the request's bytes. */
static int read_available(connection *conn) {
  size_t cap = read_cap(conn);
  while (conn->used < cap) {
    if (conn->size - conn->used < READ_CHUNK && conn->size < cap) {
      /* doubling, but no more than the request needs (a large body's size is known) */
      size_t size = conn->size ? conn->size * 2 : READ_CHUNK * 2;
      if (size < conn->used + READ_CHUNK) size = conn->used + READ_CHUNK;
      if (size > cap) size = cap;
      char *grown = (char *)realloc(conn->data, size);
      if (grown == NULL) return -1;
      conn->data = grown;
      conn->size = size;
    }
    size_t room = conn->size - conn->used;
    if (room > cap - conn->used) room = cap - conn->used;
    ssize_t n = recv(conn->fd, conn->data + conn->used, room, 0);
    if (n > 0) {
      conn->used += (size_t)n;
      if ((size_t)n < room) return 1;
      continue;
    }
    if (n == 0) return 0;
    if (errno == EINTR) continue;
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
  return 1;
}

/* Room for one more connection: the table grows as needed, up to the open-file limit; at the
 * limit, the connection idle the longest makes room (nginx opens another when it needs one). */
static int make_room(http_server *server) {
  if (server->count < server->capacity) return 1;
  if (server->count >= server->max_count) {
    int oldest = -1;
    for (int i = 0; i < server->count; i++) {
      if (server->conns[i].used == 0 && (oldest < 0 || server->conns[i].last_active < server->conns[oldest].last_active)) oldest = i;
    }
    if (oldest < 0) return 0;
    close_connection(server, oldest);
    return 1;
  }
  int capacity = server->capacity * 2 > server->max_count ? server->max_count : server->capacity * 2;
  connection *conns = (connection *)realloc(server->conns, (size_t)capacity * sizeof(connection));
  if (conns == NULL) return 0;
  server->conns = conns;
  struct pollfd *fds = (struct pollfd *)realloc(server->fds, ((size_t)capacity + 1) * sizeof(struct pollfd));
  if (fds == NULL) return 0;
  server->fds = fds;
  server->capacity = capacity;
  return 1;
}

static int can_accept(const http_server *server) {
  if (server->count < server->max_count) return 1;
  for (int i = 0; i < server->count; i++) {
    if (server->conns[i].used == 0) return 1;
  }
  return 0;
}

static void accept_connections(http_server *server) {
  while (can_accept(server)) {
    int fd = accept(server->listen_fd, NULL, NULL);
    if (fd < 0) return; /* EAGAIN: no more waiting (or a transient error: poll tells again) */
    if (set_nonblocking(fd) < 0 || !make_room(server)) {
      close(fd);
      continue;
    }
    fcntl(fd, F_SETFD, FD_CLOEXEC);
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on); /* fails harmlessly on a unix socket */
    connection *conn = &server->conns[server->count++];
    memset(conn, 0, sizeof *conn);
    conn->fd = fd;
    conn->last_active = conn->request_started = now_seconds();
  }
}

/* Close what waited too long: an idle keep-alive connection silently; a request whose head has not
 * come whole within the header timeout, or whose body has stopped coming, with a 408. Returns the
 * time of the next such deadline. */
static double expire_connections(http_server *server, double now) {
  double next = now + IDLE_SECONDS;
  for (int i = server->count - 1; i >= 0; i--) {
    connection *conn = &server->conns[i];
    double deadline = conn->used == 0 ? conn->last_active + IDLE_SECONDS
                      : conn->request.header_end == 0 ? conn->request_started + server->header_timeout
                                                      : conn->last_active + server->body_timeout;
    if (now < deadline) {
      if (deadline < next) next = deadline;
      continue;
    }
    /* bytes that came while the worker was busy with another request are read first */
    struct pollfd waiting = {conn->fd, POLLIN, 0};
    if (!conn->peer_closed && poll(&waiting, 1, 0) > 0) {
      next = now;
      continue;
    }
    if (conn->used > 0 && !conn->peer_closed) {
      write_json_error(conn->fd, 408, conn->request.header_end == 0
                                          ? "the request line and headers did not come in time"
                                          : "the request body stopped coming");
    }
    close_connection(server, i);
  }
  return next;
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
    double next = expire_connections(server, now);
    if (now >= deadline) return ScalarLogical(0);
    struct pollfd *fds = server->fds;
    fds[0].fd = can_accept(server) ? server->listen_fd : -1;
    fds[0].events = POLLIN;
    fds[0].revents = 0;
    for (int i = 0; i < server->count; i++) {
      const connection *conn = &server->conns[i];
      /* a closed peer's end would poll readable for ever (what it sent is answered above); a
       * connection holding all its request may send is not read until that is answered */
      fds[i + 1].fd = conn->peer_closed || conn->used >= read_cap(conn) ? -1 : conn->fd;
      fds[i + 1].events = POLLIN;
      fds[i + 1].revents = 0;
    }
    double until = next < deadline ? next : deadline;
    int ready = poll(fds, (nfds_t)server->count + 1, (int)((until - now) * 1000) + 1);
    if (ready < 0 && errno != EINTR) error("poll(): %s", strerror(errno));
    R_CheckUserInterrupt();
    if (ready <= 0) continue;
    now = now_seconds();
    /* from the last: closing one moves the last connection into its place */
    for (int i = server->count - 1; i >= 0; i--) {
      if (fds[i + 1].revents == 0) continue;
      connection *conn = &server->conns[i];
      if (conn->used == 0) conn->request_started = now;
      conn->last_active = now;
      int read = read_available(conn);
      if (read < 0) { /* no memory for the body */
        write_json_error(conn->fd, 507, "the model server has no memory left for this request; retry it");
        linger(conn->fd);
        close_connection(server, i);
      } else if (read == 0) {
        if (conn->used == 0) close_connection(server, i);
        else conn->peer_closed = 1;
      }
    }
    if (fds[0].revents & POLLIN) accept_connections(server);
  }
}
