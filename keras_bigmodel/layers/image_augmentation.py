"""A Sequential of augmentation layers that stays off unless the model is training."""

from __future__ import annotations

import keras

__all__ = ["ImageAugmentation"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ImageAugmentation(keras.Sequential):
    """A `keras.Sequential` of augmentation layers that is off unless training.

    Keras's random preprocessing layers default to `training=True`, so on their
    own they also transform images in a plain `model(x)` call and in an exported
    SavedModel. This Sequential defaults to `training=False` and passes the flag
    down: `fit` turns it on; `predict`, `evaluate`, a plain `model(x)` call and
    serving functions see the images unchanged (apart from a `Resizing` layer,
    which always runs). Build one with `keras_bigmodel.augment.image_augmentation`.

    Call arguments:
        inputs: Images, `(batch, height, width, channels)`.
        training: Whether to augment. Defaults to `False`.

    Returns:
        The (possibly augmented) images.
    """

    def call(self, inputs, training=False, mask=None, **kwargs):
        return super().call(inputs, training=bool(training), mask=mask, **kwargs)
