"""Multi-model endpoints: many model.tar.gz of this project behind one endpoint.

The models are the *.tar.gz files in build/models/ (each one a model.tar.gz as `make local-train` or
a training job makes it: model.rds + code/deploy.R, so each answers with its own handlers). A model is
named by its file name, e.g. `iris-a.tar.gz`, SageMaker's TargetModel.

On SageMaker (make deploy MULTI_MODEL=1, aws/deployable.py) they live under one S3 prefix,
    s3://<bucket>/<s3_prefix>/multi-model/<endpoint name>/<name>.tar.gz
which is the model's ModelDataUrl (PrimaryContainer Mode=MultiModel). SageMaker downloads a model on
its first invocation (InvokeEndpoint TargetModel=<name>.tar.gz), unpacks it under
/opt/ml/models/<id>/model and loads it with POST /models; when the container answers 507 it unloads
models it used least recently and loads again. A model added to the prefix later is served without
a new deploy.

Locally (make local-serve MULTI_MODEL=1, then make predict TARGET_MODEL=<name>.tar.gz) this module
plays that front end: it unpacks the tarball under build/serving/models/<id>/model (mounted at
/opt/ml/models), loads it if the container has not, unloads the least recently used model on 507, and
invokes POST /models/<id>/invoke with the X-Amzn-SageMaker-Target-Model header.
"""

import hashlib
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

import requests

from ..core.errors import SetupError
from ..core.project import MODELS_DIR

LOCAL_MODELS_DIR = Path("build") / "serving" / "models"  # what the container sees as /opt/ml/models
CONTAINER_MODELS_DIR = "/opt/ml/models"
MULTI_MODEL_VARIABLE = "SAGEMAKER_MULTI_MODEL"
LABEL_MULTI_MODEL = "rsagemaker.multi_model"
LAST_USED_FILE = "last-used.json"  # the local front end's record of when each model was last invoked


def local_models_dir(project):
    return project.root / LOCAL_MODELS_DIR


def model_id(target_model):
    """The id the container knows a model by: opaque, as SageMaker's are (not the TargetModel)."""
    return hashlib.sha256(target_model.encode()).hexdigest()[:32]


def check_target(root, target_model):
    """The tarball of TargetModel in build/models/; a clear error listing the models otherwise."""
    tarball = root / MODELS_DIR / target_model
    if "/" in target_model or not tarball.is_file():
        names = ", ".join(path.name for path in sorted((root / MODELS_DIR).glob("*.tar.gz"))) or "none"
        raise SetupError(f"no model {target_model} in {MODELS_DIR}/ (there: {names})")
    return tarball


def unpack_for_container(root, target_model):
    """Unpack the model under build/serving/models/<id>/model as SageMaker does; again when the
    tarball changed since. Returns the id."""
    tarball = check_target(root, target_model)
    identity = model_id(target_model)
    dest = root / LOCAL_MODELS_DIR / identity
    stamp = dest / "tarball-mtime"
    if stamp.is_file() and stamp.read_text() == str(tarball.stat().st_mtime_ns):
        return identity
    shutil.rmtree(dest, ignore_errors=True)
    (dest / "model").mkdir(parents=True)
    with tarfile.open(tarball) as archive:
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest / "model", filter="data")  # refuses members that leave dest
        else:
            archive.extractall(dest / "model")
    stamp.write_text(str(tarball.stat().st_mtime_ns))
    return identity


def _last_used(root):
    path = root / LOCAL_MODELS_DIR / LAST_USED_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def _record_use(root, identity):
    uses = _last_used(root)
    uses[identity] = time.time()
    (root / LOCAL_MODELS_DIR / LAST_USED_FILE).write_text(json.dumps(uses))


def loaded_ids(url):
    """Every model the container has loaded (GET /models, all pages)."""
    ids, token = [], None
    while True:
        params = {"next_page_token": token} if token else {}
        page = requests.get(f"{url}/models", params=params, timeout=30).json()
        ids += [model["modelName"] for model in page["models"]]
        token = page.get("nextPageToken")
        if not token:
            return ids


def ensure_loaded(root, url, identity):
    """POST /models unless the model is loaded; on 507 unload the least recently used other model
    and try again, as SageMaker does. Returns the last load answer (None if it was loaded)."""
    if requests.get(f"{url}/models/{identity}", timeout=30).status_code == 200:
        return None
    body = {"model_name": identity, "url": f"{CONTAINER_MODELS_DIR}/{identity}/model"}
    while True:
        response = requests.post(f"{url}/models", json=body, timeout=300)
        if response.status_code != 507:
            return response
        uses = _last_used(root)
        others = [other for other in loaded_ids(url) if other != identity]
        if not others:
            return response
        victim = min(others, key=lambda other: uses.get(other, 0))
        requests.delete(f"{url}/models/{victim}", timeout=30)
        print(f"==> 507 (out of memory): unloaded model {victim}, the least recently used, and loading again")


def predict(root, url, target_model, body, content_type, accept):
    """One invocation of TargetModel, as SageMaker's front end makes it; returns the response."""
    identity = unpack_for_container(root, target_model)
    loaded = ensure_loaded(root, url, identity)
    if loaded is not None:
        if loaded.status_code not in (200, 409):  # 409: loaded meanwhile
            return loaded
        print(f"==> Loaded {target_model} as model {identity} ({CONTAINER_MODELS_DIR}/{identity}/model)")
    _record_use(root, identity)
    return requests.post(
        f"{url}/models/{identity}/invoke",
        data=body,
        headers={
            "Content-Type": content_type,
            "Accept": accept,
            "X-Amzn-SageMaker-Target-Model": target_model,
        },
        timeout=60,
    )


def print_targets(tarballs, command, file=sys.stdout):
    for tarball in tarballs:
        print(f"      {command} TARGET_MODEL={tarball.name}", file=file)
