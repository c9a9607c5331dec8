"""Attention maps: the weights an `AttentionLayer` gives each time step, on every backend.

The model's graph is replayed once, eagerly, in inference mode (as `ModelView` does),
and the node of the chosen layer is called with `return_attention_scores=True`: it
hands back the weights it computed, its mask applied, through its public call
argument. Nested models are replayed the same way; an `AttentionLayer` inside a
`Fusion` layer (mode `"attention"`), which is no node of any graph, is reached by
calling that `Fusion` node with `return_weights=True`. The layer itself knows nothing
of explanations.
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
    if view.graph is None:
        raise ValueError(
            f"Model '{model.name}' is subclassed: attention_scores replays a model's layers to "
            f"ask its AttentionLayer for its weights; build it as a functional or Sequential "
            f"model, or call the layer with return_attention_scores=True yourself"
        )
    arrays = view.arrays(inputs)
    graph_ref = weakref.ref(view.graph)  # the compiled forward pass is cached per model (JAX)
    model_name = model.name

    def forward(tensors):
        found: list = []
        _replay(graph_ref(), list(tensors), target, found)
        if len(found) != 1:
            raise ValueError(
                f"AttentionLayer '{target.name}' ran {len(found)} times in one forward pass of "
                f"'{model_name}'; attention_scores needs a layer that runs exactly once"
            )
        return found[0]

    return evaluate(forward, arrays, cache=(model, ("attention", id(target))))


def _holds(layer, target) -> bool:
    return any(inner is target for inner in _compat.all_layers(layer, include_self=False))


def _replay(graph, tensors: list, target, found: list):
    """Runs `graph` on `tensors`, collecting the weights of `target` into `found`."""

    def operation_fn(layer):
        return lambda *args, **kwargs: _dispatch(layer, args, kwargs, target, found)

    return _compat.run_graph(graph, tensors, operation_fn)


def _dispatch(layer, args, kwargs, target, found):
    from keras_bigmodel.layers import Fusion

    if layer is target:
        output, scores = layer(*args, **{**kwargs, "return_attention_scores": True})
        found.append(scores)
        return output
    if isinstance(layer, Fusion) and getattr(layer, "attention", None) is target:
        output, weights = layer(*args, **{**kwargs, "return_weights": True})
        found.append(weights)
        return output
    if isinstance(layer, keras.Model) and _holds(layer, target):
        if isinstance(layer, keras.Sequential):
            x = args[0]
            for inner in layer.layers:
                x = _dispatch(inner, (x,), {}, target, found)
            return x
        if _compat.is_functional(layer):
            return _replay(layer, keras.tree.flatten(args[0]), target, found)
        raise ValueError(
            f"AttentionLayer '{target.name}' sits inside the subclassed model '{layer.name}', "
            f"whose layers cannot be replayed; attention_scores cannot reach it"
        )
    return layer(*args, **kwargs)


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
