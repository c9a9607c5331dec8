"""Inspection of `.keras` archives before anything in them is deserialized.

Keras's own `safe_mode` has been bypassed repeatedly (CVE-2024-3660: Lambda
bytecode; CVE-2025-1550: arbitrary module import from config.json;
CVE-2025-8747 and CVE-2025-9906: turning safe mode off, or downloading files,
from inside the file; CVE-2025-9905: HDF5 files ignore safe_mode). This module
reads an archive as data only (zip directory, JSON, HDF5 metadata), imports
nothing and calls nothing from it, and refuses anything outside an allow-list:

- members: only `metadata.json`, `config.json`, `model.weights.h5` or
  `model.weights.npz`, and files under `assets/`; no absolute or `..` paths, no
  duplicates, no encrypted members, a bounded member count;
- sizes: small JSON files, no member that decompresses far beyond what it
  stores, and a weights file no bigger than the tensors inside it need;
- weights: HDF5 without external links, external storage, virtual or
  compressed datasets; `.npz` without object (pickled) arrays;
- config: every object's class must be a Keras modelling class (layer, model,
  loss, metric, optimizer, initializer, ...) from Keras itself, from
  `keras_bigmodel`/`zoo`, or registered with Keras; `Lambda` and the layers that
  wrap foreign code or files (`TFSMLayer`, `TorchModuleWrapper`, `JaxLayer`,
  `FlaxLayer`) are refused, and so is every function except Keras's built-in
  activations, losses and metrics and functions registered with Keras.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import stat
import sys
import zipfile
from typing import Any, BinaryIO, Mapping

import keras


class ModelFileError(ValueError):
    """A model file is missing its parts, corrupt, or not a Keras model archive."""


class UnsafeModelError(ModelFileError):
    """A model file was refused because loading it could import or run code, read
    other files, or exhaust memory or disk. Nothing in it was executed."""


# ------------------------------------------------------------------------ limits
MAX_MEMBERS = 4096
MAX_CONFIG_BYTES = 64 * 1024 * 1024
MAX_METADATA_BYTES = 1024 * 1024
MAX_ASSETS_BYTES = 1024 * 1024 * 1024
MAX_JSON_DEPTH = 200
# Keras stores members uncompressed; a member that expands more than this is a bomb.
MAX_EXPANSION = 100
# An HDF5 file holds its tensors plus a little bookkeeping per object.
H5_SLACK_BYTES = 1024 * 1024
H5_SLACK_PER_OBJECT = 16 * 1024
MAX_H5_OBJECTS = 1_000_000

_WEIGHT_MEMBERS = ("model.weights.h5", "model.weights.npz")
_JSON_MEMBERS = {"config.json": MAX_CONFIG_BYTES, "metadata.json": MAX_METADATA_BYTES}
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Data markers that Keras's deserializer turns into values, never into code.
_DATA_MARKERS = {
    "__keras_tensor__",
    "__tensor__",
    "__numpy__",
    "__bytes__",
    "__ellipsis__",
    "__slice__",
}
# Classes that run foreign code or read foreign files when they are rebuilt.
DENIED_CLASSES = {
    "Lambda",
    "TFSMLayer",
    "TorchModuleWrapper",
    "JaxLayer",
    "FlaxLayer",
}
# Where Keras's built-in functions live (what a `builtins` function entry may name).
_BUILTIN_FUNCTION_MODULES = ("activations", "losses", "metrics")
_ALLOWED_FUNCTION_MODULES = tuple(f"keras.{m}" for m in _BUILTIN_FUNCTION_MODULES) + (
    "keras.ops",
)
# Lookup layers read a vocabulary *file* when it is given as a string path.
_PATH_VOCABULARY_CLASSES = {"StringLookup", "IntegerLookup", "TextVectorization"}
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def _allowed_base_classes() -> tuple[type, ...]:
    from keras.src.saving.keras_saveable import KerasSaveable

    bases = [
        KerasSaveable,
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


@dataclasses.dataclass
class ConfigFindings:
    """What `check_config` found: the classes named, and the entries it rewrote.

    A model compiled on PyTorch records its optimizer as
    `keras.src.backend.torch.optimizers.torch_adam.Adam`; plain Keras then imports
    that module (and torch with it) on any backend and builds torch's optimizer.
    `check_config` rewrites such entries in place to the public `keras.optimizers`
    class, which is the same optimizer for whichever backend loads the file, and lists
    their paths in `rewritten`.
    """

    classes: set = dataclasses.field(default_factory=set)
    rewritten: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class ArchiveReport:
    """What the inspection found in an archive that it accepted."""

    members: list[str]
    weights_member: str
    weights_bytes: int
    stored_bytes: int
    uncompressed_bytes: int
    keras_version: str | None
    classes: list[str]
    rewritten_config: bytes | None  # config.json to load instead, if entries were rewritten


def is_hdf5(head: bytes) -> bool:
    return head.startswith(_HDF5_MAGIC)


# ------------------------------------------------------------------- the archive
def inspect_archive(
    source: str | BinaryIO, custom_objects: Mapping[str, Any] | None = None, where: str = ""
) -> ArchiveReport:
    """Checks a `.keras` archive without deserializing anything from it.

    Args:
        source: A path or a seekable binary file object.
        custom_objects: Objects the caller trusts, as for `keras.saving.load_model`.
        where: How to name the file in error messages.

    Returns:
        An `ArchiveReport`.

    Raises:
        UnsafeModelError: The archive holds something outside the allow-list.
        ModelFileError: The archive is corrupt or not a Keras archive.
    """
    where = where or (source if isinstance(source, str) else getattr(source, "name", "<file>"))
    try:
        archive = zipfile.ZipFile(source, "r")
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{where} is not a valid .keras archive (zip): {e}") from None
    except (OSError, EOFError) as e:
        raise ModelFileError(f"{where} could not be read as a .keras archive: {e}") from None
    with archive:
        infos = archive.infolist()
        _check_members(infos, where)
        names = [i.filename for i in infos]
        weights = [n for n in names if n in _WEIGHT_MEMBERS]
        if len(weights) != 1:
            raise ModelFileError(
                f"{where} must hold exactly one weights file ({' or '.join(_WEIGHT_MEMBERS)}); "
                f"found {weights or 'none'}"
            )
        for required in _JSON_MEMBERS:
            if required not in names:
                raise ModelFileError(f"{where} has no {required}; it is not a Keras model archive")
        metadata = _read_json(archive, "metadata.json", where)
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{where}: metadata.json must hold a JSON object")
        config = _read_json(archive, "config.json", where)
        findings = check_config(config, custom_objects=custom_objects, where=where)
        weights_bytes = _weights_payload(archive, weights[0], where)
        assets = sum(i.file_size for i in infos if i.filename.startswith("assets/"))
        if assets > MAX_ASSETS_BYTES:
            raise UnsafeModelError(
                f"{where}: assets/ declares {assets} bytes, over the {MAX_ASSETS_BYTES}-byte limit"
            )
        return ArchiveReport(
            members=names,
            weights_member=weights[0],
            weights_bytes=weights_bytes,
            stored_bytes=sum(i.compress_size for i in infos),
            uncompressed_bytes=sum(i.file_size for i in infos),
            keras_version=metadata.get("keras_version"),
            classes=sorted(findings.classes),
            rewritten_config=json.dumps(config).encode() if findings.rewritten else None,
        )


def _check_members(infos: list[zipfile.ZipInfo], where: str) -> None:
    if len(infos) > MAX_MEMBERS:
        raise UnsafeModelError(
            f"{where} holds {len(infos)} members; a Keras archive holds a handful "
            f"(limit {MAX_MEMBERS})"
        )
    seen = set()
    for info in infos:
        name = info.filename
        parts = re.split(r"[\\/]", name)
        if (
            name.startswith(("/", "\\"))
            or _WINDOWS_DRIVE.match(name)
            or ".." in parts
            or "\x00" in name
        ):
            raise UnsafeModelError(f"{where}: member {name!r} has an absolute or '..' path")
        if name in seen:
            raise UnsafeModelError(f"{where}: member {name!r} appears more than once")
        seen.add(name)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UnsafeModelError(f"{where}: member {name!r} is a symbolic link")
        if info.flag_bits & 0x1:
            raise UnsafeModelError(f"{where}: member {name!r} is encrypted")
        if not (name in _JSON_MEMBERS or name in _WEIGHT_MEMBERS or name.startswith("assets/")):
            raise UnsafeModelError(
                f"{where}: unexpected member {name!r}; a .keras archive holds only "
                f"metadata.json, config.json, a weights file and assets/"
            )
        limit = _JSON_MEMBERS.get(name)
        if limit is not None and info.file_size > limit:
            raise UnsafeModelError(
                f"{where}: member {name!r} declares {info.file_size} bytes, over its "
                f"{limit}-byte limit"
            )
        if info.file_size > 1024 * 1024 and info.file_size > MAX_EXPANSION * max(
            info.compress_size, 1
        ):
            raise UnsafeModelError(
                f"{where}: member {name!r} expands from {info.compress_size} to "
                f"{info.file_size} bytes (a decompression bomb)"
            )


def _read_json(archive: zipfile.ZipFile, name: str, where: str):
    limit = _JSON_MEMBERS[name]
    try:
        with archive.open(name) as f:
            raw = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as e:
        raise ModelFileError(f"{where}: member {name!r} is corrupt: {e}") from None
    if len(raw) > limit:
        raise UnsafeModelError(f"{where}: member {name!r} is larger than declared")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{where}: member {name!r} is not valid JSON: {e}") from None
    except RecursionError:
        raise UnsafeModelError(f"{where}: member {name!r} is nested too deeply") from None


def _weights_payload(archive: zipfile.ZipFile, name: str, where: str) -> int:
    """Bytes of tensor data in the weights member, after checking it is plain data."""
    info = archive.getinfo(name)
    try:
        with archive.open(name) as f:
            if name.endswith(".h5"):
                needed, objects = _h5_payload(f, where)
                slack = H5_SLACK_BYTES + H5_SLACK_PER_OBJECT * objects
            else:
                needed, objects = _npz_payload(f, where)
                slack = 1024 * (objects + 1)
    except (UnsafeModelError, ModelFileError):
        raise
    except Exception as e:  # h5py and zipfile raise many types for damaged data
        raise ModelFileError(f"{where}: weights member {name!r} is corrupt: {e}") from None
    if info.file_size > needed + needed // 20 + slack:
        raise UnsafeModelError(
            f"{where}: weights member {name!r} declares {info.file_size} bytes but its "
            f"tensors need only {needed}; refusing an archive padded beyond its weights"
        )
    return needed


def _h5_payload(fileobj, where: str) -> tuple[int, int]:
    import h5py

    if not is_hdf5(fileobj.read(8)):
        raise ModelFileError(f"{where}: model.weights.h5 is not an HDF5 file")
    fileobj.seek(0)
    total = 0
    objects = 0
    visited = set()
    with h5py.File(fileobj, "r") as h5:
        pending = [h5]
        while pending:
            group = pending.pop()
            for key in group:
                if objects > MAX_H5_OBJECTS:
                    raise UnsafeModelError(f"{where}: the weights file holds too many objects")
                link = group.get(key, getlink=True)
                if isinstance(link, h5py.ExternalLink):
                    raise UnsafeModelError(
                        f"{where}: weights entry {group.name}/{key} links to an external "
                        f"file ({link.filename})"
                    )
                if isinstance(link, h5py.SoftLink):
                    raise UnsafeModelError(
                        f"{where}: weights entry {group.name}/{key} is a soft link"
                    )
                objects += 1
                item = group[key]
                address = h5py.h5o.get_info(item.id).addr
                if address in visited:
                    continue  # a second hard link to an object already counted
                visited.add(address)
                if isinstance(item, h5py.Group):
                    pending.append(item)
                    continue
                if item.is_virtual or item.external:
                    raise UnsafeModelError(
                        f"{where}: weights dataset {item.name} reads its data from other files"
                    )
                if item.compression is not None or item.dtype.hasobject:
                    raise UnsafeModelError(
                        f"{where}: weights dataset {item.name} is compressed or holds "
                        f"objects; Keras writes plain arrays"
                    )
                total += int(item.size) * item.dtype.itemsize
    return total, objects


def _npz_payload(fileobj, where: str) -> tuple[int, int]:
    import numpy as np

    data = fileobj.read()
    try:
        inner = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{where}: model.weights.npz is not a valid npz: {e}") from None
    total = 0
    with inner:
        infos = inner.infolist()
        _check_npz_members(infos, where)
        for info in infos:
            with inner.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                else:
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
            if dtype.hasobject:
                raise UnsafeModelError(
                    f"{where}: weights array {info.filename!r} holds Python objects (pickle)"
                )
            total += int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    return total, len(infos)


def _check_npz_members(infos, where):
    if len(infos) > 1_000_000:
        raise UnsafeModelError(f"{where}: model.weights.npz holds too many arrays")
    for info in infos:
        if info.file_size > 1024 * 1024 and info.file_size > MAX_EXPANSION * max(
            info.compress_size, 1
        ):
            raise UnsafeModelError(
                f"{where}: weights array {info.filename!r} is a decompression bomb"
            )


# --------------------------------------------------------------------- the config
def check_config(config: Any, custom_objects: Mapping[str, Any] | None = None,
                 where: str = "config") -> ConfigFindings:
    """Walks a serialized Keras config and refuses anything outside the allow-list.

    Returns the `module.class` names it found and the substitutions the loader must
    pass on (see `ConfigFindings`). Nothing is imported or called: classes are looked
    up among objects Keras has already registered or exported.
    """
    custom_objects = dict(custom_objects or {})
    bases = _allowed_base_classes()
    findings = ConfigFindings()
    found = findings.classes
    stack: list[tuple[Any, str, int]] = [(config, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise UnsafeModelError(f"{where}: the config is nested more than {MAX_JSON_DEPTH} deep")
        if isinstance(node, list):
            stack.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node))
            continue
        if not isinstance(node, dict):
            continue
        if "class_name" in node:
            if _backend_optimizer(node) is not None:
                node["module"] = "keras.optimizers"
                findings.rewritten.append(path or "<root>")
                found.add(f"keras.optimizers.{node['class_name']}")
            else:
                found.add(_check_object(node, path or "<root>", custom_objects, bases, where))
        stack.extend((v, f"{path}.{k}" if path else str(k), depth + 1) for k, v in node.items())
    return findings


_BACKEND_OPTIMIZER_MODULE = re.compile(r"^keras\.src\.backend\.[a-z_]+\.optimizers(\.[a-z_]+)?$")


def _backend_optimizer(node: dict):
    """The public optimizer class for a backend-specific optimizer entry, else None."""
    module, class_name = node.get("module"), node.get("class_name")
    if not isinstance(module, str) or not _BACKEND_OPTIMIZER_MODULE.match(module):
        return None
    if node.get("registered_name") not in (None, class_name):
        return None  # only the plain case; anything else goes through the normal checks
    public = getattr(keras.optimizers, class_name, None) if isinstance(class_name, str) else None
    if isinstance(public, type) and issubclass(public, keras.optimizers.Optimizer):
        return public
    return None


def _registered(name: Any, custom_objects: Mapping[str, Any]):
    if not isinstance(name, str):
        return None
    if name in custom_objects:
        return custom_objects[name]
    return keras.saving.get_registered_object(name)


def _export_lookup(module: str, name: str):
    from keras.src import api_export

    obj = api_export.get_symbol_from_name(f"{module}.{name}")
    if obj is None:
        # Only modules Keras has already imported; importing one could run code.
        mod = sys.modules.get(module)
        obj = getattr(mod, name, None) if mod is not None else None
    return obj


def _check_object(node: dict, path: str, custom_objects, bases, where: str) -> str:
    class_name = node.get("class_name")
    module = node.get("module")
    registered_name = node.get("registered_name")
    label = f"{where}: entry '{path}'"
    if not isinstance(class_name, str) or not (module is None or isinstance(module, str)):
        raise UnsafeModelError(f"{label} has a malformed class_name/module")
    if class_name == "__lambda__":
        raise UnsafeModelError(
            f"{label} is a Python lambda (serialized bytecode); refused, it would run code"
        )
    if class_name in _DATA_MARKERS:
        inner = node.get("config")
        if class_name == "__numpy__" and isinstance(inner, dict):
            if str(inner.get("dtype", "")).lower() in ("object", "o", "|o"):
                raise UnsafeModelError(f"{label} is a numpy array of Python objects")
        return class_name
    if class_name == "__typespec__":
        raise UnsafeModelError(f"{label} is a TensorFlow TypeSpec from {module!r}; refused")
    if class_name == "function":
        return _check_function(node, label, custom_objects)

    name = f"{module}.{class_name}" if module else class_name
    if class_name in DENIED_CLASSES:
        raise UnsafeModelError(
            f"{label} is a {class_name} layer ({name}); refused, it would run foreign code "
            f"or read foreign files"
        )
    obj = _registered(registered_name, custom_objects)
    if obj is None and isinstance(module, str) and (module == "keras" or module.startswith("keras.")):
        obj = _export_lookup(module, class_name)
    if obj is None:
        if module and module.split(".")[0] in ("keras_bigmodel", "zoo"):
            raise UnsafeModelError(
                f"{label} names {name}, which keras_bigmodel does not register"
            )
        raise UnsafeModelError(
            f"{label} names {name!s} (registered_name={registered_name!r}), which is neither "
            f"a Keras class, a keras_bigmodel class nor an object registered with Keras; "
            f"loading it would import module {module!r}"
        )
    if not (isinstance(obj, type) and issubclass(obj, bases)):
        raise UnsafeModelError(
            f"{label} names {name}, which is not a Keras modelling class (layer, model, loss, "
            f"metric, optimizer, initializer, ...); refused"
        )
    denied = [getattr(keras.layers, d, None) for d in DENIED_CLASSES]
    if any(d is not None and issubclass(obj, d) for d in denied):
        raise UnsafeModelError(
            f"{label} is a {obj.__name__} ({name}), a subclass of a layer that runs foreign "
            f"code; refused"
        )
    inner = node.get("config")
    if class_name in _PATH_VOCABULARY_CLASSES and isinstance(inner, dict):
        if isinstance(inner.get("vocabulary"), str):
            raise UnsafeModelError(
                f"{label} ({class_name}) reads its vocabulary from the file "
                f"{inner['vocabulary']!r}; refused"
            )
    return name


def _check_function(node: dict, label: str, custom_objects) -> str:
    module = node.get("module")
    fn_name = node.get("config")
    registered_name = node.get("registered_name")
    if module == "builtins":
        if not isinstance(fn_name, str):
            raise UnsafeModelError(f"{label} is a malformed function entry")
        for mod in _BUILTIN_FUNCTION_MODULES:
            obj = _export_lookup(f"keras.{mod}", fn_name)
            if callable(obj) and not isinstance(obj, type):
                return f"keras.{mod}.{fn_name}"
        if _registered(fn_name, custom_objects) is not None:
            return fn_name
        raise UnsafeModelError(
            f"{label} names the function {fn_name!r}, which is not a Keras activation, "
            f"loss or metric; refused"
        )
    if _registered(registered_name, custom_objects) is not None:
        return str(registered_name)
    if module in _ALLOWED_FUNCTION_MODULES and isinstance(registered_name, str):
        obj = _export_lookup(module, registered_name)
        if callable(obj) and not isinstance(obj, type):
            return f"{module}.{registered_name}"
    raise UnsafeModelError(
        f"{label} names the function {module}.{registered_name or fn_name}; only Keras's "
        f"activations, losses, metrics and ops and functions registered with Keras are "
        f"allowed (this refuses calls such as keras.config.enable_unsafe_deserialization)"
    )
