"""Inspection of a `.keras` archive (zip) before Keras reads anything from it.

The archive is read as data: the zip directory (its size checked from the end record
before `zipfile` parses it), `metadata.json` and `config.json` (size-limited JSON), and
the weights file's structure (HDF5 or `.npz`), read in place through a window on the
archive (a stored member) or a bounded temporary copy (a compressed one), never as a
whole in memory. The work is linear in the file's size and memory stays bounded:
member counts, JSON sizes and nesting, HDF5 links and attributes are all capped before
they are walked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import math
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from typing import Any, BinaryIO

from keras_bigmodel.security.budget import DeclaredSize, measure_declared_size
from keras_bigmodel.security.config_check import ConfigFindings, check_config
from keras_bigmodel.security.errors import ModelFileError, UnsafeModelError
from keras_bigmodel.security.guard import loading_guard
from keras_bigmodel.security.limits import LoadLimits, resolve_limits

__all__ = ["ArchiveReport", "inspect_archive", "is_hdf5"]

MiB = 1024 * 1024
MAX_METADATA_BYTES = MiB
# Keras stores members uncompressed; expanding more than this is a decompression bomb.
MAX_EXPANSION = 100
# Below this, a member (or the whole archive) may expand freely (tiny JSON compresses well).
_EXPANSION_FLOOR = MiB
# An HDF5 file holds its tensors plus bookkeeping per link (object headers, B-trees).
H5_SLACK_BYTES = MiB
H5_SLACK_PER_LINK = 16 * 1024
# Links an HDF5 weights file may hold per layer the config declares (a layer's group,
# its `vars` group and one dataset per variable, nested layers and optimizer included).
H5_LINKS_PER_LAYER = 64
H5_BASE_LINKS = 1024
H5_MAX_ATTRIBUTES = 64
H5_MAX_ATTRIBUTE_BYTES = 64 * 1024
# Bytes of variables a config may declare beyond what its weights file stores.
_DECLARED_SLACK = 64 * 1024
# A compressed weights member is copied to memory up to this size, then to a temp file.
_SPOOL_IN_MEMORY = 64 * MiB

_WEIGHT_MEMBERS = ("model.weights.h5", "model.weights.npz")
_JSON_MEMBERS = ("config.json", "metadata.json")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


def is_hdf5(head: bytes) -> bool:
    """Whether `head` (a file's first bytes) starts an HDF5 file."""
    return head.startswith(_HDF5_MAGIC)


@dataclasses.dataclass
class ArchiveReport:
    """What the inspection found in an archive that it accepted.

    Attributes:
        members: Member names.
        weights_member: `model.weights.h5` or `model.weights.npz`.
        weights_bytes: Bytes of tensor data the weights file stores.
        stored_bytes: Bytes the members occupy in the archive.
        uncompressed_bytes: Bytes they expand to.
        keras_version: From `metadata.json`.
        classes: Qualified names of the objects the config names.
        rewritten_config: `config.json` to load instead, if entries were rewritten.
        declared: What the model's variables need (None if not measured).
        layers: Layers the config names.
        modules: Module names the config names (for the import guard).
    """

    members: list[str]
    weights_member: str
    weights_bytes: int
    stored_bytes: int
    uncompressed_bytes: int
    keras_version: str | None
    classes: list[str]
    rewritten_config: bytes | None
    declared: DeclaredSize | None = None
    layers: int = 0
    modules: frozenset = frozenset()


# ---------------------------------------------------------------- zip structure
def _central_directory(f: BinaryIO) -> tuple[int, int] | None:
    """(entries, size in bytes) of the zip central directory, read from its end record
    (zip64 too), before `zipfile` parses and holds every entry in memory."""
    f.seek(0, os.SEEK_END)
    size = f.tell()
    tail_size = min(size, 22 + 65535)
    f.seek(size - tail_size)
    tail = f.read(tail_size)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or at + 22 > len(tail):
        return None
    entries, cd_size = struct.unpack("<HI", tail[at + 10 : at + 16])
    if (
        (entries == 0xFFFF or cd_size == 0xFFFFFFFF)
        and at >= 20
        and tail[at - 20 : at - 16] == b"PK\x06\x07"
    ):
        (offset,) = struct.unpack("<Q", tail[at - 12 : at - 4])
        if offset < size:
            f.seek(offset)
            record = f.read(56)
            if len(record) == 56 and record[:4] == b"PK\x06\x06":
                entries, cd_size = struct.unpack("<QQ", record[32:48])
    return entries, cd_size


def _check_directory(f: BinaryIO, limits: LoadLimits, where: str, what: str) -> None:
    found = _central_directory(f)
    f.seek(0)
    if found is None:
        return  # not a zip: zipfile says so
    entries, cd_size = found
    if entries > limits.max_members:
        raise limits.exceeded("max_members", entries, f"{what} holds this many members", where)
    if cd_size > 1024 * limits.max_members + 65536:
        raise UnsafeModelError(
            f"{where}: {what}'s zip directory is {cd_size:,} bytes, far more than "
            f"{limits.max_members} members need"
        )


def _expands(file_size: int, compress_size: int) -> bool:
    return file_size > _EXPANSION_FLOOR and file_size > MAX_EXPANSION * max(compress_size, 1)


def _check_members(infos: list[zipfile.ZipInfo], limits: LoadLimits, where: str) -> None:
    if len(infos) > limits.max_members:
        raise limits.exceeded(
            "max_members", len(infos), "the archive holds this many members", where
        )
    seen = set()
    assets = 0
    total_size = total_stored = 0
    json_limits = {"config.json": limits.max_config_bytes, "metadata.json": MAX_METADATA_BYTES}
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
        if name in json_limits and info.file_size > json_limits[name]:
            limit = "max_config_bytes" if name == "config.json" else None
            if limit:
                raise limits.exceeded(
                    limit, info.file_size, f"member {name!r} declares this many bytes", where
                )
            raise UnsafeModelError(
                f"{where}: member {name!r} declares {info.file_size} bytes, over its "
                f"{MAX_METADATA_BYTES}-byte limit"
            )
        if (
            name in _WEIGHT_MEMBERS
            and limits.weights_bytes is not None
            and info.file_size > limits.weights_bytes
        ):
            raise limits.exceeded(
                "max_weights_bytes",
                info.file_size,
                f"the weights file {name!r} declares this many bytes",
                where,
            )
        if _expands(info.file_size, info.compress_size):
            raise UnsafeModelError(
                f"{where}: member {name!r} expands from {info.compress_size} to "
                f"{info.file_size} bytes (a decompression bomb)"
            )
        if name.startswith("assets/"):
            assets += info.file_size
        total_size += info.file_size
        total_stored += info.compress_size
    if assets > limits.max_asset_bytes:
        raise limits.exceeded(
            "max_asset_bytes", assets, "the files under assets/ declare this many bytes", where
        )
    if _expands(total_size, total_stored):
        raise UnsafeModelError(
            f"{where}: the archive's {len(infos)} members expand from {total_stored:,} to "
            f"{total_size:,} bytes (a decompression bomb, however it is split)"
        )


def _read_json(archive: zipfile.ZipFile, name: str, limit: int, where: str):
    try:
        with archive.open(name) as f:
            raw = f.read(limit + 1)
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, ValueError) as e:
        raise ModelFileError(f"{where}: member {name!r} is corrupt: {e}") from None
    if len(raw) > limit:
        raise UnsafeModelError(f"{where}: member {name!r} is larger than declared")
    # Parsing costs ~60-200 bytes of memory per JSON list or object: cap them at one per
    # 8 bytes of the size limit (a real config has one per ~50 bytes; a bomb made of
    # `[],` one per 3), so that parsing a config at the limit stays near 20x its size.
    containers = raw.count(b"[") + raw.count(b"{")
    if containers > limit // 8:
        raise UnsafeModelError(
            f"{where}: member {name!r} holds {containers:,} JSON lists/objects; refused "
            f"(at most {limit // 8:,}, one per 8 bytes of its size limit: parsing more "
            f"would take far more memory than a model config needs)"
        )
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise UnsafeModelError(f"{where}: member {name!r} is nested too deeply") from None
    except (UnicodeDecodeError, ValueError) as e:
        raise ModelFileError(f"{where}: member {name!r} is not valid JSON: {e}") from None


# ------------------------------------------------------------ reading a member
class _Window(io.RawIOBase):
    """A read-only, seekable view of `length` bytes at `start` of `f` (a stored zip
    member, read in place: seeking is free, unlike `zipfile`'s own reader)."""

    def __init__(self, f: BinaryIO, start: int, length: int):
        super().__init__()
        self._f, self._start, self._length, self._pos = f, start, length, 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def tell(self):
        return self._pos

    def seek(self, offset, whence=io.SEEK_SET):
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._length}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer):
        n = min(len(buffer), self._length - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)


@contextlib.contextmanager
def _open_member(
    archive: zipfile.ZipFile, f: BinaryIO, info: zipfile.ZipInfo, where: str
) -> Iterator[BinaryIO]:
    """A seekable reader of a member: a window for a stored member, else a bounded copy."""
    if info.compress_type == zipfile.ZIP_STORED:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(info.header_offset)
        header = f.read(30)
        if len(header) != 30 or header[:4] != b"PK\x03\x04":
            raise ModelFileError(f"{where}: member {info.filename!r} has no valid local header")
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        start = info.header_offset + 30 + name_length + extra_length
        if info.compress_size != info.file_size or start + info.file_size > size:
            raise ModelFileError(f"{where}: member {info.filename!r} is truncated or corrupt")
        yield _Window(f, start, info.file_size)
        return
    copy: BinaryIO = (
        io.BytesIO() if info.file_size <= _SPOOL_IN_MEMORY else (tempfile.TemporaryFile())
    )
    try:
        with archive.open(info) as source:
            shutil.copyfileobj(source, copy, MiB)
        copy.seek(0)
        yield copy
    finally:
        copy.close()


# --------------------------------------------------------------------- HDF5
def _h5_path(link) -> str:
    names = []
    while link is not None:
        link, name = link
        names.append(name)
    return "/" + "/".join(reversed(names))


def _h5_check_attributes(h5py, oid, where, link) -> int:
    count = h5py.h5a.get_num_attrs(oid)
    if count > H5_MAX_ATTRIBUTES:
        raise UnsafeModelError(
            f"{where}: weights entry {_h5_path(link)} has {count} attributes; Keras writes a few"
        )
    for index in range(count):
        attribute = h5py.h5a.open(oid, index=index)
        size = math.prod(attribute.shape or ()) * attribute.dtype.itemsize
        if size > H5_MAX_ATTRIBUTE_BYTES:
            raise UnsafeModelError(
                f"{where}: weights entry {_h5_path(link)} has a {size:,}-byte attribute"
            )
    return count


def _h5_dataset(h5py, dsid, where, link, limits: LoadLimits) -> int:
    dtype = dsid.dtype
    if dtype.hasobject:
        raise UnsafeModelError(
            f"{where}: weights dataset {_h5_path(link)} holds objects or variable-length "
            f"data; Keras writes plain arrays"
        )
    declared = math.prod(dsid.shape or ()) * dtype.itemsize
    plist = dsid.get_create_plist()
    if plist.get_layout() == getattr(h5py.h5d, "VIRTUAL", 3) or plist.get_external_count():
        raise UnsafeModelError(
            f"{where}: weights dataset {_h5_path(link)} reads its data from other files"
        )
    if plist.get_nfilters():
        raise UnsafeModelError(
            f"{where}: weights dataset {_h5_path(link)} is compressed or filtered; Keras "
            f"writes plain arrays (a compressed dataset can expand far beyond the file)"
        )
    if limits.weights_bytes is not None and declared > limits.weights_bytes:
        raise limits.exceeded(
            "max_weights_bytes",
            declared,
            f"the weights dataset {_h5_path(link)} declares this many bytes",
            where,
        )
    stored = dsid.get_storage_size()
    if stored < declared:
        raise UnsafeModelError(
            f"{where}: weights dataset {_h5_path(link)} declares {declared:,} bytes but "
            f"stores {stored:,}; refused (the rest would be fill values that reading "
            f"allocates without the file paying for them)"
        )
    return declared


def _h5_payload(reader: BinaryIO, where: str, link_cap: int, limits: LoadLimits) -> tuple[int, int]:
    """(bytes of tensor data, links) of an HDF5 weights file, after checking that it is
    plain data: hard links only, no external or virtual storage, no filters, every
    dataset fully stored, links and attributes capped (counted from each group's
    header before its links are walked)."""
    import h5py

    if not is_hdf5(reader.read(8)):
        raise ModelFileError(f"{where}: model.weights.h5 is not an HDF5 file")
    reader.seek(0)
    total = links = 0
    with h5py.File(reader, "r") as h5:
        root = h5py.h5g.open(h5.id, b"/")
        visited = {h5py.h5o.get_info(root).addr}
        stack = [(root, None)]
        while stack:
            gid, link = stack.pop()
            links += gid.get_num_objs() + _h5_check_attributes(h5py, gid, where, link)
            if links > link_cap:
                raise UnsafeModelError(
                    f"{where}: the weights file holds more than {link_cap:,} links and "
                    f"attributes, far more than the config's layers need; refused"
                )
            entries: list = []
            gid.links.iterate(
                lambda name, info, into=entries: into.append((name, info.type)), info=True
            )
            for name, kind in entries:
                child = (link, name.decode("utf-8", "replace"))
                if kind == h5py.h5l.TYPE_EXTERNAL:
                    value = gid.links.get_val(name)
                    raise UnsafeModelError(
                        f"{where}: weights entry {_h5_path(child)} links to an external "
                        f"file ({value[0].decode('utf-8', 'replace')})"
                    )
                if kind == h5py.h5l.TYPE_SOFT:
                    raise UnsafeModelError(
                        f"{where}: weights entry {_h5_path(child)} is a soft link"
                    )
                if kind != h5py.h5l.TYPE_HARD:
                    raise UnsafeModelError(
                        f"{where}: weights entry {_h5_path(child)} is a user-defined link"
                    )
                oid = h5py.h5o.open(gid, name)
                address = h5py.h5o.get_info(oid).addr
                if address in visited:
                    continue  # another hard link to an object already checked
                visited.add(address)
                if isinstance(oid, h5py.h5g.GroupID):
                    stack.append((oid, child))
                elif isinstance(oid, h5py.h5d.DatasetID):
                    links += _h5_check_attributes(h5py, oid, where, child)
                    total += _h5_dataset(h5py, oid, where, child, limits)
                    if limits.weights_bytes is not None and total > limits.weights_bytes:
                        raise limits.exceeded(
                            "max_weights_bytes",
                            total,
                            "the weights file's datasets declare this many bytes",
                            where,
                        )
                else:
                    raise UnsafeModelError(
                        f"{where}: weights entry {_h5_path(child)} is neither a group nor a dataset"
                    )
    return total, links


# ----------------------------------------------------------------------- npz
def _npz_payload(reader: BinaryIO, where: str, limits: LoadLimits) -> tuple[int, int]:
    """(bytes of array data, arrays) of an `.npz` weights file, reading only each array's
    header, and refusing arrays that declare more than they store or hold objects."""
    import numpy as np

    _check_directory(reader, limits, where, "model.weights.npz")
    try:
        inner = zipfile.ZipFile(reader)
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{where}: model.weights.npz is not a valid npz: {e}") from None
    total = 0
    with inner:
        infos = inner.infolist()
        if len(infos) > limits.max_members:
            raise limits.exceeded(
                "max_members", len(infos), "model.weights.npz holds this many arrays", where
            )
        for info in infos:
            if _expands(info.file_size, info.compress_size):
                raise UnsafeModelError(
                    f"{where}: weights array {info.filename!r} is a decompression bomb"
                )
            with inner.open(info) as member:
                version = np.lib.format.read_magic(member)
                read_header = (
                    np.lib.format.read_array_header_1_0
                    if version == (1, 0)
                    else np.lib.format.read_array_header_2_0
                )
                shape, _, dtype = read_header(member)
                header = member.tell()
            if dtype.hasobject:
                raise UnsafeModelError(
                    f"{where}: weights array {info.filename!r} holds Python objects (pickle)"
                )
            declared = math.prod(shape) * dtype.itemsize
            if header + declared > info.file_size:
                raise UnsafeModelError(
                    f"{where}: weights array {info.filename!r} declares {declared:,} bytes "
                    f"but its member holds {info.file_size - header:,}"
                )
            total += declared
    return total, len(infos)


# ---------------------------------------------------------------------- main
def inspect_archive(
    source: str | os.PathLike | BinaryIO,
    custom_objects: Mapping[str, Any] | None = None,
    where: str = "",
    limits: LoadLimits | None = None,
    measure: bool = True,
) -> ArchiveReport:
    """Checks a `.keras` archive before Keras deserializes anything from it.

    In order: the zip directory's size; every member (names, links, encryption, sizes,
    expansion of each and of the whole); `metadata.json`; `config.json` (size,
    containers, then every object in it, see `check_config`); the weights file's
    structure and the bytes it stores; then, if `limits.max_params` is set and `measure`
    is true, the model's variables counted by building it in a `keras.StatelessScope`
    (see `budget`), which must fit `max_params` and be backed by the bytes the weights
    file stores.

    Args:
        source: A path or a seekable binary file object (left open).
        custom_objects: Objects the caller trusts, as for `keras.saving.load_model`.
        where: How to name the file in error messages.
        limits: The `LoadLimits` (default: `DEFAULT_LIMITS`).
        measure: Whether to count the variables (needs Keras to build the model).

    Returns:
        An `ArchiveReport`.

    Raises:
        UnsafeModelError: The archive holds something outside the allow-list, or more
            than a limit allows (`ModelTooLargeError`, which names the limit).
        ModelFileError: The archive is corrupt or not a Keras archive.

    Example:

    ```python
    report = inspect_archive("model.keras")
    print(report.declared.params, report.classes)
    ```
    """
    limits = resolve_limits(limits)
    if isinstance(source, (str, os.PathLike)):
        from keras_bigmodel.fileio import open_regular

        with open_regular(source, follow_symlinks=True) as f:
            return inspect_archive(f, custom_objects, where or os.fspath(source), limits, measure)
    where = where or getattr(source, "name", "<file>")
    try:
        return _inspect(source, dict(custom_objects or {}), str(where), limits, measure)
    except (MemoryError, RecursionError) as e:
        raise UnsafeModelError(
            f"{where}: checking the file exhausted {type(e).__name__}; refused"
        ) from None


def _inspect(
    f: BinaryIO, custom_objects: dict, where: str, limits: LoadLimits, measure: bool
) -> ArchiveReport:
    try:
        _check_directory(f, limits, where, "the archive")
        archive = zipfile.ZipFile(f, "r")
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{where} is not a valid .keras archive (zip): {e}") from None
    except (OSError, EOFError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{where} could not be read as a .keras archive: {e}") from None
    with archive:
        infos = archive.infolist()
        _check_members(infos, limits, where)
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
        metadata = _read_json(archive, "metadata.json", MAX_METADATA_BYTES, where)
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{where}: metadata.json must hold a JSON object")
        config = _read_json(archive, "config.json", limits.max_config_bytes, where)
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: config.json must hold a JSON object")
        findings = check_config(config, custom_objects=custom_objects, where=where, limits=limits)
        info = archive.getinfo(weights[0])
        link_cap = H5_BASE_LINKS + H5_LINKS_PER_LAYER * max(findings.layers, 1)
        try:
            with _open_member(archive, f, info, where) as reader:
                if info.filename.endswith(".h5"):
                    payload, links = _h5_payload(reader, where, link_cap, limits)
                    slack = H5_SLACK_BYTES + H5_SLACK_PER_LINK * links
                else:
                    payload, links = _npz_payload(reader, where, limits)
                    slack = 1024 * (links + 1)
        except (UnsafeModelError, ModelFileError, MemoryError, RecursionError):
            raise
        except Exception as e:  # h5py and zipfile raise many types for damaged data
            raise ModelFileError(
                f"{where}: weights member {info.filename!r} is corrupt: {e}"
            ) from None
        if info.file_size > payload + payload // 20 + slack:
            raise UnsafeModelError(
                f"{where}: weights member {info.filename!r} declares {info.file_size:,} bytes "
                f"but its tensors need only {payload:,}; refusing an archive padded beyond "
                f"its weights"
            )
        declared = None
        if measure and limits.max_params is not None:
            declared = _measure(config, findings, custom_objects, where, limits, payload)
        rewritten = json.dumps(config).encode() if findings.rewritten else None
        return ArchiveReport(
            members=names,
            weights_member=weights[0],
            weights_bytes=payload,
            stored_bytes=sum(i.compress_size for i in infos),
            uncompressed_bytes=sum(i.file_size for i in infos),
            keras_version=metadata.get("keras_version"),
            classes=sorted(findings.classes),
            rewritten_config=rewritten,
            declared=declared,
            layers=findings.layers,
            modules=frozenset(findings.modules),
        )


def _measure(
    config: dict,
    findings: ConfigFindings,
    custom_objects,
    where: str,
    limits: LoadLimits,
    payload: int,
) -> DeclaredSize:
    with loading_guard(findings.modules, where) as blocker:
        declared = measure_declared_size(config, findings, custom_objects, where, blocker)
    if declared.params > limits.max_params:
        raise limits.exceeded(
            "max_params", declared.params, "the model's variables hold this many parameters", where
        )
    if declared.bytes > payload + _DECLARED_SLACK:
        raise UnsafeModelError(
            f"{where}: the config declares {declared.params:,} parameters "
            f"({declared.bytes:,} bytes) but the weights file stores only {payload:,} bytes; "
            f"refused (Keras would allocate and initialise them all before reading the "
            f"weights, for memory the file does not pay for)"
        )
    return declared
