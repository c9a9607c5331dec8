"""The preset registry: presets register themselves with a decorator.

A preset is a builder function whose keyword arguments are its configuration; the
defaults in its signature (optionally overridden at registration) are the preset's
config. `build(name, **overrides)` validates the overrides against that config,
calls the builder and compiles the model.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import inspect
import weakref
from typing import Any, Callable

import keras

# Arguments every preset accepts besides its own config.
COMPILE_OPTIONS = ("compile", "optimizer", "loss", "metrics", "loss_weights", "jit_compile")
_DEFAULT_COMPILE = {"optimizer": "adam", "loss": "categorical_crossentropy", "metrics": ["accuracy"]}


class UnknownPresetError(KeyError, ValueError):
    """No preset of that name; the message lists the close matches."""

    def __str__(self):  # KeyError would otherwise print the message in quotes
        return str(self.args[0])


@dataclasses.dataclass(frozen=True)
class Preset:
    name: str
    builder: Callable[..., keras.Model]
    description: str
    config: dict
    compile_defaults: dict

    def describe(self) -> dict:
        return {
            "name": self.name,
            "description": self.description,
            "builder": self.builder,
            "builder_path": f"{self.builder.__module__}.{self.builder.__qualname__}",
            "config": copy.deepcopy(self.config),
            "compile": copy.deepcopy(self.compile_defaults),
        }


_PRESETS: dict[str, Preset] = {}
# Which preset (and config) built a model, so save_preset can record it.
_ORIGINS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


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


def register_preset(
    name: str,
    builder: Callable[..., keras.Model],
    /,
    description: str = "",
    compile_defaults: dict | None = None,
    overwrite: bool = False,
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
            f"`name` must be a non-empty string of letters, digits, '_' or '-'. Received: name={name!r}"
        )
    if not callable(builder):
        raise TypeError(f"`builder` must be callable. Received: builder={builder!r}")
    if not isinstance(description, str):
        raise TypeError(f"`description` must be a str. Received: description={description!r}")
    if name in _PRESETS and not overwrite:
        raise ValueError(
            f"A preset named {name!r} is already registered; pass overwrite=True to replace it"
        )
    defaults = _signature_config(builder)
    unknown = sorted(set(config) - set(defaults))
    if unknown:
        raise ValueError(
            f"Config keys {unknown} are not arguments of {builder.__qualname__}; "
            f"allowed: {sorted(defaults)}"
        )
    defaults.update(config)
    preset = Preset(
        name=name,
        builder=builder,
        description=description.strip() or (inspect.getdoc(builder) or "").split("\n")[0],
        config=defaults,
        compile_defaults=dict(compile_defaults or _DEFAULT_COMPILE),
    )
    _PRESETS[name] = preset
    return preset


def preset(name: str, /, description: str = "", compile_defaults: dict | None = None, **config):
    """Decorator form of `register_preset`, the way each zoo family registers."""

    def decorate(builder):
        register_preset(name, builder, description, compile_defaults=compile_defaults, **config)
        return builder

    return decorate


def get_preset(name: Any) -> Preset:
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


def build(name: str, /, **overrides) -> keras.Model:
    """Builds the preset `name` as a compiled functional `keras.Model`.

    Args:
        name: A registered preset name (see `list_presets()`).
        **overrides: Config entries to change (see `describe(name)["config"]`),
            plus `compile=False` to get an uncompiled model, or `optimizer`,
            `loss`, `metrics`, `loss_weights`, `jit_compile` to compile
            differently from the preset's defaults.

    Returns:
        The model. `zoo.save_preset` remembers which preset and config built it.
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
    model = spec.builder(**config)
    if not isinstance(model, keras.Model) or isinstance(model, keras.Sequential):
        raise TypeError(
            f"Preset {name!r} must build a functional keras.Model; its builder returned "
            f"{type(model).__name__}"
        )
    do_compile = compile_args.pop("compile", True)
    if not isinstance(do_compile, bool):
        raise ValueError(f"`compile` must be a bool. Received: compile={do_compile!r}")
    if do_compile:
        compile_model(model, {**spec.compile_defaults, **compile_args})
    _ORIGINS[model] = {"name": name, "config": config}
    return model


def compile_model(model: keras.Model, settings: dict) -> None:
    """Compiles `model`, spreading a single loss/metric list over dict outputs."""
    settings = dict(settings)
    if isinstance(model.output, dict):
        names = list(model.output)
        if not isinstance(settings.get("loss"), dict):
            settings["loss"] = {k: settings.get("loss") for k in names}
        if settings.get("metrics") is not None and not isinstance(settings["metrics"], dict):
            settings["metrics"] = {k: list(settings["metrics"]) for k in names}
    model.compile(**settings)


def origin_of(model: keras.Model) -> dict | None:
    """The preset name and config that built `model`, if `build` did."""
    return _ORIGINS.get(model)


def remember_origin(model: keras.Model, name: str, config: dict) -> None:
    _ORIGINS[model] = {"name": name, "config": config}
