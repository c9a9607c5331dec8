"""The documents' model fusion (`concatenate` of branch outputs) as a registered layer."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers.fusion import Fusion

__all__ = ["FusionConcat"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class FusionConcat(Fusion):
    """Concatenates branch outputs: the documents' model fusion (`concatenate`).

    The documents fuse two models by concatenating their outputs; this layer is
    that step, as a registered, serializable layer with clear errors: exactly
    `Fusion(mode="concat", axis=axis)`, with the same checks, masks (concatenated
    along a masked axis, AND-ed otherwise), dict inputs and `modality_mask`.

    Args:
        axis: Integer, the axis to concatenate along. Defaults to `-1`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: A list (or dict) of at least two tensors whose shapes agree on
            every axis except `axis`.
        modality_mask: Optional `(batch, branches)` presence of each branch; a
            missing branch is zeros in the output.

    Returns:
        One tensor, the branches concatenated along `axis`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import FusionConcat

    input1 = keras.Input(shape=(10,))
    input2 = keras.Input(shape=(10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    output = FusionConcat(axis=-1)([dense1, dense2])      # (batch, 2)
    model = keras.Model([input1, input2], output)
    ```
    """

    def __init__(self, axis: int = -1, **kwargs):
        for key in ("mode", "units", "modality_dropout"):
            if key in kwargs:
                raise ValueError(
                    f"FusionConcat does not take `{key}`; use Fusion(mode=..., {key}=...) "
                    f"instead. Received: {key}={kwargs[key]!r}"
                )
        super().__init__(mode="concat", axis=v.check_axis("axis", axis), **kwargs)

    def get_config(self):
        config = super().get_config()
        return {k: config[k] for k in ("name", "trainable", "dtype", "axis") if k in config}
