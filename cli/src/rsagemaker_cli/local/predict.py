"""`rsagemaker predict`: sample rows of data/ to the local endpoint, as SageMaker sends CSV to a model.

The rows are header-less and without the target column (core/data.py). On a multi-model endpoint,
--target-model names the model (a file of build/models/), loaded as SageMaker would (multi_model.py).
"""

import sys

import requests

from ..core import engine
from ..core.data import sample_rows
from ..core.errors import SetupError
from . import multi_model


def predict_arguments(parser):
    parser.add_argument("--url", help="endpoint URL (default: the one local-serve started)")
    parser.add_argument("--data", help="folder of CSV files with a header row (default: data/train/)")
    parser.add_argument("--rows", type=int, default=5, help="rows to send (default: 5)")
    parser.add_argument("--target", help="column left out (default: `target` in config/hyperparameters.json)")
    parser.add_argument("--accept", default="text/csv", help="Accept header (default: text/csv)")
    parser.add_argument(
        "--target-model", help="on a multi-model endpoint: the model, a file name in build/models/"
    )


def find_endpoint(project):
    """The running local endpoint's container."""
    client = engine.connect()
    for container in engine.find_containers(client, project.root, "serving"):
        if container.status == "running" and engine.LABEL_URL in container.labels:
            return container
    raise SetupError("no local endpoint is running: run `make local-serve` first (or pass --url)")


def predict(args):
    project = args.project
    target = args.target or project.target()
    body, _ = sample_rows(args.data or project.data / "train", args.rows, target)
    endpoint = None if args.url else find_endpoint(project)
    url = args.url or endpoint.labels[engine.LABEL_URL]
    is_multi_model = args.target_model or (endpoint and endpoint.labels.get(multi_model.LABEL_MULTI_MODEL))
    if is_multi_model and not args.target_model:
        names = ", ".join(path.name for path in sorted(project.models_dir.glob("*.tar.gz")))
        raise SetupError(
            f"{url} is a multi-model endpoint: name the model, make predict TARGET_MODEL=<one of: {names}>"
        )
    if args.target_model:
        multi_model.check_target(project.root, args.target_model)
    where = f"{url} TargetModel={args.target_model}" if args.target_model else f"{url}/invocations"
    print(f"==> POST {where} (text/csv, {len(body.splitlines())} rows):")
    print(body, end="")
    try:
        if args.target_model:
            response = multi_model.predict(
                project.root, url, args.target_model, body.encode(), "text/csv", args.accept
            )
        else:
            response = requests.post(
                f"{url}/invocations",
                data=body.encode(),
                headers={"Content-Type": "text/csv", "Accept": args.accept},
                timeout=60,
            )
    except requests.RequestException as error:
        print(f"==> No answer from {url}: {error}", file=sys.stderr)
        return 1
    print(f"==> {response.status_code} {response.headers.get('Content-Type', '')}:")
    print(response.text.rstrip("\n"))
    args.result = {
        "url": url,
        "target_model": args.target_model,
        "request": {"content_type": "text/csv", "body": body},
        "status": response.status_code,
        "content_type": response.headers.get("Content-Type", ""),
        "body": response.text,
    }
    if not response.ok:
        return 1
    print("Next: make local-stop (stops the endpoint)")
    return 0
