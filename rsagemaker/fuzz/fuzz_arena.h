/* The harnesses' allocator: every block of one input, freed together (as the server's arena frees a
 * request's scratch memory), so that ASan reports what outlives one input. */
#ifndef RSAGEMAKER_FUZZ_ARENA_H
#define RSAGEMAKER_FUZZ_ARENA_H

#include <assert.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
  void **blocks;
  size_t count, size;
} arena;

static void *arena_alloc(size_t size, void *context) {
  arena *a = (arena *)context;
  if (a->count == a->size) {
    a->size = a->size ? 2 * a->size : 16;
    a->blocks = (void **)realloc(a->blocks, a->size * sizeof(void *));
    assert(a->blocks != NULL);
  }
  void *block = malloc(size ? size : 1);
  assert(block != NULL);
  a->blocks[a->count++] = block;
  return block;
}

static void arena_free(arena *a) {
  for (size_t i = 0; i < a->count; i++) free(a->blocks[i]);
  free(a->blocks);
  memset(a, 0, sizeof *a);
}

#endif
