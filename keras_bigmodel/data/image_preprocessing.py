"""Images inside the model: the `ImagePreprocessing` layer that resizes raw pixels to a
model's input size and rescales them, and the functions that put it in front of a
trained network, find it, and give the model at its training size (for exports).

A model with this front takes raw pixel values (0..255) of any height and width,
`(batch, None, None, channels)`; the layer resizes them to the network's size
(bilinear, antialiased: within 0.62/255 of the Pillow resize the image reader does,
measured on docs/data.md) and multiplies them by `scale` (1/255: the [0, 1] pixels the
network was built for). `keras-bigmodel train PRESET --data FOLDER` puts it before an
image preset (one input, of kind image), so the saved `.keras` file alone predicts
images of any size on every backend.

The resize is skipped when the input's height and width are static and already the
target's (the reader resizes training images to the network's size, so training pixels
are exactly those of a model without the front, up to the rounding of `x * (1/255)`
against `x / 255`). That is also what makes the front exportable: Keras's antialiased
resize does not convert to ONNX (tf2onnx leaves a `ScaleAndTranslate` node onnxruntime
refuses; torch.onnx has no `aten::_upsample_bilinear2d_aa`), so `at_training_size`
gives the same model with a static input of the training size, where the front is a
plain rescaling, and `kbm.compress.export_onnx` / `export_tflite` export that.

Example:

```python
import numpy as np
from keras_bigmodel.data.image_preprocessing import ImagePreprocessing

layer = ImagePreprocessing(8, 8)                  # scale=1/255, antialias=True
layer(np.full((1, 32, 24, 1), 255.0, "float32")).shape      # (1, 8, 8, 1), all 1.0
```
"""

from __future__ import annotations

import copy
import numbers

import keras
from keras import ops

__all__ = [
    "FRONT_NAME",
    "ImagePreprocessing",
    "at_training_size",
    "front_of",
    "network_view",
    "with_front",
]

FRONT_NAME = "image_preprocessing"
_INTERPOLATIONS = ("bilinear", "nearest", "bicubic", "area", "lanczos3", "lanczos5")


def _positive(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 < value <= 65536:
        raise ValueError(f"`{name}` must be an integer in [1, 65536]. Received: {name}={value!r}")
    return int(value)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ImagePreprocessing(keras.layers.Layer):
    """Raw images of any size -> the network's input size and pixel scale, inside the model.

    Args:
        height: The output height (the network's input height).
        width: The output width.
        scale: Multiplies the resized pixels (default 1/255: raw 0..255 to [0, 1]).
        offset: Added after scaling (default 0).
        interpolation: `keras.ops.image.resize`'s interpolation (default
            `"bilinear"`, what the image reader's Pillow resize does).
        antialias: Antialias when shrinking (default True: the reader's Pillow
            resize is antialiased; without it a 32x24 -> 8x8 shrink differs from
            the reader's by up to 119.5/255).
        **kwargs: Layer options (`name`, ...). The layer computes in float32.

    Call arguments:
        inputs: `(batch, height_in, width_in, channels)` raw pixels, any height and
            width (channels last).

    Returns:
        `(batch, height, width, channels)` float32: resized (skipped when the input's
        static size is already `(height, width)`), then `* scale + offset`.

    Raises:
        ValueError: An argument that is not allowed (named, with the value received).

    Example:

    ```python
    layer = ImagePreprocessing(8, 8)
    layer(np.zeros((2, 30, 40, 3), "float32")).shape     # (2, 8, 8, 3)
    ```

    Reference:
        Keras's `keras.layers.Resizing` and `keras.layers.Rescaling` (the same two
        steps, as one layer that can be bypassed at the training size for export).
    """

    def __init__(
        self,
        height,
        width,
        scale=1.0 / 255.0,
        offset=0.0,
        interpolation="bilinear",
        antialias=True,
        **kwargs,
    ):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.height = _positive("height", height)
        self.width = _positive("width", width)
        for name, value in (("scale", scale), ("offset", offset)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"`{name}` must be a number. Received: {name}={value!r}")
        if not scale > 0:
            raise ValueError(f"`scale` must be > 0. Received: scale={scale!r}")
        self.scale = float(scale)
        self.offset = float(offset)
        if interpolation not in _INTERPOLATIONS:
            raise ValueError(
                f"`interpolation` must be one of {list(_INTERPOLATIONS)}. "
                f"Received: interpolation={interpolation!r}"
            )
        self.interpolation = interpolation
        if not isinstance(antialias, bool):
            raise ValueError(
                f"`antialias` must be True or False. Received: antialias={antialias!r}"
            )
        self.antialias = antialias
        self.supports_masking = False

    @property
    def size(self) -> tuple[int, int]:
        """`(height, width)` of the output."""
        return self.height, self.width

    def build(self, input_shape):
        if len(input_shape) != 4:
            raise ValueError(
                f"ImagePreprocessing takes images (batch, height, width, channels); its input "
                f"has shape {tuple(input_shape)}"
            )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        if tuple(x.shape[1:3]) != self.size:  # static and already the size: no resize
            x = ops.image.resize(
                x, self.size, interpolation=self.interpolation, antialias=self.antialias
            )
        if self.scale != 1.0:
            x = x * self.scale
        if self.offset != 0.0:
            x = x + self.offset
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.height, self.width, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        config.update(
            height=self.height,
            width=self.width,
            scale=self.scale,
            offset=self.offset,
            interpolation=self.interpolation,
            antialias=self.antialias,
        )
        return config


# ------------------------------------------------------------------ models
def front_of(model) -> ImagePreprocessing | None:
    """The `ImagePreprocessing` layer a model takes its images through (None if none,
    or if `model` is not a Keras model, e.g. an exported runtime file)."""
    if not isinstance(model, keras.Model):
        return None
    for layer in model.layers:
        if isinstance(layer, ImagePreprocessing):
            return layer
    return None


def _image_input(config: dict, what: str) -> dict:
    inputs = [entry for entry in config["layers"] if entry["class_name"] == "InputLayer"]
    if len(inputs) != 1 or len(inputs[0]["config"].get("batch_shape") or ()) != 4:
        raise ValueError(
            f"{what} needs a functional model with one image input (batch, height, width, "
            f"channels); model '{config.get('name')}' has "
            f"{[e['config'].get('batch_shape') for e in inputs]}"
        )
    return inputs[0]


def _at_front_size(model: keras.Model, front, what: str) -> tuple[dict, dict, bool]:
    """`(config, image input entry, changed)`: the model's config with its image input
    at the front's (training) size; `changed` says whether the size was another."""
    config = model.get_config()
    entry = _image_input(config, what)
    shape = entry["config"]["batch_shape"]
    changed = tuple(shape[1:3]) != front.size
    entry["config"]["batch_shape"] = [shape[0], *front.size, shape[3]]
    return config, entry, changed


def _rebuilt(model: keras.Model, config: dict) -> keras.Model:
    rebuilt = model.__class__.from_config(config)
    names = {layer.name for layer in rebuilt.layers}
    for layer in model.layers:
        if layer.weights and layer.name in names:
            rebuilt.get_layer(layer.name).set_weights(layer.get_weights())
    return rebuilt


def _retarget(value, old: str, new: str):
    """Every reference to the output of layer `old` in a functional config, to `new`."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value["config"].get("keras_history")
            if history and history[0] == old:
                value = copy.deepcopy(value)
                value["config"]["keras_history"] = [new, 0, 0]
                return value
        return {k: _retarget(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_retarget(v, old, new) for v in value]
    return value


def with_front(
    model: keras.Model, scale: float = 1.0 / 255.0, antialias: bool = True
) -> keras.Model:
    """`model` (a functional model with one image input of a fixed size, e.g. a zoo
    image preset) with an `ImagePreprocessing` front: the same layers and weights,
    one flat functional model of the same class (a `PresetModel` keeps its preset
    record), whose image input takes raw pixels `(None, None, channels)`. Compiled
    like `model` if `model` was compiled.

    Raises:
        ValueError: The model has no single image input of a fixed size, or has a
            front already.
    """
    if front_of(model) is not None:
        raise ValueError(f"model '{model.name}' has an ImagePreprocessing front already")
    config = model.get_config()
    entry = _image_input(config, "with_front")
    _, height, width, channels = entry["config"]["batch_shape"]
    if height is None or width is None:
        raise ValueError(
            f"with_front needs a network of a fixed image size; model '{model.name}' takes "
            f"{tuple(entry['config']['batch_shape'])}"
        )
    name = entry["name"]
    front = ImagePreprocessing(height, width, scale=scale, antialias=antialias, name=FRONT_NAME)
    serialized = keras.saving.serialize_keras_object(front)
    serialized["name"] = FRONT_NAME
    serialized["inbound_nodes"] = [
        {
            "args": [
                {
                    "class_name": "__keras_tensor__",
                    "config": {
                        "shape": [None, None, None, channels],
                        "dtype": "float32",
                        "keras_history": [name, 0, 0],
                    },
                }
            ],
            "kwargs": {},
        }
    ]
    layers = []
    for layer in config["layers"]:
        if layer is entry:
            layer = copy.deepcopy(layer)
            layer["config"]["batch_shape"] = [None, None, None, channels]
            layers += [layer, serialized]
        else:
            layers.append(_retarget(layer, name, FRONT_NAME))
    config["layers"] = layers
    rebuilt = _rebuilt(model, config)
    if model.compiled:
        rebuilt.compile_from_config(model.get_compile_config())
    return rebuilt


def at_training_size(model: keras.Model) -> keras.Model:
    """A model with an `ImagePreprocessing` front and a variable image size, as the
    same layers and weights with a static input of the front's size (the size it was
    trained at), where the front only rescales: what ONNX and LiteRT exports take
    (raw pixels of that size). Any other model is returned as it is."""
    front = front_of(model)
    if front is None:
        return model
    config, _, resized = _at_front_size(model, front, "at_training_size")
    return _rebuilt(model, config) if resized else model


def network_view(model: keras.Model) -> keras.Model | None:
    """The network behind a model's `ImagePreprocessing` front: the same layers after
    the front and their weights (copied), as a model of the same class whose input
    (named like the model's) takes images of the training size, rescaled as the front
    gives them (for explanations, which draw the images the network sees). None if
    the model has no front."""
    front = front_of(model)
    if front is None:
        return None
    config, entry, _ = _at_front_size(model, front, "network_view")
    config["layers"] = [
        _retarget(layer, front.name, entry["name"])
        for layer in config["layers"]
        if layer.get("name") != front.name
    ]
    return _rebuilt(model, config)
