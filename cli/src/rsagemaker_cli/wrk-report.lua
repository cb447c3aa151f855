-- wrk script of `make bench`: sends the request described by the environment and prints one
-- machine-readable line with the counts and latency percentiles (microseconds).
--   BENCH_METHOD        GET (default) or POST
--   BENCH_BODY_FILE     file whose content is the request body
--   BENCH_CONTENT_TYPE  Content-Type of the body
wrk.method = os.getenv("BENCH_METHOD") or "GET"
local body_file = os.getenv("BENCH_BODY_FILE")
if body_file then
  local file = assert(io.open(body_file, "rb"))
  wrk.body = file:read("*a")
  file:close()
end
local content_type = os.getenv("BENCH_CONTENT_TYPE")
if content_type then
  wrk.headers["Content-Type"] = content_type
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    "BENCH_RESULT requests=%d duration_us=%d p50_us=%d p99_us=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.connect, errors.read, errors.write, errors.status, errors.timeout))
end
