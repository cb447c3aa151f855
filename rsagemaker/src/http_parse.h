/* The worker's HTTP/1.1 request parser, in plain C (no R API, no sockets): http.c feeds it each
 * connection's buffered bytes, and the fuzzing harness (rsagemaker/fuzz) feeds it anything. */
#ifndef RSM_HTTP_PARSE_H
#define RSM_HTTP_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define HTTP_MAX_HEADER_BYTES 65536 /* request line and headers; nginx's own limit is lower */
#define HTTP_MAX_NAME_BYTES 250     /* longer header names are no handler's: left out */

/* What the buffered bytes of a connection hold. */
enum http_verdict {
  HTTP_INCOMPLETE = 0,      /* not a whole request yet: read up to `read_cap` bytes, then look again */
  HTTP_COMPLETE = 1,        /* a whole request: head, body_len, request_end */
  HTTP_MALFORMED = -1,      /* 400: the request line or a header is malformed */
  HTTP_HEAD_TOO_LARGE = -2, /* 400: the request line and headers are over HTTP_MAX_HEADER_BYTES */
  HTTP_BAD_CHUNKS = -3,     /* 400: a malformed chunked body */
  HTTP_TOO_LARGE = -4,      /* 413: the body is over the payload limit (refused_bytes, at_least) */
  HTTP_UNKNOWN_CODING = -5  /* 501: a transfer coding other than chunked */
};

typedef struct {
  size_t method_len, target_at, target_len, version_at; /* the method starts the request */
  int keep_alive, expect_continue, chunked;
  int64_t content_length; /* -1 when absent */
  int transfer_encodings, unknown_coding, chunked_not_last;
} http_head;

typedef struct {
  http_head head;
  size_t header_end;    /* bytes of request line + headers, with the blank line; 0 until seen */
  size_t body_len;      /* the body's bytes (decoded, for a chunked one) */
  size_t request_end;   /* where the next (pipelined) request starts */
  size_t read_cap;      /* HTTP_INCOMPLETE: the bytes worth buffering for this request */
  double refused_bytes; /* HTTP_TOO_LARGE: the size that was refused */
  int at_least;         /* HTTP_TOO_LARGE: refused_bytes is a lower bound */
  /* How far the parse got: kept between calls on the same request, so that bytes arriving a few
   * at a time are each looked at once (zero the whole struct for a new request). */
  size_t scanned;       /* header bytes searched for the blank line */
  size_t chunk_at;      /* a chunked body: where the next chunk's size line (or trailer line) starts */
  size_t chunk_decoded; /* a chunked body: its bytes before chunk_at */
  int in_trailer;       /* a chunked body: past the last chunk, in the trailer fields */
  size_t trailer_at;    /* a chunked body: where its trailer fields start */
} http_request;

/* The blank lines a request may start with (RFC 9112, 2.2): how many bytes to skip. */
size_t http_skip_blank_lines(const char *data, size_t used);

/* Parse the request at the start of data[0..used) (blank lines already skipped), its body under
 * `max_body` bytes (INFINITY: no limit). `request` holds the progress of earlier calls on the same
 * request (the same bytes, more of them now): zero it for a new one. */
enum http_verdict http_parse(const char *data, size_t used, double max_body, http_request *request);

/* The body of a complete request, decoded, into out[0..request->body_len). */
void http_copy_body(const char *data, const http_request *request, unsigned char *out);

/* Each header line (after the request line) of a head whose end is known: name and value (value
 * trimmed). Returns 0 for a malformed line (http_parse has refused such a head). */
typedef int (*http_header_visitor)(void *state, const char *name, size_t name_len, const char *value,
                                   size_t value_len);
int http_each_header(const char *data, size_t header_end, http_header_visitor visit, void *state);

/* The headers grouped by name as the request environment names them (HTTP_<NAME>: upper case, '-'
 * as '_'), in the order each name first comes; a repeated header's values are joined with ", "
 * (RFC 9110's combination), in one pass over all of them. Names over HTTP_MAX_NAME_BYTES are left
 * out. `alloc` gives memory that lives as long as the groups are used (never freed here). */
typedef struct {
  char *key;         /* "HTTP_<NAME>", NUL-terminated */
  size_t key_len;
  char *value;       /* the values joined, not NUL-terminated */
  size_t value_len;
} http_header_group;

size_t http_group_headers(const char *data, size_t header_end, void *(*alloc)(size_t, void *), void *context,
                          http_header_group **groups);

/* Case-insensitive: is a (a_len bytes) the NUL-terminated b? */
int http_equal_nocase(const char *a, size_t a_len, const char *b);

#endif
