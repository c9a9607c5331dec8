"""keras-bigmodel: attention pooling, multi-task heads, branch fusion and a model zoo
for Keras 3, with safe saving, int8 compression and explanations.

Importing this package registers every layer with Keras, so `.keras` files that
contain them load with plain `keras.saving.load_model` afterwards.
"""

import importlib

from keras_bigmodel import _console  # noqa: F401  (must run before TensorFlow loads)
from keras_bigmodel import layers

# The modules below import only Keras and NumPy at module level (TensorFlow's
# converter, tf-keras-vis, scikit-learn and matplotlib load inside the functions that
# use them), and some define registered objects, so they load with the package.
from keras_bigmodel import augment, compress, data, ensembles, explain, verification  # noqa: F401
from keras_bigmodel.ensembles import ensemble
from keras_bigmodel.saving import ModelFileError, UnsafeModelError, load_model, save_model
from keras_bigmodel.version import __version__


def __getattr__(name):
    if name == "cli":  # the command line imports `zoo`; only on demand
        return importlib.import_module("keras_bigmodel.cli")
    raise AttributeError(f"module 'keras_bigmodel' has no attribute {name!r}")


__all__ = [
    "ModelFileError",
    "UnsafeModelError",
    "__version__",
    "augment",
    "compress",
    "data",
    "ensemble",
    "explain",
    "layers",
    "load_model",
    "save_model",
    "verification",
]
