"""`python -m keras_bigmodel` runs the `keras-bigmodel` command."""

import sys

from keras_bigmodel.cli import main

if __name__ == "__main__":
    sys.exit(main())
