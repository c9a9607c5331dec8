"""The resource budget a model file must fit before anything in it is built.

The defaults fit a generous real model: about 75 times the largest zoo preset (`cnn`,
3.9 million parameters, a 47 MB file with its optimizer state) and a few hundred
million parameters in general. A caller who trusts a bigger file raises the limit that
was hit, by name, and the error says which one that was:

```python
kbm.load_model("big.keras", max_params=2_000_000_000)
kbm.load_model("big.keras", limits=kbm.LoadLimits(max_params=2_000_000_000, max_layers=10_000))
```
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

from keras_bigmodel.security.errors import ModelTooLargeError

__all__ = ["DEFAULT_LIMITS", "LoadLimits", "resolve_limits"]

MiB = 1024 * 1024
# Bytes of the weights file allowed per allowed parameter, when `max_weights_bytes` is
# not set: float32 weights plus two optimizer slots (Adam) need 12; float64 models or
# extra optimizer state get some room. Plus HDF5's own bookkeeping.
_WEIGHT_BYTES_PER_PARAM = 16
_WEIGHT_BYTES_OVERHEAD = 16 * MiB


@dataclasses.dataclass(frozen=True)
class LoadLimits:
    """Limits on what a `.keras` file may declare, checked before Keras builds anything.

    Args:
        max_params: Total elements of the model's variables (weights, biases, moving
            statistics, int8 scales), measured by building the model in a
            `keras.StatelessScope` where no variable gets a value. None turns the
            measurement off, and with it the check that the weights file stores at
            least the bytes its config declares.
        max_layers: Layers (and models) named in the config, nested ones included.
        max_depth: Nesting depth of `config.json` (objects and lists).
        max_tensor_elements: Elements of one tensor the config spells out or declares
            the shape of: a `__numpy__`/`__tensor__` constant, a `build_config` shape,
            an `Input`'s `batch_shape`, a symbolic tensor's shape (`None` counts as 1).
        max_config_bytes: Size of `config.json`.
        max_weights_bytes: Size of the weights file and of the tensors it declares.
            Default: 16 bytes per `max_params`, plus 16 MiB (None if `max_params` is
            None).
        max_asset_bytes: Total size of the files under `assets/`.
        max_members: Members of the archive (and arrays of an `.npz` weights file).

    Example:

    ```python
    limits = kbm.LoadLimits(max_params=1_000_000_000)
    model = kbm.load_model("big.keras", limits=limits)
    ```
    """

    max_params: int | None = 300_000_000
    max_layers: int | None = 2_000
    max_depth: int = 100
    max_tensor_elements: int | None = 2**26
    max_config_bytes: int = 8 * MiB
    max_weights_bytes: int | None = None
    max_asset_bytes: int = 256 * MiB
    max_members: int = 4096

    _OPTIONAL = ("max_params", "max_layers", "max_tensor_elements", "max_weights_bytes")

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if value is None and field.name in self._OPTIONAL:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                allowed = (
                    "a positive int or None" if field.name in self._OPTIONAL else ("a positive int")
                )
                raise ValueError(
                    f"`{field.name}` must be {allowed}. Received: {field.name}={value!r}"
                )

    @property
    def weights_bytes(self) -> int | None:
        """The effective `max_weights_bytes` (derived from `max_params` when unset)."""
        if self.max_weights_bytes is not None:
            return self.max_weights_bytes
        if self.max_params is None:
            return None
        return _WEIGHT_BYTES_PER_PARAM * self.max_params + _WEIGHT_BYTES_OVERHEAD

    @property
    def archive_bytes(self) -> int | None:
        """The largest `.keras` file these limits can accept (None: no bound)."""
        weights = self.weights_bytes
        if weights is None:
            return None
        zip_overhead = MiB + 1024 * self.max_members
        return weights + self.max_config_bytes + MiB + self.max_asset_bytes + zip_overhead

    def exceeded(self, name: str, found: int, what: str, where: str) -> ModelTooLargeError:
        """The error for `what` (found: `found`) going over the limit `name`."""
        allowed = getattr(self, name) if name != "max_weights_bytes" else self.weights_bytes
        return ModelTooLargeError(
            f"{where}: {what} ({found:,}), over the limit {name}={allowed:,}. If you trust "
            f"this file, raise the limit: kbm.load_model(path, {name}=...) or "
            f"limits=kbm.LoadLimits({name}=...)",
            limit=name,
            allowed=allowed,
            found=found,
        )


DEFAULT_LIMITS = LoadLimits()


def resolve_limits(
    limits: LoadLimits | None = None, overrides: Mapping[str, Any] | None = None
) -> LoadLimits:
    """`limits` (default `DEFAULT_LIMITS`) with `overrides` (e.g. `{"max_params": 10**9}`)
    applied.

    Raises:
        TypeError: `limits` is not a LoadLimits, or an override names no limit.
        ValueError: An override has an invalid value.
    """
    if limits is None:
        limits = DEFAULT_LIMITS
    if not isinstance(limits, LoadLimits):
        raise TypeError(
            f"`limits` must be a keras_bigmodel.LoadLimits or None. Received: limits={limits!r}"
        )
    if not overrides:
        return limits
    names = [f.name for f in dataclasses.fields(LoadLimits)]
    for key in overrides:
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise TypeError(
                f"Unknown loading option {key!r}.{hint} The limits are: {', '.join(names)}"
            )
    return dataclasses.replace(limits, **overrides)
