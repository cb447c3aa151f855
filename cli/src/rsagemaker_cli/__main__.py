"""python -m rsagemaker_cli COMMAND: the same as the `rsagemaker` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
