"""Attention maps: the weights an `AttentionLayer` gives each time step, on every backend.

The model runs once, eagerly, in inference mode, and the chosen layer hands over the
weights it computed (its mask applied) through its `score_sink` attribute, which is
set for that one forward pass only. That reaches layers nested anywhere, including an
`AttentionLayer` inside a `Fusion` layer, which is no node of the model's graph.
"""

from __future__ import annotations

import weakref

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.explain._gradients import evaluate
from keras_bigmodel.explain._model import ModelView

__all__ = ["attention_layers", "attention_scores"]


def attention_layers(model: keras.Model) -> list:
    """Every `AttentionLayer` in the model, nested ones included.

    Args:
        model: A `keras.Model`.

    Returns:
        The layers, in the order Keras tracks them.

    Example:

    ```python
    [layer.name for layer in kbm.explain.attention_layers(zoo.build("attention_rnn"))]
    ```
    """
    from keras_bigmodel.layers import AttentionLayer

    v.check_model(model)
    return [
        layer
        for layer in _compat.all_layers(model, include_self=False)
        if isinstance(layer, AttentionLayer)
    ]


def attention_scores(model: keras.Model, inputs, layer: str | None = None) -> np.ndarray:
    """The attention weights an `AttentionLayer` gives each time step.

    Args:
        model: A `keras.Model` containing an `AttentionLayer` (nested ones too).
        inputs: A batch of the model's inputs (array, list or dict by input name).
        layer: Name of the `AttentionLayer` if the model has several.

    Returns:
        A float32 array of shape `(batch, time)`; each row sums to 1 over its unmasked
        steps and is 0 on masked ones.

    Raises:
        ValueError: the model has no `AttentionLayer`, several and `layer` is None,
            `layer` names none of them, or the layer runs more than once per pass.
        TypeError: `model` is not a `keras.Model`.

    Example:

    ```python
    weights = kbm.explain.attention_scores(attention_rnn, sequences)   # (batch, time)
    ```
    """
    found = attention_layers(model)
    if not found:
        raise ValueError(f"Model '{model.name}' has no AttentionLayer")
    names = [a.name for a in found]
    if layer is None:
        if len(found) > 1:
            raise ValueError(
                f"Model '{model.name}' has several AttentionLayers {names}; pick one with "
                f"layer=<name>"
            )
        target = found[0]
    else:
        matches = [a for a in found if a.name == layer]
        if not matches:
            raise ValueError(f"`layer` must be one of {names}. Received: layer={layer!r}")
        target = matches[0]
    view = ModelView(model, output=_any_output(model), logits=False)
    arrays = view.arrays(inputs)
    as_dict = view.graph is not None and isinstance(view.graph.input, dict)
    model_ref = weakref.ref(model)  # the compiled forward pass is cached per model (JAX)

    def forward(tensors):
        feed = (
            dict(zip(view.input_names, tensors))
            if as_dict
            else (tensors if len(tensors) > 1 else tensors[0])
        )
        sink: list = []
        object.__setattr__(target, "score_sink", sink)
        try:
            model_ref()(feed, training=False)
        finally:
            object.__setattr__(target, "score_sink", None)
        if len(sink) != 1:
            raise ValueError(
                f"AttentionLayer '{target.name}' ran {len(sink)} times in one forward pass of "
                f"'{model_ref().name}'; attention_scores needs a layer that runs once"
            )
        return sink[0]

    return evaluate(forward, arrays, cache=(model, ("attention", id(target))))


def _any_output(model):
    """An output to satisfy ModelView (attention does not depend on which)."""
    try:
        structure = model.output
    except (AttributeError, ValueError):
        return None
    if isinstance(structure, dict):
        return min(structure)
    if isinstance(structure, (list, tuple)) and len(structure) > 1:
        return 0
    return None
