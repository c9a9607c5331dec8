"""Preset directories: a trained model plus the preset config and metadata that made it.

```
my_preset/
    model.keras     the model (written atomically, loaded through kbm.load_model)
    preset.json     name, config, versions, parameter count, the model file's SHA-256
                    and the model's predictions on a fixed probe batch
```
"""

from __future__ import annotations

import datetime
import hashlib
import importlib.metadata
import json
import os
import platform
from typing import Any

import keras

import keras_bigmodel as kbm
from keras_bigmodel import verification
from keras_bigmodel.saving import atomic_path
from zoo.registry import build, get_preset, origin_of, remember_origin

MODEL_FILE = "model.keras"
PRESET_FILE = "preset.json"
FORMAT_VERSION = 1
_MAX_PRESET_JSON = 1024 * 1024


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict:
    versions = {
        "keras_bigmodel": kbm.__version__,
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "python": platform.python_version(),
    }
    for package in ("tensorflow", "jax", "torch"):
        try:  # package metadata: nothing is imported, whichever backend runs
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def save_preset(
    model: keras.Model,
    directory: str | os.PathLike,
    name: str | None = None,
    config: dict | None = None,
    overwrite: bool = True,
) -> str:
    """Saves `model` with its preset config and metadata into `directory`.

    Each file is written atomically (temporary file, then rename), the model
    first; `preset.json` records the model file's SHA-256, so a directory whose
    two files do not belong together is detected on load.

    Args:
        model: A `keras.Model`, typically from `zoo.build` (which records the
            preset name and config).
        directory: Where to write; created if missing.
        name: Preset name to record; defaults to the one that built the model,
            else `"custom"`.
        config: Config to record; defaults to the one that built the model.
        overwrite: If `False`, refuse to write into a directory that already
            holds a preset.

    Returns:
        The directory, as a string.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"`directory` must be a str or os.PathLike. Received: directory={directory!r}")
    directory = os.fspath(directory)
    origin = origin_of(model) or {}
    name = name if name is not None else origin.get("name", "custom")
    if not isinstance(name, str) or not name:
        raise ValueError(f"`name` must be a non-empty string. Received: name={name!r}")
    config = config if config is not None else origin.get("config", {})
    if not isinstance(config, dict):
        raise ValueError(f"`config` must be a dict. Received: config={config!r}")
    try:
        config_json = json.loads(json.dumps(config))
    except (TypeError, ValueError) as e:
        raise ValueError(f"`config` must be JSON-serializable: {e}") from None
    if os.path.exists(directory) and not os.path.isdir(directory):
        raise ValueError(f"`directory` {directory!r} exists and is not a directory")
    model_path = os.path.join(directory, MODEL_FILE)
    preset_path = os.path.join(directory, PRESET_FILE)
    if not overwrite and os.path.exists(preset_path):
        raise FileExistsError(f"{directory!r} already holds a preset and overwrite=False")
    os.makedirs(directory, exist_ok=True)

    kbm.save_model(model, model_path)
    probe = verification.probe_inputs(model)
    metadata = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": config_json,
        "parameters": int(model.count_params()),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "created_with": _versions(),
        "model_file": MODEL_FILE,
        "model_sha256": _sha256(model_path),
        # What the model predicts on a fixed probe batch, for `keras-bigmodel verify`.
        "probe": {
            "batch": verification.PROBE_BATCH,
            "seed": verification.PROBE_SEED,
            "outputs": verification.to_json(verification.predictions(model, probe)),
        },
    }
    with atomic_path(preset_path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(metadata, f, indent=2, sort_keys=True)
    return directory


def read_preset_metadata(directory: str) -> dict:
    """Reads and validates `preset.json` (plain JSON; nothing is executed)."""
    path = os.path.join(directory, PRESET_FILE)
    if not os.path.isfile(path):
        raise kbm.ModelFileError(f"{directory!r} is not a preset directory: it has no {PRESET_FILE}")
    if os.path.getsize(path) > _MAX_PRESET_JSON:
        raise kbm.UnsafeModelError(f"{path} is larger than {_MAX_PRESET_JSON} bytes")
    try:
        with open(path, encoding="utf-8") as f:
            metadata = json.load(f)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise kbm.ModelFileError(f"{path} is not valid JSON: {e}") from None
    required = {"name": str, "config": dict, "model_sha256": str, "parameters": int}
    if not isinstance(metadata, dict) or any(
        not isinstance(metadata.get(k), t) for k, t in required.items()
    ):
        raise kbm.ModelFileError(
            f"{path} must hold a JSON object with {sorted(required)} of types "
            f"{[t.__name__ for t in required.values()]}"
        )
    return metadata


def load_preset(directory_or_name: str | os.PathLike, /, compile: bool = True, **overrides: Any):
    """Loads a preset directory (trained weights) or builds a registered preset (fresh).

    Args:
        directory_or_name: A directory written by `save_preset`, or a registered
            preset name.
        compile: Whether the loaded model is compiled.
        **overrides: Only for a registered name: passed to `zoo.build`.

    Returns:
        The `keras.Model`. A directory's model is loaded through
        `keras_bigmodel.load_model` (inspected, safe mode) after checking that
        its SHA-256 matches `preset.json`.
    """
    if not isinstance(directory_or_name, (str, os.PathLike)):
        raise TypeError(
            f"`directory_or_name` must be a str or os.PathLike. Received: {directory_or_name!r}"
        )
    target = os.fspath(directory_or_name)
    if not os.path.isdir(target):
        if os.path.sep in target or os.path.exists(target):
            raise kbm.ModelFileError(f"{target!r} is not a preset directory")
        return build(target, compile=compile, **overrides)  # unknown names list close matches
    if overrides:
        raise ValueError(
            f"Overrides {sorted(overrides)} only apply when building a registered preset, "
            f"not when loading the trained preset in {target!r}"
        )
    metadata = read_preset_metadata(target)
    model_path = os.path.join(target, MODEL_FILE)
    if not os.path.isfile(model_path):
        raise kbm.ModelFileError(f"{target!r} has {PRESET_FILE} but no {MODEL_FILE}")
    if _sha256(model_path) != metadata["model_sha256"]:
        raise kbm.ModelFileError(
            f"{model_path} does not match the SHA-256 recorded in {PRESET_FILE}: the two "
            f"files are from different saves"
        )
    model = kbm.load_model(model_path, compile=compile)
    remember_origin(model, metadata["name"], metadata["config"])
    return model


__all__ = ["get_preset", "load_preset", "read_preset_metadata", "save_preset"]
