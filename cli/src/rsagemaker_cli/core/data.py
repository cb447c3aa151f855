"""The project's data as SageMaker sends CSV to a model: header-less rows without the target column.

The target column is config/hyperparameters.json's "target" (Project.target()); without one, the
last column of the CSV. predict, invoke, invoke-async, bench and the batch transforms all read
their rows here, and the pipeline names its target the same way (target_column()).
"""

import csv
import io
from pathlib import Path

from .errors import SetupError


def csv_files(data_dir):
    return sorted(Path(data_dir).rglob("*.csv"))


def target_column(data_dir, target):
    """target if set, else the last column of the first CSV under data_dir."""
    if target:
        return target
    files = csv_files(data_dir)
    if not files:
        raise SetupError(f"no .csv file in {data_dir}")
    with open(files[0], newline="") as handle:
        return next(csv.reader(handle))[-1]


def sample_rows(data_dir, rows, target):
    """Rows spread evenly over the first CSV under data_dir, without the target column, as header-less
    CSV. target None: the last column. Returns (body, csv file)."""
    files = csv_files(data_dir)
    if not files:
        raise SetupError(f"no .csv file in {data_dir}")
    with open(files[0], newline="") as handle:
        header, *records = list(csv.reader(handle))
    if target is None:
        target = header[-1]
    if target not in header:
        raise SetupError(f"column {target!r} is not in {files[0]} (columns: {', '.join(header)})")
    keep = [i for i, column in enumerate(header) if column != target]
    count = min(rows, len(records))
    picked = [records[i * len(records) // count] for i in range(count)] if count else []
    body = io.StringIO()
    writer = csv.writer(body, lineterminator="\n")
    for record in picked:
        writer.writerow([record[i] for i in keep])
    return body.getvalue(), files[0]


def without_target(data_dir, dest, target):
    """Every CSV under data_dir without its header and target column into dest (same relative
    paths): a batch transform's input. Other files are not inputs of the model. Returns dest."""
    files = csv_files(data_dir)
    if not files:
        raise SetupError(f"no .csv file in {data_dir} to transform: pass --input DIR (INPUT=...) or add data")
    for path in files:
        with open(path, newline="") as handle:
            header, *records = list(csv.reader(handle))
        name = target if target in header else header[-1]
        keep = [i for i, column in enumerate(header) if column != name]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        for record in records:
            if record:
                writer.writerow([record[i] for i in keep])
        destination = Path(dest) / path.relative_to(data_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(out.getvalue())
    return Path(dest)


def request_body(project, file, rows):
    """(body, what it is) of a request to an endpoint: the file as it is, else `rows` sample rows of
    the project's data/ (features only)."""
    if file:
        path = Path(file)
        if not path.is_file():
            raise SetupError(f"{file} does not exist: --file (FILE=...) names the request body to send")
        return path.read_bytes(), file
    text, csv_file = sample_rows(project.data, rows, project.target())
    return text.encode(), f"{len(text.splitlines())} row(s) of {project.show(csv_file)}"
