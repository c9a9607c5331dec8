"""keras-bigmodel: attention pooling, multi-task heads, branch fusion and a model zoo
for Keras 3, with safe saving, int8 compression and explanations.

Importing this package registers every layer with Keras, so `.keras` files that
contain them load with plain `keras.saving.load_model` afterwards.
"""

import importlib

from keras_bigmodel import _console  # noqa: F401  (must run before TensorFlow loads)
from keras_bigmodel import layers
from keras_bigmodel.saving import UnsafeModelError, ModelFileError, load_model, save_model
from keras_bigmodel.version import __version__

# Submodules whose work needs heavier imports (TensorFlow's converter, tf-keras-vis,
# matplotlib) load on first use, so `import keras_bigmodel` costs little more than
# `import keras`.
_LAZY_SUBMODULES = ("augment", "compress", "data", "ensembles", "explain", "verification", "cli")


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_bigmodel.{name}")
    if name == "ensemble":
        return importlib.import_module("keras_bigmodel.ensembles").ensemble
    raise AttributeError(f"module 'keras_bigmodel' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY_SUBMODULES) + ["ensemble"])


__all__ = [
    "ModelFileError",
    "UnsafeModelError",
    "__version__",
    "ensemble",
    "layers",
    "load_model",
    "save_model",
]
