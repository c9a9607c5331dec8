"""Registered, serializable Keras 3 layers.

Every module in this package that does not start with an underscore holds one layer
(or a layer's strategies) and lists its public names in `__all__`; importing the
package imports them all, which registers each layer with Keras under the package
name ``keras_bigmodel``, and exports their public names here. Adding a layer is
adding its file (see CONTRIBUTING.md).
"""

import importlib as _importlib
import pkgutil as _pkgutil

from keras.layers import Layer as _Layer

from keras_bigmodel.layers.attention import AttentionLayer, masked_softmax
from keras_bigmodel.layers.base import CompositeLayer
from keras_bigmodel.layers.fusion import Fusion
from keras_bigmodel.layers.fusion_concat import FusionConcat
from keras_bigmodel.layers.image_augmentation import ImageAugmentation
from keras_bigmodel.layers.multi_task_head import MultiTaskHead
from keras_bigmodel.layers.task_head import TaskHead

__all__ = [
    "AttentionLayer",
    "CompositeLayer",
    "Fusion",
    "FusionConcat",
    "ImageAugmentation",
    "MultiTaskHead",
    "TaskHead",
    "masked_softmax",
]

# Layers added since: every layer class a module lists in `__all__`, found rather than
# listed here (helpers such as a module's constants stay in their module).
for _info in sorted(_pkgutil.iter_modules(__path__), key=lambda m: m.name):
    if _info.name.startswith("_"):
        continue
    _module = _importlib.import_module(f"{__name__}.{_info.name}")
    for _name in getattr(_module, "__all__", ()):
        _obj = getattr(_module, _name)
        if _name not in globals() and isinstance(_obj, type) and issubclass(_obj, _Layer):
            globals()[_name] = _obj
            __all__.append(_name)
__all__ = sorted(__all__)
