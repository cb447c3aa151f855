"""config/tuning.json: the search of `rsagemaker tune` (SageMaker) and `local-tune` (here), checked.

    {"objective": {"metric": "train:accuracy", "type": "Maximize"},
     "strategy": "Bayesian", "max_jobs": 6, "max_parallel_jobs": 2, "early_stopping": "Off",
     "ranges": {"maxdepth": {"type": "integer", "min": 2, "max": 8},
                "cp": {"type": "continuous", "min": 0.001, "max": 0.1, "scaling": "Logarithmic"},
                "split": {"type": "categorical", "values": ["gini", "information"]}}}

The objective is a metric of training.metric_definitions (the regexes that read train.R's log).
Each range overrides a hyperparameter of config/hyperparameters.json, which stays the one home of
every default: a range over a name it lacks is refused (a typo would tune nothing), and the tuned
names leave the static set. load() checks everything before anything is created: each fault is one
line naming it. The same search runs here: sample() draws trials as SageMaker's Random strategy does
(honouring types and scaling; Grid enumerates), and results_table() prints either run best first.
"""

import itertools
import json
import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SetupError

TUNING_FILE = Path("config") / "tuning.json"
STRATEGIES = ("Bayesian", "Random", "Hyperband", "Grid")
OBJECTIVE_TYPES = ("Maximize", "Minimize")
EARLY_STOPPING = ("Off", "Auto")
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
RANGE_TYPES = ("continuous", "integer", "categorical")
# What is not set in config/tuning.json (objective, ranges and max_jobs have no default).
DEFAULTS = {"strategy": "Bayesian", "max_parallel_jobs": 1, "early_stopping": "Off"}
KEYS = ("objective", "ranges", "strategy", "max_jobs", "max_parallel_jobs", "early_stopping")
# SageMaker's limits: ranges per tuning job, values per categorical range, jobs per tuning job.
MAX_RANGES, MAX_CATEGORICAL_VALUES, MAX_JOBS = 30, 30, 750


@dataclass(frozen=True)
class Range:
    name: str
    type: str  # continuous, integer or categorical
    low: float = 0
    high: float = 0
    scaling: str = "Auto"
    values: tuple = ()  # categorical: the JSON values

    def describe(self):
        if self.type == "categorical":
            return f"{self.name} in {{{', '.join(json.dumps(v) for v in self.values)}}}"
        return f"{self.name} {self.type} {self.low}..{self.high} ({self.scaling})"


@dataclass(frozen=True)
class Tuning:
    metric: str
    regex: str  # the metric definition's regex: local-tune reads the objective from the log with it
    objective_type: str
    strategy: str
    max_jobs: int
    max_parallel_jobs: int
    early_stopping: str
    ranges: tuple  # of Range

    @property
    def names(self):
        return [r.name for r in self.ranges]

    def static(self, hyperparameters):
        """config/hyperparameters.json without the tuned names (SageMaker refuses a name in both)."""
        return {key: value for key, value in hyperparameters.items() if key not in self.names}


def fail(label, message):
    raise SetupError(f"{label}: {message}")


def number(label, where, value, integer=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        fail(label, f"{where} must be a number, not {json.dumps(value)}")
    if integer and value != int(value):
        fail(label, f"{where} must be a whole number, not {json.dumps(value)}")
    return int(value) if integer else float(value)


def check_range(label, name, spec, hyperparameters):
    where = f"range {name!r}"
    if name not in hyperparameters:
        fail(
            label,
            f"{where} tunes a hyperparameter config/hyperparameters.json does not set: add its default "
            f"there (train.R reads it), or fix the name (it has {', '.join(sorted(hyperparameters)) or 'none'})",
        )
    if not isinstance(spec, dict) or spec.get("type") not in RANGE_TYPES:
        fail(label, f"{where} needs a type: {', '.join(RANGE_TYPES)}")
    kind = spec["type"]
    allowed = {"type", "values"} if kind == "categorical" else {"type", "min", "max", "scaling"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        fail(
            label,
            f"{where} ({kind}) has unknown key(s) {', '.join(unknown)}; it takes {', '.join(sorted(allowed))}",
        )
    if kind == "categorical":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            fail(label, f"{where} is empty: give it a non-empty list of values")
        if len(values) > MAX_CATEGORICAL_VALUES:
            fail(label, f"{where} has {len(values)} values; SageMaker takes at most {MAX_CATEGORICAL_VALUES}")
        if len({json.dumps(v) for v in values}) != len(values):
            fail(label, f"{where} lists a value twice")
        return Range(name, kind, values=tuple(values))
    integer = kind == "integer"
    low = number(label, f"{where} min", spec.get("min"), integer)
    high = number(label, f"{where} max", spec.get("max"), integer)
    if low >= high:
        fail(
            label,
            f"{where} is {'empty' if low == high else 'inverted'} (min {low} {'=' if low == high else '>'} "
            f"max {high}): min must be below max (a fixed value belongs in config/hyperparameters.json)",
        )
    scaling = spec.get("scaling", "Auto")
    if scaling not in SCALINGS:
        fail(label, f"{where} has unknown scaling {scaling!r}: {', '.join(SCALINGS)}")
    if scaling == "Logarithmic" and low <= 0:
        fail(label, f"{where}: Logarithmic scaling needs min above 0, not {low}")
    if scaling == "ReverseLogarithmic" and (integer or low < 0 or high >= 1):
        fail(label, f"{where}: ReverseLogarithmic scaling is for continuous ranges within [0, 1)")
    return Range(name, kind, low, high, scaling)


def load(project, metric_definitions, path=None):
    """config/tuning.json (or path) checked against the metric definitions and the hyperparameters."""
    path = Path(path or project.root / TUNING_FILE)
    label = project.show(path)
    if not path.is_file():
        fail(label, "missing: it holds the objective and the ranges to search (see docs/tuning.md)")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        fail(label, f"not valid JSON: {error}")
    if not isinstance(document, dict):
        fail(label, "must hold a JSON object")
    unknown = sorted(set(document) - set(KEYS))
    if unknown:
        fail(label, f"unknown key(s) {', '.join(unknown)}; it takes {', '.join(KEYS)}")
    document = {**DEFAULTS, **document}

    objective = document.get("objective")
    if not isinstance(objective, dict) or set(objective) != {"metric", "type"}:
        fail(
            label,
            'objective must be {"metric": <a metric definition\'s Name>, "type": "Maximize" or "Minimize"}',
        )
    regexes = {definition["Name"]: definition["Regex"] for definition in metric_definitions}
    if objective["metric"] not in regexes:
        fail(
            label,
            f"objective metric {objective['metric']!r} is not a metric definition: "
            f"training.metric_definitions has {', '.join(regexes) or 'none'}",
        )
    if objective["type"] not in OBJECTIVE_TYPES:
        fail(label, f"objective type {objective['type']!r} is unknown: {' or '.join(OBJECTIVE_TYPES)}")
    strategy = document["strategy"]
    if strategy not in STRATEGIES:
        fail(label, f"unknown strategy {strategy!r}: {', '.join(STRATEGIES)}")
    early_stopping = document["early_stopping"]
    if early_stopping not in EARLY_STOPPING:
        fail(label, f"early_stopping {early_stopping!r} is unknown: {' or '.join(EARLY_STOPPING)}")
    if strategy == "Hyperband" and early_stopping != "Off":
        fail(label, 'the Hyperband strategy stops trials itself: set "early_stopping": "Off"')

    hyperparameters = project.hyperparameters()
    ranges = document.get("ranges")
    if not isinstance(ranges, dict) or not ranges:
        fail(label, "ranges must name at least one hyperparameter to tune")
    if len(ranges) > MAX_RANGES:
        fail(label, f"{len(ranges)} ranges; SageMaker tunes at most {MAX_RANGES}")
    checked = tuple(check_range(label, name, spec, hyperparameters) for name, spec in ranges.items())
    if strategy == "Grid" and any(r.type != "categorical" for r in checked):
        fail(label, "the Grid strategy searches categorical ranges only: list the values to try")

    limits = {}
    for key in ("max_jobs", "max_parallel_jobs"):
        value = document.get(key)
        if strategy == "Grid" and key == "max_jobs":  # a grid runs each combination once
            value = grid_size(checked)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_JOBS:
            fail(label, f"{key} must be a whole number from 1 to {MAX_JOBS}, not {json.dumps(value)}")
        limits[key] = value
    if limits["max_parallel_jobs"] > limits["max_jobs"]:
        fail(
            label,
            f"max_parallel_jobs {limits['max_parallel_jobs']} is more than max_jobs {limits['max_jobs']}",
        )
    return Tuning(
        metric=objective["metric"],
        regex=regexes[objective["metric"]],
        objective_type=objective["type"],
        strategy=strategy,
        early_stopping=early_stopping,
        ranges=checked,
        **limits,
    )


def grid_size(ranges):
    return math.prod(len(r.values) for r in ranges)


# --- the request ------------------------------------------------------------------------------


def parameter_ranges(tuning):
    """ParameterRanges of CreateHyperParameterTuningJob: bounds as strings, categorical values
    JSON-encoded as the static hyperparameters are (the container decodes both alike)."""
    kinds = {"continuous": "ContinuousParameterRanges", "integer": "IntegerParameterRanges"}
    ranges = {"ContinuousParameterRanges": [], "IntegerParameterRanges": [], "CategoricalParameterRanges": []}
    for r in tuning.ranges:
        if r.type == "categorical":
            values = [json.dumps(value) for value in r.values]
            ranges["CategoricalParameterRanges"].append({"Name": r.name, "Values": values})
        else:
            bounds = (str(r.low), str(r.high)) if r.type == "integer" else (repr(r.low), repr(r.high))
            ranges[kinds[r.type]].append(
                {"Name": r.name, "MinValue": bounds[0], "MaxValue": bounds[1], "ScalingType": r.scaling}
            )
    return ranges


def tuning_job_config(tuning):
    limits = {"MaxParallelTrainingJobs": tuning.max_parallel_jobs}
    if tuning.strategy != "Grid":  # a grid's size is its number of jobs
        limits["MaxNumberOfTrainingJobs"] = tuning.max_jobs
    return {
        "Strategy": tuning.strategy,
        "HyperParameterTuningJobObjective": {"Type": tuning.objective_type, "MetricName": tuning.metric},
        "ResourceLimits": limits,
        "ParameterRanges": parameter_ranges(tuning),
        "TrainingJobEarlyStoppingType": tuning.early_stopping,
    }


# --- the same search here ---------------------------------------------------------------------


def draw(r, rng):
    """One value of a range, as SageMaker's Random strategy draws it (Auto: linear here)."""
    if r.type == "categorical":
        return rng.choice(r.values)
    if r.scaling == "Logarithmic":
        top = math.log(r.high + 1) if r.type == "integer" else math.log(r.high)
        value = math.exp(rng.uniform(math.log(r.low), top))
    elif r.scaling == "ReverseLogarithmic":
        value = 1 - math.exp(rng.uniform(math.log(1 - r.high), math.log(1 - r.low)))
    else:
        value = rng.uniform(r.low, r.high + 1 if r.type == "integer" else r.high)
    if r.type == "integer":
        return min(math.floor(value), int(r.high))
    return float(f"{value:.6g}")


def sample(tuning, trials, seed=None):
    """The hyperparameters of each local trial: Grid enumerates every combination (the first
    `trials`), the other strategies draw at random (Bayesian and Hyperband need SageMaker's model)."""
    if tuning.strategy == "Grid":
        combos = itertools.product(*(r.values for r in tuning.ranges))
        return [dict(zip(tuning.names, combo)) for combo in itertools.islice(combos, trials)]
    rng = random.Random(seed)
    return [{r.name: draw(r, rng) for r in tuning.ranges} for _ in range(trials)]


def objective_from_log(tuning, log):
    """The objective as SageMaker reads it: the metric regex's last match in the log, or None."""
    matches = re.findall(tuning.regex, log)
    if not matches:
        return None
    last = matches[-1]
    try:
        return float(last[0] if isinstance(last, tuple) else last)
    except ValueError:
        return None


# --- the table --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    name: str
    status: str
    objective: object  # float, or None when the job reported none
    hyperparameters: dict


def decoded(value):
    """A hyperparameter as SageMaker reports it ("5", "\\"gini\\"") back to its value."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        return value


def best_first(tuning_type, trials):
    """Trials with an objective, best first, then those without one (failed, stopped, running)."""
    scored = [t for t in trials if t.objective is not None]
    scored.sort(key=lambda t: t.objective, reverse=tuning_type == "Maximize")
    return scored + [t for t in trials if t.objective is None]


def results_table(metric, tuning_type, trials, names):
    """The table of a tuning run, best first: rank, job, status, objective, each tuned value."""
    ordered = best_first(tuning_type, trials)
    header = ["#", "training job", "status", f"{metric} ({tuning_type.lower()})", *names]
    rows = [
        [
            str(i),
            t.name,
            t.status,
            "-" if t.objective is None else f"{t.objective:.4f}",
            *(
                json.dumps(decoded(t.hyperparameters.get(n, "-"))) if n in t.hyperparameters else "-"
                for n in names
            ),
        ]
        for i, t in enumerate(ordered, 1)
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [header, *rows]
    ]
    return "\n".join(lines), ordered
