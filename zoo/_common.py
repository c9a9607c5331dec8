"""Argument checks and small building blocks shared by the preset families."""

from __future__ import annotations

from typing import Any

import keras

from keras_bigmodel.augment import image_augmentation
from keras_bigmodel.layers import _utils as checks

__all__ = ["checks", "augmentation_block", "check_dtype", "check_name"]


def check_dtype(dtype: Any):
    """`None` or anything `keras.dtype_policies.get` accepts (e.g. 'mixed_float16')."""
    if dtype is None:
        return None
    try:
        keras.dtype_policies.get(dtype)
    except Exception:
        raise ValueError(
            "`dtype` must be None or a dtype policy such as 'float32', 'mixed_float16' "
            f"or 'mixed_bfloat16'. Received: dtype={dtype!r}"
        ) from None
    return dtype


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    return name


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
