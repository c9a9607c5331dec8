"""What a serialized object names, resolved exactly as Keras's deserializer resolves it,
without importing anything, and whether that is allowed.

This mirrors `_retrieve_class_or_fn` in `keras/src/saving/serialization_lib.py`
(Keras 3.15): a class entry is looked up by its `registered_name` among registered and
custom objects, then as the public Keras symbol `module.class_name`, then by importing
`module` when its top-level package is `keras`, `keras_hub`, `keras_cv` or
`keras_nlp`; a function entry (`class_name: "function"`) is looked up by its `config`
(the function's name), never by its `registered_name`. Where Keras would import, this
module only looks in `sys.modules`: a module that is not imported yet is refused, since
importing it would run whatever file of that name is first on `sys.path`.

Then the policy: the object must be a Keras modelling class (layer, model, loss,
metric, optimizer, initializer, regularizer, constraint, schedule, dtype policy,
quantizer) that neither runs foreign code (`Lambda`, `TFSMLayer`, wrappers of torch,
JAX or Flax modules) nor is a function outside Keras's activations, losses, metrics
and ops; and an entry's names must agree with what it resolves to.
"""

from __future__ import annotations

import dataclasses
import sys
import types
from collections.abc import Mapping
from typing import Any

import keras

from keras_bigmodel import _compat

__all__ = ["DENIED_CLASSES", "Refusal", "Resolution", "judge", "resolve"]

# Top-level packages whose modules Keras's deserializer imports by name.
IMPORTING_PACKAGES = frozenset({"keras", "keras_hub", "keras_cv", "keras_nlp"})
# Classes that run foreign code or read foreign files when they are rebuilt.
DENIED_CLASSES = ("Lambda", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer")
# Public Keras modules whose functions an entry may name (activations, losses, ...).
_FUNCTION_MODULES = ("keras.activations", "keras.losses", "keras.metrics", "keras.ops")
# Functions of those modules that are not computations.
_NOT_COMPUTATIONS = frozenset({"get", "serialize", "deserialize"})


class Refusal(Exception):
    """Why an entry is refused (the caller adds where the entry is)."""


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What an entry resolves to.

    Attributes:
        obj: The class or function Keras would use.
        via: `"registered"` (registered with Keras), `"custom"` (passed as
            custom_objects or in a custom-object scope), `"keras"` (a public Keras
            symbol, or a Keras module already imported).
        name: A readable qualified name.
    """

    obj: Any
    via: str
    name: str


def _allowed_bases() -> tuple[type, ...]:
    bases = [
        _compat.KerasSaveable,
        keras.initializers.Initializer,
        keras.regularizers.Regularizer,
        keras.constraints.Constraint,
        keras.dtype_policies.DTypePolicy,
        keras.optimizers.schedules.LearningRateSchedule,
    ]
    quantizers = getattr(keras, "quantizers", None)
    for name in ("QuantizationConfig", "Quantizer"):
        if quantizers is not None and hasattr(quantizers, name):
            bases.append(getattr(quantizers, name))
    return tuple(bases)


def _denied() -> tuple[type, ...]:
    return tuple(
        c for c in (getattr(keras.layers, n, None) for n in DENIED_CLASSES) if isinstance(c, type)
    )


def _registered(name: Any, custom_objects: Mapping[str, Any]) -> tuple[Any, str]:
    """Keras's `get_registered_object`: the custom-object scope, then the global
    registry, then the caller's custom_objects."""
    if not isinstance(name, str):
        return None, ""
    scope = _compat.custom_object_scope_dict()
    if name in scope:
        return scope[name], "custom"
    registry = keras.saving.get_custom_objects()
    if name in registry:
        return registry[name], "registered"
    if name in custom_objects:
        return custom_objects[name], "custom"
    return None, ""


def _top(module: Any) -> str:
    return module.split(".", 1)[0] if isinstance(module, str) else ""


def resolve(node: Mapping[str, Any], custom_objects: Mapping[str, Any]) -> Resolution:
    """Resolves a class or function entry (a dict with `class_name`) as Keras would.

    Raises:
        Refusal: Keras would import a module that is not imported, or could not resolve
            the entry at all, or its names are malformed.
    """
    class_name = node.get("class_name")
    module = node.get("module")
    registered_name = node.get("registered_name", class_name)
    if not isinstance(class_name, str) or not (module is None or isinstance(module, str)):
        raise Refusal("has a malformed class_name or module (Keras expects strings)")
    if not (registered_name is None or isinstance(registered_name, str)):
        raise Refusal(f"has a malformed registered_name {registered_name!r}")
    is_function = class_name == "function"
    if is_function:
        name = node.get("config")
        if not isinstance(name, str):
            raise Refusal("is a function entry whose config is not the function's name")
        key = name  # Keras looks functions up by name, not by registered_name
    else:
        name = class_name
        key = registered_name
    obj, via = _registered(key, custom_objects)
    if obj is not None:
        return Resolution(obj, via, key)

    if module:
        if module == "keras" or module.startswith("keras."):
            api_name = f"{module}.{name}"
            if api_name in _compat.NON_MODELING_APIS:
                raise Refusal(f"names {api_name}, which is not a modelling API")
            obj = _compat.exported_symbol(api_name)
            if obj is not None:
                _same_builtin_name(node, name, api_name)
                return Resolution(obj, "keras", api_name)
        if is_function and module == "builtins":
            for mod in _compat.BUILTIN_FUNCTION_MODULES:  # Keras's own order
                obj = _compat.exported_symbol(f"keras.{mod}.{name}")
                if obj is not None:
                    _same_builtin_name(node, name, f"keras.{mod}.{name}")
                    return Resolution(obj, "keras", f"keras.{mod}.{name}")
            if ">" not in name:  # Keras <= 3.6 saved custom functions by bare name
                merged = {
                    **custom_objects,
                    **_compat.custom_object_scope_dict(),
                    **keras.saving.get_custom_objects(),
                }
                for custom_name, custom_obj in merged.items():
                    if isinstance(custom_name, str) and custom_name.endswith(f">{name}"):
                        return Resolution(custom_obj, "registered", custom_name)
        if _top(module) in IMPORTING_PACKAGES:
            loaded = sys.modules.get(module)
            if loaded is None:
                raise Refusal(
                    f"names {module}.{name}; Keras would import the module {module!r}, "
                    f"which is not imported, so a file of that name on sys.path (the "
                    f"working directory, for instance) would run"
                )
            obj = getattr(loaded, "__dict__", {}).get(name)
            if isinstance(obj, type) and issubclass(obj, _compat.KerasSaveable):
                return Resolution(obj, "keras", f"{module}.{name}")
            raise Refusal(f"names {module}.{name}, which is not a Keras serializable class")
    if is_function and module == "builtins":
        raise Refusal(
            f"names the function {name!r}, which is not a Keras activation, loss or metric "
            f"nor a function registered with Keras or passed as custom_objects"
        )
    what = "function" if is_function else "class"
    raise Refusal(
        f"names the {what} {module + '.' if module else ''}{name} "
        f"(registered_name={node.get('registered_name')!r}), which is neither part of Keras "
        f"nor registered with Keras or passed as custom_objects; Keras cannot resolve it "
        f"without importing module {module!r}"
    )


def _same_builtin_name(node, name, api_name):
    explicit = node.get("registered_name")
    if explicit and explicit not in (name, node.get("class_name")):
        raise Refusal(
            f"says registered_name={explicit!r} but resolves to the Keras built-in "
            f"{api_name}; the names disagree"
        )


def judge(node: Mapping[str, Any], found: Resolution) -> None:
    """Refuses an entry whose resolution is outside the allow-list or whose names
    disagree with what it resolved to.

    Raises:
        Refusal: With the reason.
    """
    obj, via = found.obj, found.via
    if node.get("class_name") == "function":
        _judge_function(node, found)
        return
    if via == "registered":
        _names_agree(node, obj, found.name)
    if isinstance(obj, types.FunctionType):
        if via == "keras":
            raise Refusal(f"is a class entry that names the function {found.name}")
        return  # a registered function used where Keras accepts one
    if not isinstance(obj, type):
        raise Refusal(f"resolves to {type(obj).__name__} object {found.name}, not a class")
    if not issubclass(obj, _allowed_bases()):
        raise Refusal(
            f"names {found.name}, which is not a Keras modelling class (layer, model, loss, "
            f"metric, optimizer, initializer, ...); refused"
        )
    denied = [d for d in _denied() if issubclass(obj, d)]
    if denied:
        what = denied[0].__name__
        if obj is denied[0]:
            raise Refusal(
                f"is a {what} layer ({found.name}); refused, it would run foreign code or "
                f"read foreign files"
            )
        raise Refusal(
            f"is a {obj.__name__} ({found.name}), a subclass of {what}, which runs foreign "
            f"code; refused"
        )


def _names_agree(node, obj, registered_name):
    """A registered object must be what the entry says it is: its class name, and a
    module in the same top-level package (modules may move within a package)."""
    class_name = node.get("class_name")
    module = node.get("module")
    actual = getattr(obj, "__name__", None)
    if class_name != "function" and actual is not None and class_name != actual:
        raise Refusal(
            f"says class_name={class_name!r} but its registered_name {registered_name!r} "
            f"resolves to {actual!r}; the names disagree"
        )
    owner = getattr(obj, "__module__", None)
    if class_name == "function" and module == "builtins":
        # What Keras itself writes for a registered function (its serializer gives every
        # function object the module of its type); Keras finds it by its registered
        # name, as this check did, and never reads the module.
        return
    if module is not None and isinstance(owner, str) and _top(module) != _top(owner):
        raise Refusal(
            f"says module={module!r} but {registered_name!r} is registered from "
            f"{owner!r}; the names disagree"
        )


def _judge_function(node, found: Resolution) -> None:
    registered_name = node.get("registered_name")
    name = node.get("config")
    module = node.get("module")
    if registered_name not in (None, name, "function"):
        # Keras ignores it, but a check that trusted it would have been walked past.
        raise Refusal(
            f"is a function entry named {name!r} with registered_name={registered_name!r}; "
            f"the names disagree"
        )
    if found.via == "registered":
        _names_agree(node, found.obj, found.name)
        return
    if found.via == "custom":
        return
    obj = found.obj
    home = found.name.rsplit(".", 1)[0]
    allowed = (
        callable(obj)
        and not isinstance(obj, type)
        and found.name.rsplit(".", 1)[-1] not in _NOT_COMPUTATIONS
        and any(home == m or home.startswith(m + ".") for m in _FUNCTION_MODULES)
    )
    if not allowed:
        raise Refusal(
            f"names the function {found.name} (module {module!r}); only Keras's activations, "
            f"losses, metrics and ops and functions registered with Keras are allowed "
            f"(this refuses calls such as keras.config.enable_unsafe_deserialization)"
        )
