"""The zip structure of a `.keras` archive, read as data before `zipfile` trusts it.

The central directory's size is checked from the end record before `zipfile` parses
it; members are checked by name (no absolute or `..` paths, links, duplicates or
encryption; only what Keras writes), by size and by expansion (a member, or the archive
as a whole, that expands more than `MAX_EXPANSION` times is a bomb); JSON members are
read with a size limit; a weights member is opened in place through a window on the
archive (stored) or as a bounded copy (compressed).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from typing import BinaryIO

from keras_bigmodel.security.errors import ModelFileError, UnsafeModelError
from keras_bigmodel.security.limits import LoadLimits

__all__ = [
    "JSON_MEMBERS",
    "MAX_EXPANSION",
    "MAX_METADATA_BYTES",
    "WEIGHT_MEMBERS",
    "check_directory",
    "check_members",
    "expands",
    "open_member",
    "read_json",
]

MiB = 1024 * 1024
MAX_METADATA_BYTES = MiB
# Keras stores members uncompressed; expanding more than this is a decompression bomb.
MAX_EXPANSION = 100
# Below this, a member (or the whole archive) may expand freely (tiny JSON compresses well).
_EXPANSION_FLOOR = MiB
# A compressed weights member is copied to memory up to this size, then to a temp file.
_SPOOL_IN_MEMORY = 64 * MiB

WEIGHT_MEMBERS = ("model.weights.h5", "model.weights.npz")
JSON_MEMBERS = ("config.json", "metadata.json")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:")


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


def check_directory(f: BinaryIO, limits: LoadLimits, where: str, what: str) -> None:
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


def expands(file_size: int, compress_size: int) -> bool:
    return file_size > _EXPANSION_FLOOR and file_size > MAX_EXPANSION * max(compress_size, 1)


def check_members(infos: list[zipfile.ZipInfo], limits: LoadLimits, where: str) -> None:
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
        if not (name in JSON_MEMBERS or name in WEIGHT_MEMBERS or name.startswith("assets/")):
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
            name in WEIGHT_MEMBERS
            and limits.weights_bytes is not None
            and info.file_size > limits.weights_bytes
        ):
            raise limits.exceeded(
                "max_weights_bytes",
                info.file_size,
                f"the weights file {name!r} declares this many bytes",
                where,
            )
        if expands(info.file_size, info.compress_size):
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
    if expands(total_size, total_stored):
        raise UnsafeModelError(
            f"{where}: the archive's {len(infos)} members expand from {total_stored:,} to "
            f"{total_size:,} bytes (a decompression bomb, however it is split)"
        )


def read_json(archive: zipfile.ZipFile, name: str, limit: int, where: str):
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
def open_member(
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
