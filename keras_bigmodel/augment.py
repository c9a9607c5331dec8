"""Image augmentation from Keras preprocessing layers (the documents' rotate/resize step).

The block is a `keras.Sequential` of Keras's own random preprocessing layers, so it
runs on every backend and saves and reloads inside a model. It is active only in
training (see `keras_bigmodel.layers.ImageAugmentation`).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers.image_augmentation import ImageAugmentation

__all__ = ["FLIP_MODES", "image_augmentation"]

FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def _factor(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(f"`{name}` must be a number in [0, 1). Received: {name}={value!r}")
    return float(value)


def image_augmentation(
    rotation: float = 0.1,
    flip: str | None = "horizontal",
    zoom: float = 0.1,
    translation: float = 0.0,
    contrast: float = 0.0,
    resize: Sequence[int] | None = None,
    seed: int | None = None,
    name: str = "image_augmentation",
    dtype=None,
) -> ImageAugmentation:
    """An augmentation block for images of shape `(batch, height, width, channels)`.

    The documents augment by rotating and resizing images with OpenCV; this is
    the same idea with Keras preprocessing layers, which run inside the model on
    any backend and are saved with it.

    Args:
        rotation: Maximum rotation as a fraction of a full turn (`0.25` is up to
            90 degrees either way); `0` disables it.
        flip: `"horizontal"`, `"vertical"`, `"horizontal_and_vertical"` or
            `None`. Use `None` for images whose mirror image means something
            else (digits, text).
        zoom: Maximum zoom in or out, as a fraction of the size; `0` disables it.
        translation: Maximum shift, as a fraction of height and width.
        contrast: Maximum contrast change, as a fraction; `0` disables it.
        resize: Optional `(height, width)`: resize every image first (the
            documents' `cv2.resize`). Unlike the random layers this runs at
            inference too, because the rest of the model depends on the size.
        seed: Optional integer seed, for reproducible augmentation.
        name: The block's name.
        dtype: Optional dtype policy of the block and its layers (e.g.
            `"mixed_float16"`).

    Returns:
        An `ImageAugmentation` (a `keras.Sequential`) to call on image tensors or
        to put in a model.

    Example:

    ```python
    import keras
    from keras_bigmodel.augment import image_augmentation

    inputs = keras.Input(shape=(64, 64, 3))
    x = image_augmentation(rotation=0.05, flip="horizontal", zoom=0.1)(inputs)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    ```
    """
    rotation = _factor("rotation", rotation)
    zoom = _factor("zoom", zoom)
    translation = _factor("translation", translation)
    contrast = _factor("contrast", contrast)
    if flip is not None:
        v.check_choice("flip", flip, FLIP_MODES)
    v.check_seed("seed", seed)
    v.check_name("name", name)
    v.check_dtype_policy("dtype", dtype)

    layers = []
    if resize is not None:
        height, width = v.check_shape("resize", resize, 2, 2)
        layers.append(keras.layers.Resizing(height, width, name="resize", dtype=dtype))
    if flip:
        layers.append(keras.layers.RandomFlip(flip, seed=seed, name="flip", dtype=dtype))
    if rotation:
        layers.append(
            keras.layers.RandomRotation(rotation, seed=seed, name="rotation", dtype=dtype)
        )
    if zoom:
        layers.append(keras.layers.RandomZoom(zoom, seed=seed, name="zoom", dtype=dtype))
    if translation:
        layers.append(
            keras.layers.RandomTranslation(
                translation, translation, seed=seed, name="translation", dtype=dtype
            )
        )
    if contrast:
        layers.append(
            keras.layers.RandomContrast(contrast, seed=seed, name="contrast", dtype=dtype)
        )
    if not layers:
        raise ValueError(
            "image_augmentation() got nothing to do: every transform is disabled "
            "(rotation=0, flip=None, zoom=0, translation=0, contrast=0, resize=None)"
        )
    return ImageAugmentation(layers, name=name)
