/* rsagemaker's C routines, registered so that R calls them through their symbols only. */
#include <R.h>
#include <Rinternals.h>
#include <R_ext/Rdynload.h>

SEXP rsm_read_numeric_csv(SEXP body, SEXP max_columns);   /* csv.c */
SEXP rsm_csv_widest_record(SEXP body, SEXP limit);
SEXP rsm_csv_plain_fields(SEXP body, SEXP max_columns);
SEXP rsm_write_csv(SEXP columns, SEXP final_newline);     /* csv.c */
SEXP rsm_http_listen(SEXP path, SEXP host, SEXP port, SEXP max_body, SEXP timeouts); /* http.c */
SEXP rsm_http_service(SEXP server, SEXP handler, SEXP env, SEXP timeout_ms);
SEXP rsm_http_close(SEXP server);
SEXP rsm_release_free_memory(void); /* memory.c */

static const R_CallMethodDef CALL_METHODS[] = {
    {"rsm_read_numeric_csv", (DL_FUNC)&rsm_read_numeric_csv, 2},
    {"rsm_csv_widest_record", (DL_FUNC)&rsm_csv_widest_record, 2},
    {"rsm_csv_plain_fields", (DL_FUNC)&rsm_csv_plain_fields, 2},
    {"rsm_write_csv", (DL_FUNC)&rsm_write_csv, 2},
    {"rsm_http_listen", (DL_FUNC)&rsm_http_listen, 5},
    {"rsm_http_service", (DL_FUNC)&rsm_http_service, 4},
    {"rsm_http_close", (DL_FUNC)&rsm_http_close, 1},
    {"rsm_release_free_memory", (DL_FUNC)&rsm_release_free_memory, 0},
    {NULL, NULL, 0}};

void R_init_rsagemaker(DllInfo *info) {
  R_registerRoutines(info, NULL, CALL_METHODS, NULL, NULL);
  R_useDynamicSymbols(info, FALSE);
  R_forceSymbols(info, TRUE);
}
