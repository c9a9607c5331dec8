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
    distribute,
    ensembles,
    explain,
    fileio,
    layers,
    models,
    multitask,
    validation,
    verification,
)
from keras_bigmodel.ensembles import ensemble
from keras_bigmodel.saving import (
    LoadLimits,
    ModelFileError,
    ModelTooLargeError,
    UnsafeModelError,
    load_model,
    save_model,
)
from keras_bigmodel.version import __version__

__all__ = [
    "LoadLimits",
    "ModelFileError",
    "ModelTooLargeError",
    "UnsafeModelError",
    "__version__",
    "augment",
    "compress",
    "data",
    "distribute",
    "ensemble",
    "ensembles",
    "explain",
    "fileio",
    "layers",
    "load_model",
    "models",
    "multitask",
    "save_model",
    "validation",
    "verification",
]
