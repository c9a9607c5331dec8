"""Preset directories: a trained model plus the preset config and metadata that made it.

```
my_preset/
    model.keras     the model (written atomically, loaded through kbm's checked loader)
    preset.json     name, config, versions, parameter count, the model file's SHA-256
                    and the model's predictions on a fixed probe batch
```

A preset directory is untrusted input. Its two members must be regular files (a
symbolic link, a FIFO or a device is refused, never followed or read: `model.keras`
pointing at `/proc/self/pagemap` fails at once), each is read with a size limit, the
model file is hashed and loaded from the same open descriptor (it cannot be swapped in
between), and every field of `preset.json` is validated: anything malformed raises
`ModelFileError`. Both files are written atomically, replacing (never following) a
symbolic link at their place.
"""

from __future__ import annotations

import datetime
import errno
import hashlib
import importlib.metadata
import json
import os
import platform
import re
from typing import IO, Any

import keras

import keras_bigmodel as kbm
from keras_bigmodel import fileio, verification
from keras_bigmodel.saving import load_model_from_file
from keras_bigmodel.security import LoadLimits, resolve_limits
from zoo.registry import build, get_preset, origin_of, remember_origin

__all__ = ["get_preset", "load_preset", "read_preset_metadata", "save_preset"]

MODEL_FILE = "model.keras"
PRESET_FILE = "preset.json"
FORMAT_VERSION = 1
_MAX_PRESET_JSON = 1024 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MAX_PROBE_BATCH = 1024


def _sha256(f: IO[bytes]) -> str:
    digest = hashlib.sha256()
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


def _open_member(directory: str, name: str, max_bytes: int | None) -> IO[bytes]:
    """A member of a preset directory, opened without following links, if it is a
    regular file of at most `max_bytes`."""
    path = os.path.join(directory, name)
    try:
        return fileio.open_regular(path, follow_symlinks=False, max_bytes=max_bytes)
    except FileNotFoundError:
        raise kbm.ModelFileError(
            f"{directory!r} is not a complete preset directory: it has no {name}"
        ) from None
    except fileio.UnsafePathError as e:
        if e.errno == errno.EFBIG:
            hint = (
                ""
                if name == PRESET_FILE
                else (
                    "; if you trust it, raise the limits (limits=kbm.LoadLimits(max_params=..., "
                    "max_weights_bytes=...))"
                )
            )
            raise kbm.UnsafeModelError(f"{path}: {e.strerror}{hint}") from None
        raise kbm.UnsafeModelError(
            f"{path}: {e.strerror} (a preset directory holds regular files only)"
        ) from None
    except OSError as e:
        raise kbm.ModelFileError(f"{path} cannot be read: {e}") from None


def save_preset(
    model: keras.Model,
    directory: str | os.PathLike,
    name: str | None = None,
    config: dict | None = None,
    overwrite: bool = True,
) -> str:
    """Saves `model` with its preset config and metadata into `directory`.

    Each file is written atomically (temporary file, then rename; a symbolic link at
    its place is replaced, never written through), the model first; `preset.json`
    records the model file's SHA-256, so a directory whose two files do not belong
    together is detected on load.

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

    Raises:
        TypeError / ValueError: Bad arguments.
        FileExistsError: `overwrite=False` and the directory holds a preset.

    Example:

    ```python
    zoo.save_preset(zoo.build("cnn"), "my_cnn/")
    ```
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(
            f"`directory` must be a str or os.PathLike. Received: directory={directory!r}"
        )
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
    if os.path.lexists(directory) and not os.path.isdir(directory):
        raise ValueError(f"`directory` {directory!r} exists and is not a directory")
    model_path = os.path.join(directory, MODEL_FILE)
    preset_path = os.path.join(directory, PRESET_FILE)
    if not overwrite and os.path.lexists(preset_path):
        raise FileExistsError(f"{directory!r} already holds a preset and overwrite=False")
    os.makedirs(directory, exist_ok=True)

    kbm.save_model(model, model_path)
    with _open_member(directory, MODEL_FILE, None) as f:
        model_sha256 = _sha256(f)
    probe = verification.probe_inputs(model)
    metadata = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "config": config_json,
        "parameters": int(model.count_params()),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "created_with": _versions(),
        "model_file": MODEL_FILE,
        "model_sha256": model_sha256,
        # What the model predicts on a fixed probe batch, for `keras-bigmodel verify`.
        "probe": {
            "batch": verification.PROBE_BATCH,
            "seed": verification.PROBE_SEED,
            "outputs": verification.to_json(verification.predictions(model, probe)),
        },
    }
    with fileio.atomic_write(preset_path, "w") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)
    return directory


def _field_error(path: str, field: str, expected: str, value: Any) -> kbm.ModelFileError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return kbm.ModelFileError(
        f"{path} must hold a JSON object whose field {field!r} is {expected}. Received: "
        f"{shown} ({type(value).__name__})"
    )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(metadata: Any, path: str) -> dict:
    if not isinstance(metadata, dict):
        raise kbm.ModelFileError(f"{path} must hold a JSON object")
    version = metadata.get("format_version", FORMAT_VERSION)
    if not _is_int(version) or version < 1:
        raise _field_error(path, "format_version", "a positive int", version)
    if version > FORMAT_VERSION:
        raise kbm.ModelFileError(
            f"{path} has format_version {version}; this keras-bigmodel reads up to "
            f"{FORMAT_VERSION} (upgrade keras-bigmodel)"
        )
    checks = (
        ("name", lambda v: isinstance(v, str) and v != "", "a non-empty string"),
        ("config", lambda v: isinstance(v, dict), "a JSON object"),
        (
            "model_sha256",
            lambda v: isinstance(v, str) and _SHA256.match(v),
            "64 lowercase hex digits",
        ),
        ("parameters", lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    )
    for field, ok, expected in checks:
        if field not in metadata:
            raise kbm.ModelFileError(f"{path} has no {field!r} field")
        if not ok(metadata[field]):
            raise _field_error(path, field, expected, metadata[field])
    model_file = metadata.get("model_file", MODEL_FILE)
    if model_file != MODEL_FILE:
        raise _field_error(path, "model_file", repr(MODEL_FILE), model_file)
    for field in ("created",):
        if field in metadata and not isinstance(metadata[field], str):
            raise _field_error(path, field, "a string", metadata[field])
    if "created_with" in metadata and not isinstance(metadata["created_with"], dict):
        raise _field_error(path, "created_with", "a JSON object", metadata["created_with"])
    if "probe" in metadata:
        _validate_probe(metadata["probe"], path)
    return metadata


def _validate_probe(probe: Any, path: str) -> None:
    if not isinstance(probe, dict):
        raise _field_error(path, "probe", "a JSON object", probe)
    for field in ("batch", "seed"):
        value = probe.get(field)
        if not _is_int(value) or value < 0 or value > 2**31:
            raise _field_error(path, f"probe.{field}", "an int >= 0", value)
    if not 1 <= probe["batch"] <= _MAX_PROBE_BATCH:
        raise _field_error(
            path, "probe.batch", f"an int in [1, {_MAX_PROBE_BATCH}]", probe["batch"]
        )
    outputs = probe.get("outputs")
    if not isinstance(outputs, (list, dict)):
        raise _field_error(path, "probe.outputs", "a list or an object of lists", outputs)
    if isinstance(outputs, dict) and not all(isinstance(v, list) for v in outputs.values()):
        raise _field_error(path, "probe.outputs", "an object of lists", outputs)


def read_preset_metadata(directory: str | os.PathLike) -> dict:
    """Reads and validates `preset.json` (plain JSON; nothing is executed).

    Args:
        directory: A preset directory.

    Returns:
        The metadata dict, every field checked (`name`, `config`, `model_sha256`,
        `parameters`; optional `format_version`, `model_file`, `created`,
        `created_with` and `probe` with `batch`, `seed`, `outputs`).

    Raises:
        ModelFileError: No preset.json, or it is not JSON, or a field is malformed.
        UnsafeModelError: preset.json is a link, not a regular file, or too large.

    Example:

    ```python
    metadata = zoo.read_preset_metadata("my_cnn/")
    metadata["name"], metadata["parameters"]
    ```
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, PRESET_FILE)
    if not os.path.isdir(directory):
        raise kbm.ModelFileError(f"{directory!r} is not a preset directory")
    with _open_member(directory, PRESET_FILE, _MAX_PRESET_JSON) as f:
        try:
            raw = fileio.read_bounded(f, _MAX_PRESET_JSON)
        except fileio.UnsafePathError as e:
            raise kbm.UnsafeModelError(f"{path}: {e.strerror}") from None
    try:
        metadata = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise kbm.ModelFileError(f"{path} is not valid JSON: {e}") from None
    except RecursionError:
        raise kbm.ModelFileError(f"{path} is nested too deeply") from None
    return _validate(metadata, path)


def load_preset(
    directory_or_name: str | os.PathLike,
    /,
    compile: bool = True,
    limits: LoadLimits | None = None,
    **overrides: Any,
):
    """Loads a preset directory (trained weights) or builds a registered preset (fresh).

    Args:
        directory_or_name: A directory written by `save_preset`, or a registered
            preset name.
        compile: Whether the loaded model is compiled.
        limits: Only for a directory: the `keras_bigmodel.LoadLimits` its model
            must fit (default: `LoadLimits()`).
        **overrides: Only for a registered name: passed to `zoo.build`.

    Returns:
        The `keras.Model`. A directory's model is loaded through keras_bigmodel's
        checked loader from the same open file whose SHA-256 was checked against
        `preset.json`.

    Raises:
        ModelFileError: A malformed or incomplete directory, or mismatched files.
        UnsafeModelError: A member is a link or not a regular file, or the model
            file is refused.

    Example:

    ```python
    trained = zoo.load_preset("my_cnn/")
    fresh = zoo.load_preset("cnn", num_classes=3)
    ```
    """
    if not isinstance(directory_or_name, (str, os.PathLike)):
        raise TypeError(
            f"`directory_or_name` must be a str or os.PathLike. Received: {directory_or_name!r}"
        )
    target = os.fspath(directory_or_name)
    if not os.path.isdir(target):
        if os.path.sep in target or os.path.lexists(target):
            raise kbm.ModelFileError(f"{target!r} is not a preset directory")
        if limits is not None:
            raise ValueError("`limits` only applies when loading a preset directory")
        return build(target, compile=compile, **overrides)  # unknown names list close matches
    if overrides:
        raise ValueError(
            f"Overrides {sorted(overrides)} only apply when building a registered preset, "
            f"not when loading the trained preset in {target!r}"
        )
    limits = resolve_limits(limits)
    metadata = read_preset_metadata(target)
    model_path = os.path.join(target, MODEL_FILE)
    with _open_member(target, MODEL_FILE, limits.archive_bytes) as f:
        if _sha256(f) != metadata["model_sha256"]:
            raise kbm.ModelFileError(
                f"{model_path} does not match the SHA-256 recorded in {PRESET_FILE}: the two "
                f"files are from different saves"
            )
        model = load_model_from_file(f, where=model_path, compile=compile, limits=limits)
    remember_origin(model, metadata["name"], metadata["config"])
    return model
