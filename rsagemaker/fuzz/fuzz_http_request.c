/* libFuzzer harness for the worker's HTTP request parser (src/http_parse.c), the code that reads
 * whatever a client sends before any of it reaches R.
 *
 * The input is a connection's byte stream after a 2-byte prelude: the first byte picks the payload
 * limit, the second how the bytes arrive (all at once, or in pieces whose sizes come from the
 * stream's own bytes). The harness does what src/http.c does with a connection: skip blank lines,
 * parse as bytes come (the parse resumes where it stopped), and for each whole request copy its
 * body and group its headers, then go on with the pipelined rest. Besides the sanitizers' own
 * checks it asserts what the server relies on:
 *   - the same verdict whether the bytes come at once or in pieces (the resumed parse is exact);
 *   - a request not yet whole always asks for more bytes than it has (read_cap > used), so the
 *     server never stops reading a connection that it cannot yet answer;
 *   - offsets stay inside the bytes, a decoded body is no longer than its encoding, a header
 *     group's joined value is exactly its values and ", " between them.
 */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"
#include "fuzz_arena.h"

#define MAX_REQUESTS 64

static const double LIMITS[] = {INFINITY, 0, 1, 100, 65536, 6 * 1024 * 1024};


/* Parse data[0..used) as a connection whose bytes came in pieces: ends[] are the successive
 * amounts buffered. Returns the final verdict and the request. */
static enum http_verdict parse_in_pieces(const char *data, size_t used, double limit, const size_t *ends,
                                         size_t pieces, http_request *request) {
  memset(request, 0, sizeof *request);
  enum http_verdict verdict = HTTP_INCOMPLETE;
  for (size_t k = 0; k < pieces; k++) {
    size_t have = ends[k] < used ? ends[k] : used;
    if (k > 0 && verdict == HTTP_INCOMPLETE && have > request->read_cap) have = request->read_cap;
    verdict = http_parse(data, have, limit, request);
    if (verdict != HTTP_INCOMPLETE) return verdict;
    assert(request->read_cap > have); /* more bytes are wanted: the server keeps reading */
  }
  if (used > request->read_cap) used = request->read_cap;
  return http_parse(data, used, limit, request);
}

static void check_groups(const char *data, const http_request *request) {
  arena memory = {NULL, 0, 0};
  http_header_group *groups;
  size_t count = http_group_headers(data, request->header_end, arena_alloc, &memory, &groups);
  size_t values = 0;
  for (size_t g = 0; g < count; g++) {
    assert(groups[g].key_len >= 6 && memcmp(groups[g].key, "HTTP_", 5) == 0);
    assert(strlen(groups[g].key) == groups[g].key_len);
    for (size_t j = 5; j < groups[g].key_len; j++) {
      char c = groups[g].key[j];
      assert(c > ' ' && c < 127 && c != '-' && !(c >= 'a' && c <= 'z'));
    }
    for (size_t h = 0; h < g; h++) assert(strcmp(groups[h].key, groups[g].key) != 0);
    values += groups[g].value_len;
  }
  assert(values <= request->header_end);
  arena_free(&memory);
}

int LLVMFuzzerTestOneInput(const uint8_t *input, size_t size) {
  if (size < 2) return 0;
  double limit = LIMITS[input[0] % (sizeof LIMITS / sizeof LIMITS[0])];
  int split = input[1] & 1;
  size_t used = size - 2;
  char *data = (char *)malloc(used ? used : 1); /* its own block: ASan sees every overread */
  memcpy(data, input + 2, used);

  size_t start = 0;
  for (int n = 0; n < MAX_REQUESTS && start < used; n++) {
    const char *rest = data + start;
    size_t left = used - start;
    size_t skip = http_skip_blank_lines(rest, left);
    rest += skip;
    left -= skip;
    if (left == 0) break;

    /* the bytes at once */
    http_request whole;
    memset(&whole, 0, sizeof whole);
    enum http_verdict verdict = http_parse(rest, left, limit, &whole);
    if (verdict == HTTP_INCOMPLETE) assert(whole.read_cap > left);

    /* the same bytes in pieces: sizes from the stream itself (1 to 256 bytes each) */
    if (split) {
      size_t ends[64], pieces = 0, at = 0;
      while (pieces < 63 && at < left) {
        at += 1 + (unsigned char)rest[at % left];
        ends[pieces++] = at;
      }
      ends[pieces++] = left;
      http_request piecewise;
      enum http_verdict again = parse_in_pieces(rest, left, limit, ends, pieces, &piecewise);
      assert(again == verdict);
      if (verdict == HTTP_COMPLETE) {
        assert(piecewise.header_end == whole.header_end);
        assert(piecewise.body_len == whole.body_len);
        assert(piecewise.request_end == whole.request_end);
      }
    }
    if (verdict != HTTP_COMPLETE) break;

    assert(whole.header_end > 0 && whole.header_end <= whole.request_end && whole.request_end <= left);
    assert(whole.body_len <= whole.request_end - whole.header_end);
    assert((double)whole.body_len <= limit);
    const http_head *head = &whole.head;
    assert(head->target_at + head->target_len <= whole.header_end);
    unsigned char *body = (unsigned char *)malloc(whole.body_len ? whole.body_len : 1);
    http_copy_body(rest, &whole, body);
    if (!head->chunked && whole.body_len > 0) assert(memcmp(body, rest + whole.header_end, whole.body_len) == 0);
    free(body);
    check_groups(rest, &whole);
    start += skip + whole.request_end;
  }
  free(data);
  return 0;
}
