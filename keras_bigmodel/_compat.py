"""Every private Keras API this package uses, in one place.

Keras 3 keeps some machinery the package needs outside its public namespace: the
saving library that loads from an open file, the safe-mode scope, the registry of
exported symbols, the base class of every serializable object and the recursive
walk over a layer's sublayers. Each is imported here and nowhere else, so that a
Keras release that moves one fails at import time with the Keras version and the
missing name, instead of somewhere deep in a load or a quantization, and so that
no code path silently falls back to something weaker.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

import keras

__all__ = [
    "KerasSaveable",
    "all_layers",
    "exported_symbol",
    "get_keras_mask",
    "in_safe_mode",
    "is_functional",
    "load_model_from_file",
    "operation_inputs",
    "producer",
    "resolve_policy_maps",
    "run_graph",
    "safe_mode_scope",
    "set_keras_mask",
    "update_loss_metric",
]

SUPPORTED_KERAS = "3.13.1 to 3.15.x"


class KerasCompatibilityError(ImportError):
    """This Keras release does not have a private API keras-bigmodel relies on."""


def _private(module: str, name: str) -> Any:
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise KerasCompatibilityError(
            f"keras-bigmodel needs {module}.{name}, which Keras {keras.__version__} does "
            f"not provide (tested with Keras {SUPPORTED_KERAS}): {e}"
        ) from None


KerasSaveable = _private("keras.src.saving.keras_saveable", "KerasSaveable")
_saving_lib_load = _private("keras.src.saving.saving_lib", "load_model")
_SafeModeScope = _private("keras.src.saving.serialization_lib", "SafeModeScope")
_in_safe_mode = _private("keras.src.saving.serialization_lib", "in_safe_mode")
_get_symbol_from_name = _private("keras.src.api_export", "get_symbol_from_name")
_Functional = _private("keras.src.models.functional", "Functional")
_get_keras_mask = _private("keras.src.backend.common.masking", "get_keras_mask")
_set_keras_mask = _private("keras.src.backend.common.masking", "set_keras_mask")


def load_model_from_file(fileobj, custom_objects=None, compile=True, safe_mode=True):
    """Keras's own `.keras` loader, reading from an already open file object, so that
    the bytes that were inspected are the bytes that are loaded."""
    return _saving_lib_load(
        fileobj, custom_objects=custom_objects, compile=compile, safe_mode=safe_mode
    )


def safe_mode_scope(enabled: bool = True):
    """A context in which Keras's deserializer runs in safe mode (or not), whatever the
    process-wide `keras.config.enable_unsafe_deserialization()` said."""
    return _SafeModeScope(enabled)


def in_safe_mode():
    """Keras's current safe-mode flag (`None` outside any scope)."""
    return _in_safe_mode()


def exported_symbol(name: str):
    """The object Keras exports under a public dotted name, or None; imports nothing."""
    return _get_symbol_from_name(name)


def all_layers(layer: keras.layers.Layer, include_self: bool = True) -> Iterator:
    """Every layer nested in `layer` (recursively), as Keras tracks them."""
    return layer._flatten_layers(include_self=include_self, recursive=True)


def update_loss_metric(model: keras.Model, loss, sample_weight) -> None:
    """Updates the `loss` value that `fit` reports (Keras's private `_loss_tracker`
    mean), for a model whose own `train_step` computes the loss itself."""
    model._loss_tracker.update_state(loss, sample_weight=sample_weight)


def direct_sublayers(layer: keras.layers.Layer) -> list:
    """The layers tracked directly by `layer` (one level down)."""
    return list(layer._flatten_layers(include_self=False, recursive=False))


# ------------------------------------------------- functional graphs (kbm.explain)
def resolve_policy_maps(model: keras.Model) -> None:
    """Gives every leaf layer that holds a raw `DTypePolicyMap` the plain policy the map
    resolves to for its `Layer.path`. Keras 3.15 resolves a map by path while building
    (so an `int8_from_float32` entry quantizes the layer), but a quantized `Dense` that
    still holds the map cannot be saved ("Invalid dtype: object", shown in the tests
    with a plain Keras model); the resolved plain policy saves and reloads."""
    for layer in all_layers(model, include_self=False):
        policy = layer._dtype_policy
        if isinstance(policy, keras.dtype_policies.DTypePolicyMap) and layer.path:
            layer._dtype_policy = policy[layer.path]


def is_functional(model) -> bool:
    """Whether `model` is a Keras functional model (whose graph can be run node by node)."""
    return isinstance(model, _Functional)


def run_graph(model, inputs: list, operation_fn):
    """Runs a functional model's graph eagerly on `inputs` (one tensor per entry of
    `model.inputs`, in that order), calling `operation_fn(layer)(*args, **kwargs)` at
    each node instead of `layer(*args, **kwargs)`. Creates no node and changes no layer:
    it is how `keras.models.clone_model` replays a graph, on concrete tensors."""
    if not hasattr(model, "_run_through_graph"):
        raise KerasCompatibilityError(
            f"keras-bigmodel needs Functional._run_through_graph, which Keras "
            f"{keras.__version__} does not provide (tested with Keras {SUPPORTED_KERAS})"
        )
    return model._run_through_graph(inputs, operation_fn=operation_fn)


def operation_inputs(operation) -> list:
    """The input tensors of an operation's first call in a functional graph (a
    `keras.ops` operation has no `.input` of its own)."""
    return list(operation._inbound_nodes[0].input_tensors)


def producer(tensor):
    """The layer that produced a symbolic (Keras) tensor, or None for a model input."""
    history = getattr(tensor, "_keras_history", None)
    return None if history is None else history.operation


def get_keras_mask(x):
    """The mask Keras attached to an eager tensor (or None)."""
    return _get_keras_mask(x)


def set_keras_mask(x, mask) -> None:
    """Attaches `mask` to an eager tensor, as Keras layers do for their outputs."""
    _set_keras_mask(x, mask)


# ----------------------------------------------- loading security (kbm.security)
_saving_lib_save = _private("keras.src.saving.saving_lib", "save_model")
_model_from_config = _private("keras.src.saving.saving_lib", "_model_from_config")
_global_state = _private("keras.src.backend.common", "global_state")
# What Keras's deserializer searches, in its own iteration order, for a `builtins`
# function entry, and the public APIs it refuses outright.
BUILTIN_FUNCTION_MODULES = _private("keras.src.saving.serialization_lib", "BUILTIN_MODULES")
NON_MODELING_APIS = _private("keras.src.saving.serialization_lib", "NON_MODELING_APIS")
# The base of StringLookup and IntegerLookup (which read a vocabulary file named by
# a string `vocabulary`).
IndexLookup = _private("keras.src.layers.preprocessing.index_lookup", "IndexLookup")


def save_model_to_file(model, fileobj) -> None:
    """Keras's `.keras` writer, writing to an already open (binary, seekable) file."""
    _saving_lib_save(model, fileobj)


def model_from_config_json(config_json: str, custom_objects=None, compile=True, safe_mode=True):
    """The model Keras's `.keras` loader builds from `config.json`, before it reads any
    weights (with Keras's object-sharing scope, exactly as `load_model` does)."""
    return _model_from_config(config_json, custom_objects, compile, safe_mode)


def custom_object_scope_dict() -> dict:
    """The objects of the `keras.saving.custom_object_scope` active in this thread."""
    return _global_state.get_global_attribute("custom_objects_scope_dict", {}) or {}


class deferred_variables_scope:
    """A scope whose variables created in a `keras.StatelessScope` are forgotten on exit.

    Keras keeps a global list of variables created without a value (inside a
    `StatelessScope`) and gives them their values when the outermost such scope exits.
    Inside this scope the list starts empty; on exit it is restored to what it was, so
    the variables created here never get values and are freed with their layers."""

    _KEY = "uninitialized_variables"

    def __enter__(self):
        self._before = _global_state.get_global_attribute(self._KEY)
        _global_state.set_global_attribute(self._KEY, [])
        return self

    def __exit__(self, *exc_info):
        _global_state.set_global_attribute(self._KEY, self._before)
        return False


__all__ += [
    "BUILTIN_FUNCTION_MODULES",
    "NON_MODELING_APIS",
    "IndexLookup",
    "custom_object_scope_dict",
    "deferred_variables_scope",
    "model_from_config_json",
    "save_model_to_file",
]


# ------------------------------------- shared objects while loading (kbm.multitask)
_get_shared_object = _private("keras.src.saving.serialization_lib", "get_shared_object")
_record_shared_object = _private(
    "keras.src.saving.serialization_lib", "record_object_after_deserialization"
)


def shared_object(key):
    """The object recorded under `key` during the `.keras` load in progress (Keras's
    object-sharing scope), or None outside a load or when none was recorded."""
    return _get_shared_object(key)


def record_shared_object(key, obj) -> None:
    """Records `obj` under `key` for the rest of the `.keras` load in progress, so that
    an object deserialized later in the same file (e.g. a compiled loss) can find it;
    does nothing outside a load."""
    _record_shared_object(obj, key)


__all__ += ["record_shared_object", "shared_object"]
