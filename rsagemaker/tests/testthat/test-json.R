test_that("numbers keep their Python type: int, float, and integers of any size", {
  expect_identical(parse_py_json("10"), py_int("10"))
  expect_identical(parse_py_json("1.0"), py_float(1))
  expect_identical(parse_py_json("1e2"), py_float(100))
  expect_identical(parse_py_json("3000000000"), py_int("3000000000"))
  expect_identical(parse_py_json("12345678901234567890"), py_int("12345678901234567890"))
  expect_identical(parse_py_json("-0"), py_int("0"))
  expect_identical(to_py_json(parse_py_json("[3000000000, 3000000000.0, 12345678901234567890]")),
    "[3000000000,3000000000.0,12345678901234567890]")
})

test_that("lists, dicts, null and duplicate keys read as Python reads them", {
  expect_identical(parse_py_json("[2]"), py_list(list(py_int("2"))))
  expect_identical(parse_py_json("{}"), py_dict())
  expect_identical(parse_py_json("[]"), py_list())
  expect_identical(parse_py_json("null"), py_none)
  expect_identical(parse_py_json("[null, true]"), py_list(list(py_none, TRUE)))
  # json.loads keeps the last value of a repeated key, at the first key's place
  value <- parse_py_json('{"a": 1, "b": 2, "a": 3}')
  expect_identical(names(value), c("a", "b"))
  expect_identical(value$a, py_int("3"))
})

test_that("what json.loads refuses is refused; what it accepts beyond JSON is accepted", {
  for (text in c("", "{", "1 2", "01", "[1,]", "/* c */ 1", '"a\tb"', "abc", '"\\u0000"', '"\\ud800"')) {
    expect_error(parse_py_json(text), info = text)
  }
  expect_identical(parse_py_json("NaN"), py_float(NaN))
  expect_identical(parse_py_json("-Infinity"), py_float(-Inf))
  expect_identical(parse_py_json('"\\\\u0000"'), "\\u0000") # an escaped backslash, no NUL
  expect_identical(parse_py_json('"\\ud83d\\ude00"'), "\U0001F600")
})

test_that("json.dumps text: sorted keys, compact, ASCII with \\u escapes", {
  value <- parse_py_json('{"b": [1, 2.5, "caf\\u00e9"], "a": {"d": null}, "c": "\\"q\\"\\n"}')
  expect_identical(to_py_json(value), '{"a":{"d":null},"b":[1,2.5,"caf\\u00e9"],"c":"\\"q\\"\\n"}')
  expect_identical(to_py_json("\U0001F600"), '"\\ud83d\\ude00"')
  expect_identical(to_py_json(py_float(1e300)), "1e+300")
})

test_that("floats print as Python's repr()", {
  cases <- c("1.0" = 1, "0.001" = 0.001, "1e-07" = 1e-7, "1e+16" = 1e16, "123456789012345.0" = 123456789012345,
    "0.1" = 0.1, "-0.0" = -0, "2.5" = 2.5, "1.7976931348623157e+308" = .Machine$double.xmax)
  for (text in names(cases)) expect_identical(py_float_repr(cases[[text]]), text)
})

test_that("str() of values: Python's repr() inside containers", {
  expect_identical(py_str(parse_py_json('[1, 2.5, "a", true, null, "it\'s"]')), "[1, 2.5, 'a', True, None, \"it's\"]")
  expect_identical(py_str(parse_py_json('{"d": null}')), "{'d': None}")
  expect_identical(py_str("plain"), "plain")
})

test_that("strings are escaped as json.dumps escapes them (ensure_ascii)", {
  expect_identical(
    json_quote(paste0("a\"b\\c\n\r\t\b\f", "\001\037\177", "\u00e9\U0001F600/")), # R: no \u with \001
    '"a\\"b\\\\c\\n\\r\\t\\b\\f\\u0001\\u001f\\u007f\\u00e9\\ud83d\\ude00/"'
  )
})
