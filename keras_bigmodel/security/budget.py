"""Counting the variables a config declares, exactly, without allocating them.

Keras builds every layer and initialises every variable from the config before it
opens the weights file, so a 4 KB config declaring `Dense(10**9)` would make it
allocate gigabytes. Sizes spread over many fields (`units`, `filters`, `kernel_size`,
`input_dim`, a shape inferred through the functional graph, a custom layer's own
arguments) cannot be bounded by reading fields. So the model is built once, by Keras's
own loader code, inside a `keras.StatelessScope`: there, a variable created with an
initializer records its shape and dtype and gets no value (nothing is allocated or
initialised), and the scope is left without giving them values
(`_compat.deferred_variables_scope`). Summing the variables of that model gives what
the real load would allocate, for every layer Keras, this package or a user defines.

This runs Keras code on the config, so it runs only after `config_check` accepted every
object in it (and bounded what deserialization itself allocates: `__numpy__` arrays,
shapes), under `guard.loading_guard`. Two cases need care: a stateful recurrent layer
creates its state variables from concrete zeros (disallowed in the scope), so it is
built stateless and its states (batch x state size) are added; a layer that creates a
variable from a concrete value cannot be measured this way, and the file is refused with
the way out (`max_params=None`) rather than loaded unmeasured.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from typing import Any

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel.security.config_check import ConfigFindings
from keras_bigmodel.security.errors import ModelFileError, UnsafeModelError
from keras_bigmodel.security.guard import ImportBlocker

__all__ = ["DeclaredSize", "measure_declared_size"]


@dataclasses.dataclass(frozen=True)
class DeclaredSize:
    """What building the model would allocate for its variables.

    Attributes:
        params: Elements of all variables (recurrent states included).
        bytes: Their bytes, at each variable's dtype.
        variables: How many variables.
        layers: How many layers the built model holds, nested ones included.
    """

    params: int
    bytes: int
    variables: int
    layers: int


def _itemsize(dtype: Any) -> int:
    try:
        return np.dtype(str(dtype)).itemsize
    except TypeError:
        return 1 if "int4" in str(dtype) or "float8" in str(dtype) else 4


def _without_compile_configs(node):
    """A copy of a serialized config with every `compile_config` set to None."""
    if isinstance(node, dict):
        return {
            k: None if k == "compile_config" else _without_compile_configs(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_without_compile_configs(v) for v in node]
    return node


def _state_elements(layer, batch) -> int:
    sizes = getattr(getattr(layer, "cell", None), "state_size", None)
    flat = [s for s in keras.tree.flatten(sizes) if isinstance(s, int)] if sizes is not None else []
    return int(batch) * sum(flat)


def measure_declared_size(
    config: dict,
    findings: ConfigFindings,
    custom_objects: Mapping[str, Any] | None,
    where: str,
    blocker: ImportBlocker | None = None,
) -> DeclaredSize:
    """Builds the model from `config` in a `keras.StatelessScope` and counts its variables.

    Must run inside `guard.loading_guard` (pass its blocker), after `check_config`.

    Args:
        config: The checked `config.json`, parsed (it is not modified).
        findings: What `check_config` found in it.
        custom_objects: As for `keras.saving.load_model`.
        where: How to name the file in errors.
        blocker: The guard's import blocker, to report an import attempt as such.

    Returns:
        The `DeclaredSize`.

    Raises:
        UnsafeModelError: The build tried to import a module, exhausted memory or
            recursion, or cannot be done without allocating variables.
        ModelFileError: Keras cannot build the model from this config.
    """
    stateful = findings.stateful_rnns
    names = {c.get("name") for c in stateful}
    try:
        for inner in stateful:
            inner["stateful"] = False
        # Optimizers create concrete variables: no compile configs, nested models' included
        # (an ensemble nests compiled members).
        text = json.dumps(_without_compile_configs(config))
    finally:
        for inner in stateful:
            inner["stateful"] = True
    try:
        with _compat.deferred_variables_scope(), keras.StatelessScope(initialize_variables=False):
            model = _compat.model_from_config_json(
                text, custom_objects, compile=False, safe_mode=True
            )
        params = size = states = 0
        for v in model.weights:
            n = math.prod(v.shape)
            params += n
            size += n * _itemsize(v.dtype)
        layers = list(_compat.all_layers(model)) if isinstance(model, keras.layers.Layer) else []
        for layer in layers:
            if names and layer.name in names and isinstance(layer, keras.layers.RNN):
                shape = (layer.get_build_config() or {}).get("input_shape") or [None]
                batch = shape[0] if isinstance(shape, (list, tuple)) and shape else None
                if isinstance(batch, int):
                    n = _state_elements(layer, batch)
                    states += n
                    size += n * _itemsize(layer.variable_dtype)
        return DeclaredSize(params + states, size, len(model.weights), len(layers))
    except (UnsafeModelError, ModelFileError):
        raise
    except (MemoryError, RecursionError) as e:
        raise UnsafeModelError(
            f"{where}: measuring the model's variables exhausted {type(e).__name__}; refused"
        ) from None
    except Exception as e:
        if blocker is not None and blocker.refused:
            raise UnsafeModelError(
                f"{where}: building the model tried to import {blocker.refused[0]!r}; refused"
            ) from None
        if "stateless scope" in str(e):
            raise UnsafeModelError(
                f"{where}: the model's size cannot be measured without allocating its "
                f"variables (a layer creates a variable from a concrete value, which Keras "
                f"refuses in a StatelessScope). If you trust this file's sizes, load it "
                f"with max_params=None"
            ) from None
        raise ModelFileError(f"{where}: Keras could not rebuild the model: {e}") from None
