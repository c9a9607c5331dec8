"""The preset registry: each preset registers itself, in its own file, with a decorator.

A preset is a builder function whose keyword arguments are its configuration; the
defaults in its signature (optionally overridden at registration) are the preset's
config. The registration also carries everything the rest of the project needs, so
that adding a preset is one file (see CONTRIBUTING.md):

- `tiny`: overrides that make the preset small and fast, for tests;
- `variants`: further configurations worth proving (applied on top of `tiny`);
- `data`: a `zoo.views.DataView`, how the preset meets data (the command line's
  `train`, the digits demo, explanations);
- `plain_keras`: the same network written in plain Keras, for the benchmarks.

`build(name, **overrides)` validates the overrides, calls the builder, wraps the
result in a `keras_bigmodel.models.PresetModel` that records the preset's name and
config in the model (and so in its `.keras` file), and compiles it.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import keras

from keras_bigmodel import _compat
from keras_bigmodel.models import PresetModel, provenance
from keras_bigmodel.validation import check_choice, check_dtype_policy
from zoo.views import DataView

__all__ = [
    "COMPILE_OPTIONS",
    "LABEL_MODES",
    "Preset",
    "UnknownPresetError",
    "build",
    "compile_model",
    "describe",
    "get_preset",
    "list_presets",
    "origin_of",
    "preset",
    "register_preset",
]

# Arguments every preset's `build` accepts besides its own config.
COMPILE_OPTIONS = (
    "compile",
    "optimizer",
    "loss",
    "metrics",
    "loss_weights",
    "jit_compile",
    "labels",
)
LABEL_MODES = ("categorical", "sparse")
_DEFAULT_COMPILE = {
    "optimizer": "adam",
    "loss": "categorical_crossentropy",
    "metrics": ["accuracy"],
}
_SPARSE_LOSSES = {"categorical_crossentropy": "sparse_categorical_crossentropy"}


class UnknownPresetError(KeyError, ValueError):
    """No preset of that name; the message lists the close matches."""

    def __str__(self):  # KeyError would otherwise print the message in quotes
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Preset:
    """A registered preset (see the module docstring for the fields' roles)."""

    name: str
    builder: Callable[..., keras.Model]
    description: str
    config: dict
    compile_defaults: dict
    tiny: dict = dataclasses.field(default_factory=dict)
    variants: dict = dataclasses.field(default_factory=dict)
    data: DataView | None = None
    plain_keras: Callable[[], keras.Model] | None = None

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "builder": self.builder,
            "builder_path": f"{self.builder.__module__}.{self.builder.__qualname__}",
            "config": copy.deepcopy(self.config),
            "compile": copy.deepcopy(self.compile_defaults),
        }

    def test_configs(self) -> dict[str, dict]:
        """`{"tiny": tiny, variant: tiny + variant, ...}`: what the tests build."""
        configs = {"tiny": copy.deepcopy(self.tiny)}
        for name, overrides in self.variants.items():
            configs[name] = {**copy.deepcopy(self.tiny), **copy.deepcopy(overrides)}
        return configs


_PRESETS: dict[str, Preset] = {}


def _signature_config(builder: Callable) -> dict:
    config = {}
    for param in inspect.signature(builder).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is param.empty:
            raise ValueError(
                f"Preset builder {builder.__qualname__} must give every argument a default "
                f"(its defaults are the preset's config); `{param.name}` has none"
            )
        config[param.name] = param.default
    return config


def _check_keys(what: str, keys, allowed, builder) -> None:
    unknown = sorted(set(keys) - set(allowed))
    if unknown:
        raise ValueError(
            f"{what} keys {unknown} are not arguments of {builder.__qualname__}; "
            f"allowed: {sorted(allowed)}"
        )


def register_preset(
    name: str,
    builder: Callable[..., keras.Model],
    /,
    description: str = "",
    compile_defaults: dict | None = None,
    overwrite: bool = False,
    tiny: dict | None = None,
    variants: dict | None = None,
    data: DataView | None = None,
    plain_keras: Callable[[], keras.Model] | None = None,
    **config,
) -> Preset:
    """Registers `builder` as the preset `name`.

    Args:
        name: The preset's name (letters, digits, `_`, `-`).
        builder: A function returning a functional `keras.Model`; each of its
            keyword arguments (all with defaults) is a config entry.
        description: One line shown by `list_presets`/`describe`.
        compile_defaults: How `build` compiles the model unless told otherwise;
            defaults to the documents' `adam` / `categorical_crossentropy` /
            `accuracy`.
        overwrite: Allow replacing an existing preset of that name.
        tiny: Overrides that make the preset small and quick, for tests.
        variants: `{variant_name: overrides}`, further configurations the tests
            prove (each applied on top of `tiny`).
        data: How the preset meets data (a `zoo.views.DataView`); presets without
            one can be built and saved but not trained by the command line.
        plain_keras: A function building the default network in plain Keras,
            without this package, for the benchmarks.
        **config: Values overriding the builder's defaults for this preset
            (`name` and `builder` are positional, so a config may hold a `name`).

    Returns:
        The registered `Preset`.

    Example:

    ```python
    import keras, zoo

    def tiny_mlp(input_shape=(16,), num_classes=3, units=32):
        inputs = keras.Input(shape=input_shape)
        x = keras.layers.Dense(units, activation="relu")(inputs)
        return keras.Model(inputs, keras.layers.Dense(num_classes, activation="softmax")(x))

    zoo.register_preset("tiny_mlp", tiny_mlp, description="A small MLP", units=64)
    model = zoo.build("tiny_mlp", num_classes=5)
    ```
    """
    if not isinstance(name, str) or not name or not all(c.isalnum() or c in "_-" for c in name):
        raise ValueError(
            "`name` must be a non-empty string of letters, digits, '_' or '-'. "
            f"Received: name={name!r}"
        )
    if not callable(builder):
        raise TypeError(f"`builder` must be callable. Received: builder={builder!r}")
    if not isinstance(description, str):
        raise TypeError(f"`description` must be a str. Received: description={description!r}")
    if name in _PRESETS and not overwrite:
        raise ValueError(
            f"A preset named {name!r} is already registered; pass overwrite=True to replace it"
        )
    if data is not None and not isinstance(data, DataView):
        raise TypeError(f"`data` must be a zoo.views.DataView. Received: data={data!r}")
    if plain_keras is not None and not callable(plain_keras):
        raise TypeError(f"`plain_keras` must be callable. Received: plain_keras={plain_keras!r}")
    defaults = _signature_config(builder)
    _check_keys("Config", config, defaults, builder)
    _check_keys("`tiny`", tiny or {}, defaults, builder)
    for variant, overrides in (variants or {}).items():
        _check_keys(
            f"`variants['{variant}']`", overrides, list(defaults) + list(COMPILE_OPTIONS), builder
        )
    defaults.update(config)
    spec = Preset(
        name=name,
        builder=builder,
        description=description.strip() or (inspect.getdoc(builder) or "").split("\n")[0],
        config=defaults,
        compile_defaults=dict(compile_defaults or _DEFAULT_COMPILE),
        tiny=dict(tiny or {}),
        variants=dict(variants or {}),
        data=data,
        plain_keras=plain_keras,
    )
    _PRESETS[name] = spec
    return spec


def preset(
    name: str,
    /,
    description: str = "",
    compile_defaults: dict | None = None,
    tiny: dict | None = None,
    variants: dict | None = None,
    data: DataView | None = None,
    plain_keras: Callable[[], keras.Model] | None = None,
    **config,
):
    """Decorator form of `register_preset`: how each preset file registers its builder."""

    def decorate(builder):
        register_preset(
            name,
            builder,
            description,
            compile_defaults=compile_defaults,
            tiny=tiny,
            variants=variants,
            data=data,
            plain_keras=plain_keras,
            **config,
        )
        return builder

    return decorate


def get_preset(name: Any) -> Preset:
    """The registered `Preset` called `name`; unknown names list the close matches."""
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a str. Received: name={name!r}")
    if name not in _PRESETS:
        close = difflib.get_close_matches(name, list(_PRESETS), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownPresetError(
            f"Unknown preset {name!r}.{hint} Available presets: {', '.join(list_presets())}"
        )
    return _PRESETS[name]


def list_presets() -> list[str]:
    """The registered preset names, sorted."""
    return sorted(_PRESETS)


def describe(name: str) -> dict:
    """A preset's `description`, `builder` (the function; `builder_path` names it),
    `config` (the builder's arguments) and `compile` defaults."""
    return get_preset(name).describe()


def build(name: str, /, **overrides) -> PresetModel:
    """Builds the preset `name` as a compiled functional `keras.Model`.

    Args:
        name: A registered preset name (see `list_presets()`).
        **overrides: Config entries to change (see `describe(name)["config"]`),
            plus `compile=False` to get an uncompiled model; `optimizer`, `loss`,
            `metrics`, `loss_weights`, `jit_compile` to compile differently from
            the preset's defaults; and `labels="sparse"` to train on integer class
            labels instead of one-hot rows (`"categorical"`, the default).

    Returns:
        A `keras_bigmodel.models.PresetModel` (a functional `keras.Model`) whose
        config, and so whose saved file, records the preset and its config.
    """
    spec = get_preset(name)
    compile_args = {k: overrides.pop(k) for k in COMPILE_OPTIONS if k in overrides}
    unknown = sorted(set(overrides) - set(spec.config))
    if unknown:
        allowed = sorted(spec.config) + list(COMPILE_OPTIONS)
        close = {u: difflib.get_close_matches(u, allowed, n=1) for u in unknown}
        hints = "".join(f" Did you mean {c[0]!r} for {u!r}?" for u, c in close.items() if c)
        raise ValueError(
            f"Unknown override(s) {unknown} for preset {name!r}.{hints} Allowed: {allowed}"
        )
    config = {**copy.deepcopy(spec.config), **overrides}
    if isinstance(config.get("dtype"), dict):  # a recorded policy, as `_jsonable` wrote it
        config["dtype"] = check_dtype_policy("dtype", config["dtype"])
    built = spec.builder(**config)
    _compat.resolve_policy_maps(built)
    if (
        not isinstance(built, keras.Model)
        or isinstance(built, keras.Sequential)
        or not _compat.is_functional(built)
    ):
        raise TypeError(
            f"Preset {name!r} must build a functional keras.Model; its builder returned "
            f"{type(built).__name__}"
        )
    do_compile = compile_args.pop("compile", True)
    if not isinstance(do_compile, bool):
        raise ValueError(f"`compile` must be a bool. Received: compile={do_compile!r}")
    labels = check_choice("labels", compile_args.pop("labels", "categorical"), LABEL_MODES)
    record = {"name": name, "config": _jsonable(config)}
    if labels != "categorical":
        record["labels"] = labels
    model = PresetModel(built.input, built.output, name=built.name, preset=record)
    if do_compile:
        compile_model(model, {**spec.compile_defaults, **compile_args}, labels=labels)
    return model


def _jsonable(value):
    """Tuples as lists and dtype policies (a `DTypePolicy` or a `DTypePolicyMap`, what
    keras-hub's precision and quantization tests pass) as their Keras serialization,
    recursively: the form the config takes in JSON, which the builders accept back."""
    if isinstance(value, keras.dtype_policies.DTypePolicy):
        return keras.dtype_policies.serialize(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def compile_model(model: keras.Model, settings: dict, labels: str = "categorical") -> None:
    """Compiles `model`, spreading a single loss/metric list over dict outputs, with
    sparse losses for integer labels when `labels="sparse"`."""
    settings = dict(settings)
    if labels == "sparse":
        settings["loss"] = keras.tree.map_structure(
            lambda loss: _SPARSE_LOSSES.get(loss, loss) if isinstance(loss, str) else loss,
            settings.get("loss"),
        )
    if isinstance(model.output, dict):
        names = list(model.output)
        if not isinstance(settings.get("loss"), dict):
            settings["loss"] = {k: settings.get("loss") for k in names}
        if settings.get("metrics") is not None and not isinstance(settings["metrics"], dict):
            settings["metrics"] = {k: list(settings["metrics"]) for k in names}
    model.compile(**settings)


def origin_of(model: keras.Model) -> dict | None:
    """The preset name and config that built `model`, read from the model itself
    (so it survives copies, quantization, saving and reloading), or None."""
    record = provenance(model)
    if record is None:
        return None
    return {"name": record["name"], "config": record.get("config", {}), "provenance": record}


def remember_origin(model: keras.Model, name: str, config: dict) -> None:
    """Kept for callers of the earlier API: provenance now travels in the model."""
