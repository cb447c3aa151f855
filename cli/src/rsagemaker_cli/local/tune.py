"""`rsagemaker local-tune`: config/tuning.json's search here, each trial a local-train run.

The trials' values are drawn as SageMaker's Random strategy draws them (core/tuning.py: types and
scaling honoured, Grid enumerates, --seed repeats a draw); each trial is local-train (local/train.py)
with those values over config/hyperparameters.json, and its objective is read from its log with the
objective metric's regex, as SageMaker reads it. The table is tune's, best first; every trial's
model is kept as build/tuning/<trial>/model.tar.gz and the best one copied to build/model.tar.gz,
where local-serve takes it. build/tuning/results.json records the run.
"""

import argparse
import io
import json
import shutil
import sys

from ..core import tuning as search
from ..core.engine import clear_directory
from ..core.errors import SetupError
from ..core.opt_ml import write_json
from ..core.settings import load
from .train import local_train

DEFAULT_TRIALS = 3


class Tee(io.TextIOBase):
    """What a trial prints, shown as it comes and kept to read the objective from."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text):
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def local_tune_arguments(parser):
    parser.add_argument("--image", required=True, help="training image reference")
    parser.add_argument(
        "--trials", type=int, default=DEFAULT_TRIALS, help=f"how many trials (default: {DEFAULT_TRIALS})"
    )
    parser.add_argument("--seed", type=int, help="seed of the random draw (the same seed, the same trials)")


def local_tune(args):
    project = args.project
    if args.trials < 1:
        raise SetupError(f"--trials (TRIALS) must be at least 1, not {args.trials}")
    metrics = load(project, keys=("training.metric_definitions",))["training.metric_definitions"]
    tuning = search.load(project, metrics)
    trials = search.sample(tuning, args.trials, args.seed)
    how = "every combination of the grid" if tuning.strategy == "Grid" else "drawn at random"
    if tuning.strategy in ("Bayesian", "Hyperband"):
        how += (
            f" (SageMaker's {tuning.strategy} strategy needs its service: here each trial is drawn at random)"
        )
    print(f"==> Local tuning: {len(trials)} trial(s), {how}; {tuning.objective_type.lower()} {tuning.metric}")
    for r in tuning.ranges:
        print(f"    {r.describe()}")
    folder = project.build / "tuning"
    clear_directory(folder)
    results = []
    for number, values in enumerate(trials, 1):
        name = f"trial-{number}"
        print(f"==> Trial {number} of {len(trials)}: {', '.join(f'{k}={v}' for k, v in values.items())}")
        model = folder / name / "model.tar.gz"
        trial_args = argparse.Namespace(
            project=project,
            image=args.image,
            code=None,
            program=load(project, keys=("training.entry_point",))["training.entry_point"],
            hyperparameters=None,
            channels=None,
            model=str(model),
            instance_count=1,
            overrides=values,
        )
        tee, stdout = Tee(sys.stdout), sys.stdout
        sys.stdout = tee
        try:
            code = local_train(trial_args)
        finally:
            sys.stdout = stdout
        objective = search.objective_from_log(tuning, tee.kept.getvalue()) if code == 0 else None
        status = "Completed" if code == 0 else "Failed"
        if code == 0 and objective is None:
            print(f"    no {tuning.metric} in the trial's log (regex {tuning.regex}): it cannot rank")
        results.append(search.Trial(name, status, objective, values))

    table, ordered = search.results_table(tuning.metric, tuning.objective_type, results, tuning.names)
    print(
        f"==> Local tuning: {sum(t.status == 'Completed' for t in results)} of {len(results)} trial(s) completed"
    )
    print(table)
    trials_run = [
        {"name": t.name, "status": t.status, "objective": t.objective, "hyperparameters": t.hyperparameters}
        for t in ordered
    ]
    write_json(
        folder / "results.json",
        {
            "objective": {"metric": tuning.metric, "type": tuning.objective_type},
            "seed": args.seed,
            "trials": trials_run,
        },
    )
    # --json: the shape tune-results reports, so that R reads a local search as a remote one.
    args.result = {
        "tuning_job_name": "local",
        "status": "Completed",
        "metric": tuning.metric,
        "type": tuning.objective_type,
        "training_jobs": trials_run,
    }
    best = ordered[0]
    if best.objective is None:
        print(
            f"error: no trial reported {tuning.metric}: nothing to keep (see the logs above)", file=sys.stderr
        )
        return 1
    shutil.copy2(folder / best.name / "model.tar.gz", project.build / "model.tar.gz")
    print(
        f"==> Best: {best.name} ({tuning.metric} {best.objective:.4f}): its model is build/model.tar.gz "
        f"(every trial's: build/tuning/<trial>/model.tar.gz; the run: build/tuning/results.json)"
    )
    settings = ", ".join(f'"{k}": {json.dumps(v)}' for k, v in best.hyperparameters.items())
    print(
        f"Next: make local-serve, then make predict; to train with these values: put {settings} in config/hyperparameters.json"
    )
    return 0
