/* Memory the C library holds for reuse, given back to the system (memory.R). */
#include <R.h>
#include <Rinternals.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* TRUE when memory was released (glibc's malloc_trim); FALSE where the C library has no such call. */
SEXP rsm_release_free_memory(void) {
#ifdef __GLIBC__
  return ScalarLogical(malloc_trim(0) == 1);
#else
  return ScalarLogical(FALSE);
#endif
}
