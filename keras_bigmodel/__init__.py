"""keras-bigmodel: attention pooling, multi-task heads, branch fusion and a model zoo
for Keras 3, with safe saving, int8 compression and explanations.

Importing this package registers every layer with Keras, so `.keras` files that
contain them load with plain `keras.saving.load_model` afterwards. It does nothing
else: no output, no change to Keras's global configuration, no files.
"""

from keras_bigmodel import (
    augment,
    compress,
    data,
    ensembles,
    explain,
    layers,
    models,
    validation,
    verification,
)
from keras_bigmodel.ensembles import ensemble
from keras_bigmodel.saving import ModelFileError, UnsafeModelError, load_model, save_model
from keras_bigmodel.version import __version__

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
    "models",
    "save_model",
    "validation",
    "verification",
]
