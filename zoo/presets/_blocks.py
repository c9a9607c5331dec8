"""Building blocks shared by several preset files (not a preset: the name starts with _)."""

from __future__ import annotations

from typing import Any

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.augment import image_augmentation

__all__ = ["CELLS", "augmentation_block", "recurrent"]

CELLS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU}


def augmentation_block(augmentation: Any):
    """`None`/`False` (none), `True` (defaults) or a dict of `image_augmentation` kwargs."""
    if augmentation is None or augmentation is False:
        return None
    if augmentation is True:
        return image_augmentation(name="augmentation")
    if isinstance(augmentation, dict):
        return image_augmentation(**{"name": "augmentation", **augmentation})
    raise ValueError(
        "`augmentation` must be None, True or a dict of image_augmentation arguments "
        f"(e.g. {{'rotation': 0.05, 'flip': None}}). Received: augmentation={augmentation!r}"
    )


def recurrent(
    cell: str, units: int, return_sequences: bool, bidirectional: bool, dtype, name: str
) -> keras.layers.Layer:
    """An LSTM or GRU layer, optionally bidirectional."""
    layer = CELLS[v.check_choice("cell", cell, CELLS)](
        units, return_sequences=return_sequences, dtype=dtype, name=name
    )
    if bidirectional:
        return keras.layers.Bidirectional(layer, dtype=dtype, name=f"bidirectional_{name}")
    return layer
