test_that("the memory limit comes from cgroup v2, else v1, else the machine", {
  root <- withr::local_tempdir()
  dir.create(file.path(root, "proc"))
  dir.create(file.path(root, "sys/fs/cgroup/memory"), recursive = TRUE)
  writeLines(c("MemTotal:       8000000 kB", "MemAvailable:   6000000 kB"), file.path(root, "proc/meminfo"))
  expect_identical(memory_limit(root), list(bytes = 8000000 * 1024, source = "MemTotal"))
  expect_identical(memory_used_bytes(root), 2000000 * 1024)
  # cgroup v1: no limit is 2^63 rounded to pages; the usage without the page cache
  writeLines("9223372036854771712", file.path(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
  writeLines("500000000", file.path(root, "sys/fs/cgroup/memory/memory.usage_in_bytes"))
  writeLines(c("cache 1", "rss 2", "total_cache 100000000", "total_rss 400000000"),
    file.path(root, "sys/fs/cgroup/memory/memory.stat")
  )
  expect_identical(memory_limit(root)$bytes, 8000000 * 1024)
  expect_identical(memory_used_bytes(root), 4e8)
  writeLines("314572800", file.path(root, "sys/fs/cgroup/memory/memory.limit_in_bytes"))
  expect_identical(memory_limit(root), list(bytes = 314572800, source = "cgroup v1 memory.limit_in_bytes"))
  # cgroup v2 wins; "max" means no limit
  writeLines("max", file.path(root, "sys/fs/cgroup/memory.max"))
  writeLines("300000000", file.path(root, "sys/fs/cgroup/memory.current"))
  writeLines(c("anon 200000000", "file 50000000"), file.path(root, "sys/fs/cgroup/memory.stat"))
  expect_identical(memory_used_bytes(root), 2.5e8)
  expect_identical(memory_limit(root)$bytes, 314572800) # v2 says no limit: v1's figure is next
  writeLines("1073741824", file.path(root, "sys/fs/cgroup/memory.max"))
  expect_identical(memory_limit(root), list(bytes = 1073741824, source = "cgroup v2 memory.max"))
})

test_that("this process's resident memory is read from /proc", {
  expect_gt(resident_bytes(), 10 * MB) # R itself takes more than 10 MB
})

test_that("the C library's free memory is handed back: TRUE or FALSE, never an error", {
  invisible(numeric(5e6)) # 40 MB allocated and dropped
  invisible(gc())
  released <- release_free_memory()
  expect_true(isTRUE(released) || isFALSE(released))
})
