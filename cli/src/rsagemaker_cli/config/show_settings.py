"""`rsagemaker settings`: every AWS setting, its value and where that came from.

The settings and their defaults are core/settings.py's table; a project's config/aws.json holds
what its owner sets, and an environment variable wins over both.
"""

import json

from ..core.settings import SETTINGS, load


def show(args):
    project = args.project
    settings = load(project)
    width = max(len(setting.key) for setting in SETTINGS)
    for setting in SETTINGS:
        value = settings[setting.key]
        shown = json.dumps(value) if not isinstance(value, str) else (value or "(not set)")
        print(
            f"{setting.key:<{width}}  {shown}  [{settings.sources[setting.key]}; env {setting.variables[0]}]"
        )
    print(
        f"Set a value in {project.show(project.config_file)} (an object per section, e.g. "
        '"training": {"instance_type": "ml.m5.xlarge"}) or export its variable.'
    )
    return 0
