"""Registered, serializable Keras 3 layers.

Each public module in this package holds one layer (or a layer's strategies) and lists
its public names in `__all__`; importing this package imports them, which registers
each layer with Keras under the package name ``keras_bigmodel``. Adding a layer is
adding its file and its line below (see CONTRIBUTING.md); `tests/test_contract.py`
fails if a module's layer is missing here.
"""

from keras_bigmodel.layers.attention import AttentionLayer, masked_softmax
from keras_bigmodel.layers.base import CompositeLayer
from keras_bigmodel.layers.fusion import Fusion
from keras_bigmodel.layers.fusion_concat import FusionConcat
from keras_bigmodel.layers.image_augmentation import ImageAugmentation
from keras_bigmodel.layers.mixture_of_experts import MixtureOfExperts
from keras_bigmodel.layers.multi_task_head import MultiTaskHead
from keras_bigmodel.layers.progressive_layered_extraction import ProgressiveLayeredExtraction
from keras_bigmodel.layers.task_head import TaskHead

__all__ = [
    "AttentionLayer",
    "CompositeLayer",
    "Fusion",
    "FusionConcat",
    "ImageAugmentation",
    "MixtureOfExperts",
    "MultiTaskHead",
    "ProgressiveLayeredExtraction",
    "TaskHead",
    "masked_softmax",
]
