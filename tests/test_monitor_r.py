"""code/monitor.R and code/baseline.R on the host (Rscript, no container): drift is found on shifted
traffic and not on traffic from the training distribution; the script's outputs and exit status;
its report opens in headless Chromium with the plots drawn."""

import json
import os
import shutil
import struct
import subprocess
import zlib

import pytest
from conftest import TEMPLATE

CODE = TEMPLATE / "{{cookiecutter.project_slug}}" / "code"

# iris, an rpart model and its baseline; then captured requests (5 rows each, as SageMaker records
# them) of 200 rows drawn from iris, with Petal.Length shifted by SHIFT.
SETUP = r"""
source(file.path(Sys.getenv("CODE"), "baseline.R"))
source(file.path(Sys.getenv("CODE"), "monitor.R"))
out <- Sys.getenv("OUT")
fit <- rpart::rpart(Species ~ ., data = iris, method = "class")
model_dir <- file.path(out, "baseline")
dir.create(model_dir, recursive = TRUE)
invisible(save_baseline(iris[1:4], predict(fit, iris, type = "class"), model_dir, accuracy = 0.96))
write_capture <- function(dir, shift) {
  set.seed(7)
  rows <- iris[sample(150, 200, replace = TRUE), ]
  rows$Petal.Length <- rows$Petal.Length + shift
  lines <- vapply(seq(1, 200, by = 5), function(i) {
    chunk <- rows[i:(i + 4), 1:4]
    csv <- function(x) paste0(paste(x, collapse = "\n"), "\n")
    payload <- function(mode, data) list(observedContentType = "text/csv", mode = mode, data = data, encoding = "CSV")
    as.character(jsonlite::toJSON(list(
      captureData = list(
        endpointInput = payload("INPUT", csv(apply(chunk, 1, paste, collapse = ","))),
        endpointOutput = payload("OUTPUT", csv(as.character(predict(fit, chunk, type = "class"))))
      ),
      eventMetadata = list(eventId = sprintf("event-%03d", i),
        inferenceTime = format(Sys.time(), "%Y-%m-%dT%H:%M:%SZ", tz = "UTC")),
      eventVersion = "0"
    ), auto_unbox = TRUE))
  }, "")
  path <- file.path(dir, "ep", "AllTraffic", format(Sys.time(), "%Y/%m/%d/%H", tz = "UTC"), "a.jsonl")
  dir.create(dirname(path), recursive = TRUE)
  writeLines(lines, path)
}
"""

CHECKS = (
    SETUP
    + r"""
baseline <- load_baseline(model_dir)
result <- list()
for (shift in c(0, 2)) {
  dir <- file.path(out, paste0("capture-", shift))
  write_capture(dir, shift)
  checks <- run_checks(read_capture(dir, baseline, Sys.time() - 3600), baseline, thresholds())
  result[[paste0("shift", shift)]] <- checks[checks$violation, c("feature", "check")]
}
jsonlite::write_json(result, file.path(out, "result.json"))
"""
)

# Lay out /opt/ml as the processing job has it, for monitor.R's main().
JOB = (
    SETUP
    + r"""
write_capture(file.path(out, "opt_ml", "processing", "input", "data", "capture"), as.numeric(Sys.getenv("SHIFT")))
file.copy(model_dir, file.path(out, "opt_ml", "processing", "input", "data"), recursive = TRUE)
"""
)


def rscript(script, **env):
    return subprocess.run(
        ["Rscript", "-e", script],
        check=False,
        env={**os.environ, "CODE": str(CODE), **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_drift_on_shifted_traffic_only(tmp_path):
    done = rscript(CHECKS, OUT=str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["shift0"] == [], result  # 200 rows from the training distribution: no violation
    drifted = {(row["feature"], row["check"]) for row in result["shift2"]}
    assert ("Petal.Length", "psi") in drifted
    assert {feature for feature, _ in drifted} <= {"Petal.Length", "(predictions)"}, drifted


def run_job(tmp_path, shift):
    prepared = rscript(JOB, OUT=str(tmp_path), SHIFT=str(shift))
    assert prepared.returncode == 0, prepared.stderr
    opt_ml = tmp_path / "opt_ml"
    done = subprocess.run(
        ["Rscript", str(CODE / "monitor.R")],
        check=False,
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, opt_ml


def test_the_job_passes_on_training_like_traffic(tmp_path):
    done, opt_ml = run_job(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    report = opt_ml / "processing" / "output" / "report"
    assert json.loads((report / "violations.json").read_text())["status"] == "ok"
    assert "<img" not in (report / "report.html").read_text()
    assert not (opt_ml / "output" / "message").exists()


def png_colours(path):
    """The distinct RGB(A) colours of an 8-bit, non-interlaced PNG (what Chromium's screenshots are)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    offset, idat, header = 8, b"", None
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        offset += 12 + length
    width, height, depth, colour_type, _, _, interlace = header
    assert depth == 8 and interlace == 0 and colour_type in (2, 6), header
    channels = 3 if colour_type == 2 else 4
    raw, stride = zlib.decompress(idat), width * channels
    previous, colours, position = bytearray(stride), set(), 0
    for _ in range(height):
        kind, line = raw[position], bytearray(raw[position + 1 : position + 1 + stride])
        position += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        colours.update(bytes(line[i : i + 3]) for i in range(0, stride, channels))
        previous = line
    return colours


def test_shifted_traffic_fails_the_job_with_a_report_chromium_draws(tmp_path):
    done, opt_ml = run_job(tmp_path, 2)
    assert done.returncode == 2, done.stdout + done.stderr
    report = opt_ml / "processing" / "output" / "report"
    violations = json.loads((report / "violations.json").read_text())
    assert violations["status"] == "violations"
    assert "Petal.Length" in {v["feature"] for v in violations["violations"]}
    assert "Petal.Length" in (opt_ml / "output" / "message").read_text()  # the job's FailureReason
    html = (report / "report.html").read_text()
    assert html.count('src="data:image/') >= 1 and "http" not in html  # plots inside, no network

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("chromium is missing: scripts/host-packages.sh installs it")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--window-size=900,1400",
            f"--screenshot={shot}",
            (report / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=True,
    )
    colours = png_colours(shot)
    assert bytes.fromhex("d95f02") in colours  # the captured bars of the plot are drawn
    assert bytes.fromhex("9e9e9e") in colours  # and the baseline's
    assert len(colours) > 20
