"""Running a wrapped layer with some of its variables replaced by computed values
(masked or fake-quantized kernels), on every backend, through Keras's public
`keras.StatelessScope`."""

from __future__ import annotations

import inspect

import keras
from keras import ops

__all__ = ["call_arguments", "call_with_values"]


def call_arguments(layer) -> set[str]:
    """Which of `training` and `mask` the layer's `call` takes."""
    parameters = inspect.signature(layer.call).parameters
    return {k for k in ("training", "mask") if k in parameters}


def call_with_values(layer, inputs, replace: dict, **kwargs):
    """`layer(inputs, **kwargs)` with each variable `v` whose `id` is in `replace`
    read as `replace[id(v)](value of v)`.

    Every variable of the layer is read from one `StatelessScope`: the replaced ones
    computed from their current values, the others as they are (under JAX's
    stateless training, the values being traced, so nothing stale is read).
    Gradients flow through the replacement to the variable. Updates the layer makes
    to its other variables (e.g. a dropout seed) are written back afterwards.
    """
    mapping = []
    for v in layer.variables:
        value = ops.convert_to_tensor(v)  # the value in the enclosing scope
        if id(v) in replace:
            value = replace[id(v)](value)
        mapping.append((v, value))
    with keras.StatelessScope(state_mapping=mapping) as scope:
        before = {id(v): scope.get_current_value(v) for v, _ in mapping}
        outputs = layer(inputs, **kwargs)
        after = {id(v): scope.get_current_value(v) for v, _ in mapping}
    for v, _ in mapping:
        if id(v) not in replace and after[id(v)] is not before[id(v)]:
            v.assign(after[id(v)])
    return outputs


def clone_layers(model, clone_function, call_function=None):
    """`keras.models.clone_model` of a copy of `model` with `clone_function`, compiled
    as `model` was (without optimizer state), keeping a preset model's provenance
    (Keras's clone keeps the class but not the record)."""
    from keras_bigmodel.models import PresetModel
    from keras_bigmodel.saving import copy_model

    copy, compile_config = copy_model(model)
    kwargs = {"call_function": call_function} if call_function is not None else {}
    clone = keras.models.clone_model(copy, clone_function=clone_function, **kwargs)
    if isinstance(model, PresetModel) and model.preset is not None:
        clone = PresetModel(clone.input, clone.output, preset=model.preset, name=model.name)
    if compile_config:
        clone.compile(**keras.saving.deserialize_keras_object(compile_config))
    return clone
