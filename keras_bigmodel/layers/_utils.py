"""Argument checks and dtype-policy plumbing shared by the layers.

Only `keras` is imported here, so the layers stay backend-agnostic and nothing in
`keras_bigmodel.layers` depends on the rest of the package.
"""

from __future__ import annotations

import numbers
from typing import Any, Iterable

import keras

DTypePolicyMap = keras.dtype_policies.DTypePolicyMap


# --------------------------------------------------------------------------- checks
def check_positive_int(name: str, value: Any, allow_none: bool = False) -> int | None:
    """Returns `value` as an `int` if it is a positive integer, else raises."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        allowed = "a positive integer or None" if allow_none else "a positive integer"
        raise ValueError(f"`{name}` must be {allowed}. Received: {name}={value!r}")
    return int(value)


def check_rate(name: str, value: Any) -> float:
    """Returns `value` as a `float` if it lies in [0, 1), else raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        raise ValueError(
            f"`{name}` must be a float in the range [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Returns `value` if it is one of `allowed`, else raises."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"`{name}` must be one of {list(allowed)}. Received: {name}={value!r}"
        )
    return value


def check_int_tuple(name: str, value: Any) -> tuple[int, ...]:
    """Returns `value` as a tuple of positive ints (an int is a 1-tuple)."""
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


def check_axis(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"`{name}` must be an integer axis. Received: {name}={value!r}")
    return int(value)


def check_activation(name: str, value: Any):
    """Resolves an activation name or callable, with a clear error if unknown."""
    try:
        return keras.activations.get(value)
    except Exception:  # Keras raises ValueError or TypeError depending on the input
        raise ValueError(
            f"`{name}` must be the name of a Keras activation (e.g. 'relu', "
            f"'softmax') or a callable. Received: {name}={value!r}"
        ) from None


def check_initializer(name: str, value: Any):
    try:
        return keras.initializers.get(value)
    except Exception:
        raise ValueError(
            f"`{name}` must be a Keras initializer name, config or instance. "
            f"Received: {name}={value!r}"
        ) from None


def check_regularizer(name: str, value: Any):
    try:
        return keras.regularizers.get(value)
    except Exception:
        raise ValueError(
            f"`{name}` must be a Keras regularizer name, config, instance or None. "
            f"Received: {name}={value!r}"
        ) from None


def check_constraint(name: str, value: Any):
    try:
        return keras.constraints.get(value)
    except Exception:
        raise ValueError(
            f"`{name}` must be a Keras constraint name, config, instance or None. "
            f"Received: {name}={value!r}"
        ) from None


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"`{name}` must be a bool. Received: {name}={value!r}")
    return value


def check_seed(name: str, value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral)):
        raise ValueError(f"`{name}` must be an integer or None. Received: {name}={value!r}")
    return None if value is None else int(value)


# The options a layer forwards to its Dense sublayers, with their checks and serializers.
_DENSE_OPTION_KINDS = {
    "initializer": (check_initializer, keras.initializers.serialize),
    "regularizer": (check_regularizer, keras.regularizers.serialize),
    "constraint": (check_constraint, keras.constraints.serialize),
}


def set_dense_options(layer: keras.layers.Layer, **options) -> dict:
    """Validates options such as `kernel_initializer` or `bias_regularizer`, stores
    each resolved object on `layer` under its name, and returns them for `Dense(...)`."""
    resolved = {}
    for name, value in options.items():
        check, _ = _DENSE_OPTION_KINDS[name.rsplit("_", 1)[1]]
        resolved[name] = check(name, value)
        setattr(layer, name, resolved[name])
    return resolved


def dense_options_config(layer: keras.layers.Layer, names) -> dict:
    """The serialized form of options stored by `set_dense_options`."""
    return {
        name: _DENSE_OPTION_KINDS[name.rsplit("_", 1)[1]][1](getattr(layer, name))
        for name in names
    }


DENSE_OPTIONS = (
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "bias_constraint",
)


def check_rank(layer: keras.layers.Layer, shape, min_rank: int, max_rank: int | None = None,
               arg: str = "inputs") -> None:
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
    """Returns a dimension that must be known when the layer builds its weights."""
    dim = shape[axis]
    if dim is None:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' needs the last dimension of `{arg}` "
            f"to be known to create its weights. Received: {arg}.shape={tuple(shape)}"
        )
    return int(dim)


# ----------------------------------------------------------------- dtype policies
#
# `Model.quantize("int8")` only quantizes leaf layers, so the Dense sublayers of a
# composite layer end up int8 while the composite stays float32. Their policies must
# travel in the composite's config or the file will not reload. Keras's carrier for
# that is a `DTypePolicyMap`; we key it by each sublayer's path *relative to the
# composite* (e.g. "W", "attention/V"), so the file reloads whatever the enclosing
# model is named or nested in, and each sublayer receives a plain policy (a Dense
# holding a raw map cannot be saved again in Keras 3.15).


def split_dtype(dtype):
    """Splits a constructor's `dtype` into (own policy, policy map or None)."""
    if isinstance(dtype, DTypePolicyMap):
        return dtype.default_policy, dtype
    return dtype, None


def sublayer_dtype(layer: keras.layers.Layer, policy_map: DTypePolicyMap | None, name: str):
    """The dtype to hand to the sublayer called `name`."""
    if policy_map is None:
        return layer.dtype_policy
    prefix = name + "/"
    nested = {k[len(prefix):]: v for k, v in policy_map.items() if k.startswith(prefix)}
    if nested:
        return DTypePolicyMap(default_policy=layer.dtype_policy, policy_map=nested)
    if name in policy_map:
        return policy_map[name]
    return layer.dtype_policy


def dtype_config(layer: keras.layers.Layer, config: dict) -> dict:
    """Puts the policies of quantized sublayers into `config["dtype"]` if there are any."""
    if not layer.built or not layer.path:
        return config
    prefix = layer.path + "/"
    policies = {}
    for sub in layer._flatten_layers(include_self=False, recursive=True):
        if sub.quantization_mode is None or not sub.path or not sub.path.startswith(prefix):
            continue
        if list(sub._flatten_layers(include_self=False)):
            continue  # only leaves carry a quantized policy of their own
        policies[sub.path[len(prefix):]] = sub.dtype_policy
    if policies:
        config["dtype"] = DTypePolicyMap(default_policy=layer.dtype_policy, policy_map=policies)
    return config


def check_shape(name: str, value: Any, min_rank: int = 1, max_rank: int | None = None,
                allow_none: bool = False) -> tuple:
    """Returns `value` as a shape tuple (no batch axis) of positive ints (or None)."""
    ok = isinstance(value, (list, tuple)) and min_rank <= len(value) <= (max_rank or len(value))
    if ok:
        for d in value:
            if d is None and allow_none:
                continue
            if isinstance(d, bool) or not isinstance(d, numbers.Integral) or d < 1:
                ok = False
    if not ok:
        rank = f"{min_rank}" if max_rank == min_rank else (
            f"{min_rank} to {max_rank}" if max_rank else f"{min_rank} or more")
        dims = "positive integers or None" if allow_none else "positive integers"
        raise ValueError(
            f"`{name}` must be a shape (without the batch axis) of rank {rank}, made of "
            f"{dims}. Received: {name}={value!r}"
        )
    return tuple(None if d is None else int(d) for d in value)
