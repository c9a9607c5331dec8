"""`python -m keras_bigmodel` runs the `keras-bigmodel` command (`keras_bigmodel_cli.main`).

Python imports the package first, and so Keras, before this runs; the console script
`keras-bigmodel` answers `--help` and `--version` without that cost.
"""

import sys

from keras_bigmodel_cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
