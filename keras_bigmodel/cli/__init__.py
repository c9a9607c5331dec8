"""The `keras-bigmodel` command's implementation, one module per group of commands.

The entry point is the top-level module `keras_bigmodel_cli` (the console script and
`python -m keras_bigmodel`): it parses the command line without importing Keras and
then imports only the command's module here:

- `catalog`: `list`, `show`, `build`;
- `train`: `train PRESET --data PATH --out DIR`;
- `evaluate`: `evaluate MODEL --data PATH`;
- `predict`: `predict MODEL --data PATH --out predictions.csv`;
- `explain`: `explain MODEL --data PATH --out FILE.png`;
- `files`: `verify`;
- `quantize`: `quantize`;
- `demo`: the offline end-to-end demo on the bundled digits.

Data are read by `keras_bigmodel.data`; a preset meets them through its
`zoo.views.DataView`. This package may import `zoo`; nothing in the library imports it.
"""

from keras_bigmodel_cli import build_parser, main

__all__ = ["build_parser", "main"]
