"""Registered, serializable Keras 3 layers; every class here is registered with Keras
under the package name ``keras_bigmodel`` as soon as this module is imported."""

from keras_bigmodel.layers.attention import AttentionLayer, masked_softmax
from keras_bigmodel.layers.fusion import Fusion, FusionConcat
from keras_bigmodel.layers.image_augmentation import ImageAugmentation
from keras_bigmodel.layers.task_heads import MultiTaskHead, TaskHead

__all__ = [
    "AttentionLayer",
    "Fusion",
    "FusionConcat",
    "ImageAugmentation",
    "MultiTaskHead",
    "TaskHead",
    "masked_softmax",
]
