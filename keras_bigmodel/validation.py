"""The argument checks every public function, layer and preset uses.

Each check returns the normalized value or raises a `ValueError` (a `TypeError` for
a wrong kind of object) whose message names the argument, the value received and
what is allowed. Only `keras` and the standard library are imported here, so the
layers can use this module without depending on anything else in the package.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Iterable
from typing import Any

import keras

__all__ = [
    "UnsupportedBackendError",
    "check_activation",
    "check_axis",
    "check_bool",
    "check_choice",
    "check_constraint",
    "check_dtype_policy",
    "check_initializer",
    "check_int_tuple",
    "check_model",
    "check_name",
    "check_number",
    "check_path",
    "check_positive_int",
    "check_rank",
    "check_rate",
    "check_regularizer",
    "check_seed",
    "check_shape",
    "known_dim",
    "require_tensorflow",
]


class UnsupportedBackendError(RuntimeError):
    """A TensorFlow-only feature was called while Keras runs on another backend."""


# ------------------------------------------------------------------ plain values
def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """`value` as an `int` if it is a positive integer (or None when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return int(value)


def check_number(
    name: str,
    value: Any,
    minimum: float | None = None,
    maximum: float | None = None,
    min_inclusive: bool = True,
    max_inclusive: bool = True,
    allow_none: bool = False,
) -> float | None:
    """`value` as a finite `float` within the given bounds."""
    if value is None and allow_none:
        return None
    ok = (
        not isinstance(value, bool)
        and isinstance(value, numbers.Real)
        and math.isfinite(float(value))
    )
    if ok and minimum is not None:
        ok = value >= minimum if min_inclusive else value > minimum
    if ok and maximum is not None:
        ok = value <= maximum if max_inclusive else value < maximum
    if not ok:
        low = "" if minimum is None else ("[" if min_inclusive else "(") + f"{minimum}"
        high = "" if maximum is None else f"{maximum}" + ("]" if max_inclusive else ")")
        if minimum is not None and maximum is not None:
            allowed = f"a number in {low}, {high}"
        elif minimum is not None:
            allowed = f"a number {'>=' if min_inclusive else '>'} {minimum}"
        elif maximum is not None:
            allowed = f"a number {'<=' if max_inclusive else '<'} {maximum}"
        else:
            allowed = "a finite number"
        if allow_none:
            allowed += " or None"
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return float(value)


def check_rate(name: str, value: Any) -> float:
    """`value` as a `float` in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a float in the range [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """`value` if it is one of `allowed`."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}")
    return value


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_seed(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ValueError(f"`{name}` must be an integer or None. Received: {name}={value!r}")
    return None if value is None else int(value)


def check_axis(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer axis. Received: {name}={value!r}")
    return int(value)


def check_name(name: str, value: Any) -> str:
    """A non-empty string (a layer, model or task name)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"`{name}` must be a non-empty string. Received: {name}={value!r}")
    return value


def check_int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """`value` as a tuple of positive ints (an int is a 1-tuple, `()` is allowed)."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (list, tuple)):
        raise ValueError(
            f"`{name}` must be a positive integer or a list of positive integers. "
            f"Received: {name}={value!r}"
        )
    try:
        return tuple(check_positive_int(name, v) for v in value)
    except ValueError:
        raise ValueError(
            f"`{name}` must be a list of positive integers. Received: {name}={value!r}"
        ) from None


def check_shape(
    name: str, value: Any, min_rank: int = 1, max_rank: int | None = None, allow_none: bool = False
) -> tuple:
    """`value` as a shape tuple (no batch axis) of positive ints (or None)."""
    ok = isinstance(value, (list, tuple)) and min_rank <= len(value) <= (max_rank or len(value))
    if ok:
        for d in value:
            if d is None and allow_none:
                continue
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
                ok = False
    if not ok:
        rank = (
            f"{min_rank}"
            if max_rank == min_rank
            else (f"{min_rank} to {max_rank}" if max_rank else f"{min_rank} or more")
        )
        dims = "positive integers or None" if allow_none else "positive integers"
        raise ValueError(
            f"`{name}` must be a shape (without the batch axis) of rank {rank}, made of "
            f"{dims}. Received: {name}={value!r}"
        )
    return tuple(None if d is None else int(d) for d in value)


def check_path(name: str, value: Any) -> str:
    """A `str` or `os.PathLike`, returned as `str`."""
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a str or os.PathLike. Received: {name}={value!r} "
            f"of type {type(value).__name__}"
        )
    path = os.fspath(value)
    if not isinstance(path, str) or not path or "\x00" in path:
        raise ValueError(f"`{name}` must be a non-empty path. Received: {name}={value!r}")
    return path


# ----------------------------------------------------------------- Keras objects
def _resolve(name: str, value: Any, getter, what: str):
    try:
        return getter(value)
    except Exception:  # Keras raises ValueError or TypeError depending on the input
        raise ValueError(f"`{name}` must be {what}. Received: {name}={value!r}") from None


def check_activation(name: str, value: Any):
    """An activation name or callable, resolved by Keras."""
    return _resolve(
        name,
        value,
        keras.activations.get,
        "the name of a Keras activation (e.g. 'relu', 'softmax') or a callable",
    )


def check_initializer(name: str, value: Any):
    return _resolve(
        name, value, keras.initializers.get, "a Keras initializer name, config or instance"
    )


def check_regularizer(name: str, value: Any):
    return _resolve(
        name, value, keras.regularizers.get, "a Keras regularizer name, config, instance or None"
    )


def check_constraint(name: str, value: Any):
    return _resolve(
        name, value, keras.constraints.get, "a Keras constraint name, config, instance or None"
    )


def check_dtype_policy(name: str, value: Any):
    """`None` or anything `keras.dtype_policies.get` accepts (e.g. 'mixed_float16', a
    `DTypePolicy`, a `DTypePolicyMap`); a serialized policy (a dict) comes back as the
    policy object, anything else as given."""
    if value is None:
        return None
    policy = _resolve(
        name,
        value,
        keras.dtype_policies.get,
        "None or a dtype policy such as 'float32', 'mixed_float16' or 'mixed_bfloat16' "
        "(a name, a keras.DTypePolicy or a keras.dtype_policies.DTypePolicyMap)",
    )
    return policy if isinstance(value, dict) else value


def check_model(model: Any, name: str = "model") -> keras.Model:
    """A built `keras.Model`."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"`{name}` must be a keras.Model. Received: {name} of type {type(model).__name__}"
        )
    if not model.built:
        raise ValueError(f"`{name}` must be built (call it on data or give it an Input) first")
    return model


# ------------------------------------------------------------- shapes in layers
def check_rank(
    layer: keras.layers.Layer,
    shape,
    min_rank: int,
    max_rank: int | None = None,
    arg: str = "inputs",
) -> None:
    """Raises a ValueError naming the layer and argument if `shape` has the wrong rank."""
    rank = len(shape)
    if rank < min_rank or (max_rank is not None and rank > max_rank):
        if max_rank == min_rank:
            want = f"rank {min_rank}"
        elif max_rank is None:
            want = f"rank {min_rank} or more"
        else:
            want = f"rank {min_rank} to {max_rank}"
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' expects `{arg}` of {want}. "
            f"Received: {arg}.shape={tuple(shape)}"
        )


def known_dim(layer: keras.layers.Layer, shape, axis: int, arg: str = "inputs") -> int:
    """A dimension that must be known when the layer creates its weights."""
    dim = shape[axis]
    if dim is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' needs the last dimension of `{arg}` "
            f"to be known to create its weights. Received: {arg}.shape={tuple(shape)}"
        )
    return int(dim)


# ---------------------------------------------------------------------- backends
def require_tensorflow(feature: str, why: str) -> None:
    """Raises `UnsupportedBackendError` unless Keras runs on TensorFlow."""
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise UnsupportedBackendError(
            f"{feature} needs the TensorFlow backend ({why}); this process runs Keras on "
            f"{backend!r}. Set KERAS_BACKEND=tensorflow before importing keras, or save the "
            f"model and run this step in a TensorFlow process (.keras files load on every "
            f"backend)."
        )
