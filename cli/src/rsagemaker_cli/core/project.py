"""The project a command acts on: its root folder, its name, its images and its files.

There is one way to find it, find_project(): the nearest folder, from the working directory up,
that holds a Makefile and config/aws.json (a project made from the r-sagemaker template). The
project's name (PROJECT) and the images it builds (IMAGES) are read from that Makefile, where the
template wrote them; every path below is the project's, whatever the working directory.
"""

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .errors import SetupError

MAKEFILE = "Makefile"
CONFIG_FILE = Path("config") / "aws.json"
HYPERPARAMETERS_FILE = Path("config") / "hyperparameters.json"
# The models of a multi-model endpoint, one <name>.tar.gz each (TargetModel = the file name).
MODELS_DIR = Path("build") / "models"
IMAGE_NAMES = ("processing", "training")
# A make assignment at the start of a line: NAME := value (also =, ?=), up to a comment.
ASSIGNMENT = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*(?::=|\?=|=)\s*(?P<value>[^#\n]*)", re.MULTILINE
)


@dataclass(frozen=True)
class Project:
    root: Path
    name: str  # PROJECT in the Makefile: the image repositories' prefix, and of every job's name
    images: tuple  # IMAGES in the Makefile: the images the project builds

    @property
    def code(self):
        return self.root / "code"

    @property
    def data(self):
        return self.root / "data"

    @property
    def config_file(self):
        return self.root / CONFIG_FILE

    @property
    def hyperparameters_file(self):
        return self.root / HYPERPARAMETERS_FILE

    @property
    def build(self):
        """Where every command writes: models, job trees, records of what was created."""
        return self.root / "build"

    @property
    def models_dir(self):
        return self.root / MODELS_DIR

    @property
    def resource_name(self):
        """The name as SageMaker resources take it (letters, digits, hyphens): the default endpoint
        name, the model package group and the pipeline."""
        return self.name.replace("_", "-").replace(".", "-")

    def show(self, path):
        """A path as the user would type it from the project root (absolute when outside)."""
        try:
            return Path(path).resolve().relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def hyperparameters(self, path=None):
        """config/hyperparameters.json (or path) as a dict, checked."""
        return read_hyperparameters(path or self.hyperparameters_file)

    def target(self):
        """The target column named by config/hyperparameters.json's "target", or None (then the
        commands that leave it out of sample rows take the last column of the data)."""
        if not self.hyperparameters_file.is_file():
            return None
        return self.hyperparameters().get("target")


def read_hyperparameters(path):
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise SetupError(f"{path} does not exist (an empty JSON object means no hyperparameters)") from None
    except json.JSONDecodeError as error:
        raise SetupError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(values, dict):
        raise SetupError(f"{path} must hold a JSON object (name -> value)")
    return values


def makefile_variables(makefile):
    """The simple assignments of a Makefile (the last one of each name wins, as in make)."""
    text = Path(makefile).read_text(encoding="utf-8")
    return {match["name"]: match["value"].strip() for match in ASSIGNMENT.finditer(text)}


def load_project(root):
    """The project at root, its name and images read from its Makefile."""
    root = Path(root).resolve()
    variables = makefile_variables(root / MAKEFILE)
    name = variables.get("PROJECT", "")
    if not re.fullmatch(r"[a-zA-Z0-9][a-zA-Z0-9._-]*", name):
        raise SetupError(f"{root / MAKEFILE} sets no PROJECT := <name> line (the image repositories' prefix)")
    images = tuple(variables.get("IMAGES", "").split())
    unknown = [image for image in images if image not in IMAGE_NAMES]
    if not images or unknown:
        raise SetupError(
            f"{root / MAKEFILE}: IMAGES := {' '.join(images)} should name {' and/or '.join(IMAGE_NAMES)}"
        )
    return Project(root=root, name=name, images=images)


def find_project(start=None):
    """The project around the working directory (or start): see the module's docstring."""
    start = Path(start or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / MAKEFILE).is_file() and (folder / CONFIG_FILE).is_file():
            return load_project(folder)
    raise SetupError(
        f"{start} is not in a project: run rsagemaker in a project made from the r-sagemaker template "
        f"(a folder with a {MAKEFILE} and {CONFIG_FILE})"
    )


def model_tarballs(root):
    """The models to serve from one endpoint: build/models/*.tar.gz under the project's root. A
    project that has only build/model.tar.gz (from make local-train) gets it copied there as
    model.tar.gz, which is said."""
    folder = Path(root) / MODELS_DIR
    tarballs = sorted(folder.glob("*.tar.gz"))
    single = Path(root) / "build" / "model.tar.gz"
    if not tarballs and single.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(single, folder / "model.tar.gz")
        print(f"==> Copied build/model.tar.gz to {MODELS_DIR}/model.tar.gz (add more models there by name)")
        tarballs = [folder / "model.tar.gz"]
    if not tarballs:
        raise SetupError(
            f"no model in {MODELS_DIR}/: put model.tar.gz files there, one per model, e.g. "
            f"make local-train && cp build/model.tar.gz {MODELS_DIR}/iris-a.tar.gz"
        )
    return tarballs
