"""The base of every layer here that is built from Keras sublayers.

`CompositeLayer` owns what such layers would otherwise each repeat:

- **dtype policies.** `dtype` may be a plain policy (`"mixed_float16"`) or a
  `keras.dtype_policies.DTypePolicyMap`. Each sublayer is created in `build()`,
  inside this layer's name scope, and receives a *plain* policy resolved from the
  map, looked up first by its name relative to this layer (`"W"`, the form this
  package writes) and then by its `Layer.path` (`"att/W"`, the form Keras documents
  and `Model.quantize` or keras-hub's tests build). A Dense holding a raw map cannot
  be saved again in Keras 3.15, so sublayers never see one.
- **int8.** `Model.quantize("int8")` quantizes leaf layers only; `get_config()`
  records the policies of quantized sublayers in a map under `"dtype"`, keyed
  relative to this layer, so the file reloads wherever the layer is nested.
- **Dense options.** `kernel_initializer`, `bias_initializer`, their regularizers
  and constraints are validated once, serialized by `get_config()`, and every Dense
  made by `self.dense(...)` gets its own clone of each initializer (a shared
  instance with a fixed seed would give equal kernels to equal-shaped sublayers).
"""

from __future__ import annotations

import inspect
import zlib
from typing import Any

import keras

from keras_bigmodel import _compat
from keras_bigmodel import validation as v

__all__ = ["DENSE_OPTIONS", "CompositeLayer", "clone_initializer"]

DTypePolicyMap = keras.dtype_policies.DTypePolicyMap

DENSE_OPTIONS = (
    "kernel_initializer",
    "bias_initializer",
    "kernel_regularizer",
    "bias_regularizer",
    "kernel_constraint",
    "bias_constraint",
)
_DENSE_OPTION_KINDS = {
    "initializer": (v.check_initializer, keras.initializers.serialize),
    "regularizer": (v.check_regularizer, keras.regularizers.serialize),
    "constraint": (v.check_constraint, keras.constraints.serialize),
}
_DENSE_DEFAULTS = {"kernel_initializer": "glorot_uniform", "bias_initializer": "zeros"}


def clone_initializer(initializer, salt: str = ""):
    """A fresh copy of `initializer` for one sublayer.

    Keras initializers are stateless: one instance gives the same values for the same
    shape every time it is called. A copy made from its config draws a new seed when
    it had none; when it had an integer seed, `salt` (the sublayer's name) shifts it,
    so that sublayers of equal shape still start different and reproducibly so.
    """
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool) and salt:
        config["seed"] = (seed + zlib.crc32(salt.encode())) % (2**31 - 1)
    return initializer.__class__.from_config(config)


class CompositeLayer(keras.layers.Layer):
    """A layer made of Keras sublayers; see the module docstring.

    Subclasses call `super().__init__(**kwargs)` (which takes `dtype`, `name`,
    `trainable` and, when the class sets `takes_dense_options = True`, the six Dense
    options), create their sublayers in `build()` with `self.dense(...)` or
    `self.sublayer_dtype(name)`, and start `get_config()` from `super().get_config()`.
    A layer that does not take the Dense options refuses them, as Keras refuses any
    argument a layer does not know.
    """

    #: Whether the layer takes `kernel_initializer`, `bias_initializer`, their
    #: regularizers and constraints (through `**kwargs`) for the Dense layers it makes.
    takes_dense_options: bool = False

    def __init__(self, **kwargs):
        dtype = kwargs.pop("dtype", None)
        policy_map = None
        if isinstance(dtype, DTypePolicyMap):
            policy_map, dtype = dtype, dtype.default_policy
        self._dense_option_names = DENSE_OPTIONS if self.takes_dense_options else ()
        options = {
            name: kwargs.pop(name, _DENSE_DEFAULTS.get(name)) for name in self._dense_option_names
        }
        super().__init__(dtype=dtype, **kwargs)
        self._policy_map = policy_map
        for name in self._dense_option_names:
            check = _DENSE_OPTION_KINDS[name.rsplit("_", 1)[1]][0]
            setattr(self, name, check(name, options[name]))

    @classmethod
    def argument_names(cls) -> list[str]:
        """The layer's own constructor arguments (its class's and its bases' up to this
        one, and the Dense options when it takes them), without the base layer's
        `name`, `dtype` and `trainable`: what a preset may pass on to it."""
        names = []
        for klass in cls.__mro__:
            if klass is CompositeLayer or not issubclass(klass, CompositeLayer):
                break
            for param in inspect.signature(klass.__init__).parameters.values():
                if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                    if param.name != "self" and param.name not in names:
                        names.append(param.name)
        return names + [name for name in DENSE_OPTIONS if cls.takes_dense_options]

    # ---------------------------------------------------------------- policies
    def sublayer_dtype(self, name: str):
        """The policy for the sublayer called `name`: plain for a leaf; for a nested
        composite, a map holding only the entries below it."""
        own = self.dtype_policy
        if self._policy_map is None:
            return own
        prefix = name + "/"
        full = f"{self.path}/{name}" if self.path else None
        nested = {k[len(prefix) :]: p for k, p in self._policy_map.items() if k.startswith(prefix)}
        if full:
            nested.update({k: p for k, p in self._policy_map.items() if k.startswith(full + "/")})
        if nested:
            return DTypePolicyMap(default_policy=own, policy_map=nested)
        if name in self._policy_map:
            return self._policy_map[name]
        if full:
            return self._policy_map[full]  # an exact or regex match, else the default
        return own

    def dense(
        self, units: int, name: str, activation=None, use_bias: bool | None = None, **overrides
    ) -> keras.layers.Dense:
        """A Dense sublayer with this layer's options, cloned initializers and policy."""
        options = {k: getattr(self, k) for k in self._dense_option_names}
        for key in ("kernel_initializer", "bias_initializer"):
            if key in options:
                options[key] = clone_initializer(options[key], salt=name)
        options.update(overrides)
        if use_bias is None:
            use_bias = getattr(self, "use_bias", True)
        return keras.layers.Dense(
            units,
            activation=activation,
            use_bias=use_bias,
            name=name,
            dtype=self.sublayer_dtype(name),
            **options,
        )

    def dropout_layer(self, rate: float, name: str, seed: int | None = None):
        return keras.layers.Dropout(rate, seed=seed, name=name, dtype=self.dtype_policy)

    def dense_option_objects(self) -> dict:
        """The Dense options as objects, to hand to a nested composite layer."""
        return {name: getattr(self, name) for name in self._dense_option_names}

    # ------------------------------------------------------------------ config
    def dense_options_config(self) -> dict:
        return {
            name: _DENSE_OPTION_KINDS[name.rsplit("_", 1)[1]][1](getattr(self, name))
            for name in self._dense_option_names
        }

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(self.dense_options_config())
        policies = self._quantized_sublayer_policies()
        if policies:
            config["dtype"] = DTypePolicyMap(default_policy=self.dtype_policy, policy_map=policies)
        return config

    def _quantized_sublayer_policies(self) -> dict:
        """Policies of quantized leaf sublayers, keyed by path relative to this layer."""
        if not self.built or not self.path:
            return {}
        prefix = self.path + "/"
        policies = {}
        for sub in _compat.all_layers(self, include_self=False):
            if sub.quantization_mode is None or not sub.path or not sub.path.startswith(prefix):
                continue
            if _compat.direct_sublayers(sub):
                continue  # only leaves carry a quantized policy of their own
            policies[sub.path[len(prefix) :]] = sub.dtype_policy
        return policies
