"""`rsagemaker local-monitor`: code/monitor.R in the processing image, as `make monitor` runs it, on
this machine's data capture (local-serve --capture writes build/capture/) and the local model's
baseline (build/model.tar.gz holds train.R's baseline.json).

The job's `data` input is build/monitor/input with capture/, baseline/ (the model.tar.gz) and, with
--labels, labels/: the folders the SageMaker job has under /opt/ml/processing/input/data. The
report (report.html, violations.json) lands in build/monitor/output/report, also when violations
fail the run (exit status 2, as a scheduled job fails).
"""

import json
import shutil
import sys
from argparse import Namespace
from pathlib import Path

from ..core.errors import SetupError
from .process import gather_outputs, local_process

VIOLATIONS = 2


def local_monitor_arguments(parser):
    parser.add_argument("--image", required=True, help="processing image reference")
    parser.add_argument("--capture", help="the capture folder (default: build/capture/)")
    parser.add_argument("--model", help="the model.tar.gz with baseline.json (default: build/model.tar.gz)")
    parser.add_argument("--labels", help="a folder of ground-truth CSV files (eventId,label[,row])")
    parser.add_argument(
        "--window-hours", type=int, default=0, help="only the records of the last N hours (default 0: all)"
    )


def local_monitor(args):
    project = args.project
    capture = Path(args.capture) if args.capture else project.build / "capture"
    model = Path(args.model) if args.model else project.build / "model.tar.gz"
    if not any(capture.rglob("*.jsonl")):
        raise SetupError(
            f"no capture in {project.show(capture)}: make local-serve CAPTURE=1, then make predict (a few times)"
        )
    if not model.is_file():
        raise SetupError(f"{project.show(model)} does not exist: run `make local-train` first")
    work = project.build / "monitor"
    inputs = work / "input"
    shutil.rmtree(inputs, ignore_errors=True)
    shutil.copytree(capture, inputs / "capture")
    (inputs / "baseline").mkdir(parents=True)
    shutil.copy2(model, inputs / "baseline" / "model.tar.gz")
    if args.labels:
        shutil.copytree(args.labels, inputs / "labels")
    output = work / "output"
    code = local_process(
        Namespace(
            project=project,
            image=args.image,
            code=None,
            script="monitor.R",
            input=str(inputs),
            output=str(output),
            outputs="report",
            instance_count=1,
            environment={"MONITOR_WINDOW_HOURS": str(args.window_hours)},
        )
    )
    if code != 0:  # violations fail the job; its report is there all the same
        gather_outputs([("algo-1", project.build / "processing" / "hosts" / "algo-1" / "outputs")], output)
    violations = output / "report" / "violations.json"
    if not violations.is_file():
        return code or 1
    result = json.loads(violations.read_text())
    args.result = {**result, "report": str(output / "report" / "report.html")}  # --json (R's project_command)
    print(
        f"==> Monitoring: {result['status']}, {len(result['violations'])} violation(s) in {result['rows']} row(s)"
    )
    print(f"    Report: {project.show(output / 'report' / 'report.html')}")
    if result["status"] == "violations":
        print("    The endpoint's traffic drifted from the training data (see the report)", file=sys.stderr)
        return VIOLATIONS
    return 0
