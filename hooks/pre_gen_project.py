"""Validate the answers before anything is generated.

Cookiecutter renders this file with Jinja first; each answer is read through `tojson` inside a raw
string so that quotes or backslashes in an answer can neither break this file nor inject code.
A failed rule prints one line naming the value and the rule, and exits 1: cookiecutter then removes
the half-made project folder.
"""

import json
import re
import sys

# ECR repository names: lowercase path components joined by "/"; we add "-processing"/"-training"
# to the slug, so it must leave room for the longest suffix within ECR's 256 characters.
ECR_COMPONENT = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
SLUG_RULE = re.compile(rf"^{ECR_COMPONENT}$")
SLUG_MAX = 256 - len("-processing")
REGION_RULE = re.compile(r"^[a-z]{2}(?:-gov|-iso[a-z]?)?-[a-z]+-[0-9]$")
# [registry[:port]/]path[:tag][@sha256:digest], as `docker pull` accepts it; the tag must be pinned.
IMAGE_RULE = re.compile(
    r"^(?:(?P<registry>[a-zA-Z0-9](?:[a-zA-Z0-9.-]*[a-zA-Z0-9])?(?::[0-9]+)?)/)?"
    rf"(?P<path>{ECR_COMPONENT}(?:/{ECR_COMPONENT})*)"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)
IMAGE_CHOICES = ("both", "training", "processing")
R_PACKAGES_CHOICES = ("packages.txt", "renv")


def check_slug(slug):
    if not 2 <= len(slug) <= SLUG_MAX or not SLUG_RULE.match(slug):
        return (
            f"project_slug {slug!r} is invalid: use 2-{SLUG_MAX} lowercase letters and digits, "
            "separated by single '.', '_' or '-' (an ECR repository name and a folder name)"
        )
    return None


def check_region(region):
    if not REGION_RULE.match(region):
        return f"aws_region {region!r} is invalid: expected a region code such as us-east-1 or eu-west-2"
    return None


def check_base_image(ref):
    match = IMAGE_RULE.match(ref)
    if not match:
        return (
            f"base_image {ref!r} is invalid: expected an image reference such as docker.io/rocker/r2u:24.04"
        )
    if not match.group("digest") and match.group("tag") in (None, "latest"):
        return f"base_image {ref!r} is not pinned: give a version tag or a @sha256 digest, not latest"
    return None


def check_images(images):
    if images not in IMAGE_CHOICES:
        return f"images {images!r} is invalid: choose one of {', '.join(IMAGE_CHOICES)} (at least one image)"
    return None


def check_r_packages(way):
    if way not in R_PACKAGES_CHOICES:
        return f"r_packages {way!r} is invalid: choose one of {', '.join(R_PACKAGES_CHOICES)}"
    return None


def main(answers):
    errors = [
        error
        for error in (
            check_slug(answers["project_slug"]),
            check_region(answers["aws_region"]),
            check_base_image(answers["base_image"]),
            check_images(answers["images"]),
            check_r_packages(answers.get("r_packages", "packages.txt")),
        )
        if error
    ]
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(
        main(
            {
                "project_slug": json.loads(r""" {{ cookiecutter.project_slug | tojson }} """),
                "aws_region": json.loads(r""" {{ cookiecutter.aws_region | tojson }} """),
                "base_image": json.loads(r""" {{ cookiecutter.base_image | tojson }} """),
                "images": json.loads(r""" {{ cookiecutter.images | tojson }} """),
                "r_packages": json.loads(r""" {{ cookiecutter.r_packages | tojson }} """),
            }
        )
    )
