"""Ensembling: several trained models fused into one model (the documents' model fusion)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_bigmodel.layers import Fusion, FusionConcat
from keras_bigmodel.models import PresetModel, provenance
from keras_bigmodel.saving import copy_model
from keras_bigmodel.validation import check_model

__all__ = ["ENSEMBLE_MODES", "ensemble"]

ENSEMBLE_MODES = ("average", "weighted", "concat")


def _signature(tensors):
    return [(tuple(t.shape[1:]), str(t.dtype)) for t in keras.tree.flatten(tensors)]


def ensemble(
    models: Sequence[keras.Model],
    mode: str = "average",
    weights: Sequence[float] | None = None,
    trainable_weights: bool = False,
    name: str = "ensemble",
) -> keras.Model:
    """Fuses several models with the same inputs into one functional model.

    Args:
        models: At least two built models taking the same inputs (shapes and
            dtypes) and, for "average"/"weighted", giving outputs of the same
            shapes; dict outputs (e.g. multitask) are fused key by key.
        mode: `"average"` (the mean of the members' predictions), `"weighted"`
            (a weighted mean) or `"concat"` (the members' outputs side by side,
            e.g. as features for a meta-model).
        weights: For `"weighted"`, one positive weight per model (normalised to
            sum to 1); equal weights if `None`.
        trainable_weights: For `"weighted"`, let training adjust the weights.
        name: The ensemble model's name.

    Returns:
        An uncompiled functional `keras.Model` (a `PresetModel` whose record names
        the fusion mode and each member's own preset record) whose prediction is
        the fused prediction; it saves and reloads like any model (the members are
        nested inside it; members with clashing names are copied under new names).

    Example:

    ```python
    import keras_bigmodel as kbm, zoo
    members = [zoo.build("cnn", name=f"cnn_{i}") for i in range(3)]
    # ... train each member ...
    combined = kbm.ensemble(members, mode="average")
    probabilities = combined.predict(images)
    ```
    """
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)) or len(models) < 2:
        raise ValueError(
            f"`models` must be a list of at least two keras.Model. Received: models={models!r}"
        )
    for i, model in enumerate(models):
        check_model(model, f"models[{i}]")
    if mode not in ENSEMBLE_MODES:
        raise ValueError(f"`mode` must be one of {list(ENSEMBLE_MODES)}. Received: mode={mode!r}")
    if weights is not None and mode != "weighted":
        raise ValueError(
            "`weights` only applies to mode='weighted'. "
            f"Received: weights={weights!r}, mode={mode!r}"
        )
    if weights is not None and (
        not isinstance(weights, (list, tuple)) or len(weights) != len(models)
    ):
        raise ValueError(
            f"`weights` must be a list of {len(models)} positive numbers, one per model. "
            f"Received: weights={weights!r}"
        )
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    first = models[0]
    for i, model in enumerate(models[1:], start=1):
        if _signature(model.inputs) != _signature(first.inputs):
            raise ValueError(
                f"All models must take the same inputs: models[0] takes "
                f"{_signature(first.inputs)}, models[{i}] takes {_signature(model.inputs)}"
            )
        same_structure = isinstance(model.output, dict) == isinstance(first.output, dict) and (
            not isinstance(first.output, dict) or sorted(model.output) == sorted(first.output)
        )
        if not same_structure or len(keras.tree.flatten(model.output)) != len(
            keras.tree.flatten(first.output)
        ):
            raise ValueError(f"models[{i}] has outputs structured differently from models[0]")
        if mode != "concat" and _signature(model.output) != _signature(first.output):
            raise ValueError(
                f"mode={mode!r} needs outputs of the same shapes: models[0] gives "
                f"{_signature(first.output)}, models[{i}] gives {_signature(model.output)}; "
                f"use mode='concat' to put different outputs side by side"
            )

    members, seen = [], set()
    for i, model in enumerate(models):
        if model.name in seen or model.name == name:
            model, _ = copy_model(model, name=f"{model.name}_{i}")
        seen.add(model.name)
        members.append(model)

    inputs = keras.tree.map_structure(
        lambda t: keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t.name), first.input
    )
    outputs = [member(inputs) for member in members]

    def fuse(key):
        branches = [out[key] if key is not None else out for out in outputs]
        suffix = "" if key is None else f"_{key}"
        if mode == "concat":
            return FusionConcat(name=f"{name}_concat{suffix}")(branches)
        if mode == "average":
            return Fusion("mean", name=f"{name}_average{suffix}")(branches)
        return Fusion(
            "weighted",
            branch_weights=weights,
            trainable=trainable_weights,
            name=f"{name}_weighted{suffix}",
        )(branches)

    if isinstance(outputs[0], dict):
        fused = {key: fuse(key) for key in outputs[0]}
    else:
        fused = fuse(None)
    # The ensemble's own record: how it fuses, and what each member's file says it is.
    record = {
        "name": "ensemble",
        "config": {"mode": mode, "weights": weights, "trainable_weights": trainable_weights},
        "members": [provenance(member) for member in members],
    }
    return PresetModel(inputs, fused, name=name, preset=record)
