"""How each zoo preset sees the digits: overrides for training, inputs and targets.

cnn: 8x8x1 images; rnn/attention_rnn: the 8 rows as an 8-step sequence;
multitask: the 64 pixels, with a digit head and a parity head; crossmodal: the
image and its rows as two modalities; fusion: the top and bottom halves as two
inputs, predicting two binary facts (odd? at least 5?) with its two sigmoids.
"""

from __future__ import annotations

import keras
import numpy as np

from keras_bigmodel.data import Digits

MULTITASK_TASKS = {
    "digit": {"units": 10, "activation": "softmax"},
    "parity": {"units": 2, "activation": "softmax"},
}
TRAIN_OVERRIDES = {
    "cnn": {"input_shape": [8, 8, 1]},
    "rnn": {"input_shape": [8, 8]},
    "attention_rnn": {"input_shape": [8, 8]},
    "multitask": {"input_shape": [64], "tasks": MULTITASK_TASKS},
    "crossmodal": {"image_shape": [8, 8, 1], "sequence_shape": [8, 8]},
    "fusion": {"input_shape": [32]},
}


def _shape(tensor):
    return tuple(tensor.shape[1:])


def model_inputs(model: keras.Model, images: np.ndarray):
    """The digits in the form `model` takes, or ValueError if it takes none of them."""
    tensors = model.inputs
    shapes = [_shape(t) for t in tensors]
    if shapes == [(8, 8, 1)]:
        return images
    if len(shapes) == 1 and len(shapes[0]) == 2 and shapes[0][1] == 8 and shapes[0][0] in (8, None):
        return Digits.sequences(images)
    if shapes == [(64,)]:
        return images.reshape(len(images), 64)
    if sorted(shapes, key=len) == [(8, 8), (8, 8, 1)] and isinstance(model.input, dict):
        return {"image": images, "sequence": Digits.sequences(images)}
    if shapes == [(32,), (32,)]:
        flat = images.reshape(len(images), 64)
        return [flat[:, :32], flat[:, 32:]]
    raise ValueError(
        f"Model '{model.name}' takes inputs of shapes {shapes}, which are not a view of the "
        f"8x8 digits (8x8x1 images, 8-step rows, 64 pixels, image+rows, or two 32-pixel halves)"
    )


def model_targets(model: keras.Model, labels: np.ndarray):
    """Training targets in the structure of `model`'s outputs."""
    output = model.output
    if isinstance(output, dict):
        unknown = sorted(set(output) - {"digit", "parity"})
        if unknown:
            raise ValueError(f"Model '{model.name}' has outputs {unknown} that digits cannot label")
        return {k: v for k, v in Digits.multitask_targets(labels).items() if k in output}
    width = output.shape[-1]
    if width == 10:
        return Digits.one_hot(labels, 10)
    if width == 2 and len(model.inputs) == 2:
        return np.stack([labels % 2, labels >= 5], axis=-1).astype("float32")
    raise ValueError(f"Model '{model.name}' outputs {width} values; digits label 10 classes")


def accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict:
    """Test accuracy per output (binary outputs: the fraction of correct bits)."""
    predicted = model.predict(model_inputs(model, images), verbose=0, batch_size=256)
    targets = model_targets(model, labels)
    if not isinstance(predicted, dict):
        predicted, targets = {"accuracy": predicted}, {"accuracy": targets}
    binary = not isinstance(model.output, dict) and model.output.shape[-1] == 2
    scores = {}
    for key, p in predicted.items():
        t = targets[key]
        if binary:
            scores[key] = float(np.mean((p > 0.5) == (t > 0.5)))
        else:
            scores[key] = float(np.mean(np.argmax(p, -1) == np.argmax(t, -1)))
    return scores
