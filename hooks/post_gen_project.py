"""Prune what the answers did not choose, then print the next steps.

Deterministic and offline (no git init, no timestamps, no network), so `cruft update` can re-run it.
Make targets and workflow jobs of an image that was not chosen are left out by the templates
themselves (Jinja if-blocks); this removes the files.
"""

import json
import shutil
from pathlib import Path

# Files that belong to one image only, relative to the project root.
ONLY_FOR = {
    "processing": ["images/processing", "code/preprocess.R", "tests/test_processing.py"],
    "training": [
        "images/training",
        "code/train.R",
        "code/deploy.R",
        "config/hyperparameters.json",
        "tests/test_training.py",
        "tests/test_training_units.py",
        "tests/test_rsagemaker.py",
        "tests/test_serving.py",
        "tests/test_serving_units.py",
        "tests/test_serving_fuzz.py",
        "tests/test_workers.py",
        "sagemaker_tools/bench.py",
        "bench",
        "tests/test_bench_smoke.py",
        "tests/serving_support.py",
        "tests/training_support.py",
        "tests/training_toolkit_snapshot.py",
    ],
}


def remove(path):
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def prune(project, images):
    chosen = {"processing", "training"} if images == "both" else {images}
    for image, paths in ONLY_FOR.items():
        if image not in chosen:
            for relative in paths:
                remove(project / relative)


def main():
    project = Path.cwd()
    slug = json.loads(r""" {{ cookiecutter.project_slug | tojson }} """)
    images = json.loads(r""" {{ cookiecutter.images | tojson }} """)
    prune(project, images)
    first = "make local-train" if images != "processing" else "make local-process"
    print(f"\nCreated {slug}/ ({images} image{'s' if images == 'both' else ''}). Next:")
    print(f"  cd {slug}")
    print("  make build        # build the image(s)")
    print(f"  {first}  # run it locally against an emulated /opt/ml")
    print("  make help         # every target")


if __name__ == "__main__":
    main()
