"""The structure of a `.keras` archive's weights file (HDF5 or `.npz`), read in place.

HDF5: hard links only (counted from each group's header before they are walked), no
external, virtual, compressed or partly stored (fill-value) dataset, a few small
attributes per object. `.npz`: read member by member, header only; every array backed
by its bytes, no object arrays. Both return what the file stores, which the loader
compares with what the config declares.
"""

from __future__ import annotations

import math
import zipfile
from typing import BinaryIO

from keras_bigmodel.security.errors import ModelFileError, UnsafeModelError
from keras_bigmodel.security.limits import LoadLimits
from keras_bigmodel.security.zip_members import check_directory, expands

__all__ = [
    "H5_BASE_LINKS",
    "H5_LINKS_PER_LAYER",
    "H5_SLACK_BYTES",
    "H5_SLACK_PER_LINK",
    "hdf5_payload",
    "is_hdf5",
    "npz_payload",
]

MiB = 1024 * 1024
# An HDF5 file holds its tensors plus bookkeeping per link (object headers, B-trees).
H5_SLACK_BYTES = MiB
H5_SLACK_PER_LINK = 16 * 1024
# Links an HDF5 weights file may hold per layer the config declares (a layer's group,
# its `vars` group and one dataset per variable, nested layers and optimizer included).
H5_LINKS_PER_LAYER = 64
H5_BASE_LINKS = 1024
H5_MAX_ATTRIBUTES = 64
H5_MAX_ATTRIBUTE_BYTES = 64 * 1024
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


def is_hdf5(head: bytes) -> bool:
    """Whether `head` (a file's first bytes) starts an HDF5 file."""
    return head.startswith(_HDF5_MAGIC)


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


def hdf5_payload(
    reader: BinaryIO, where: str, link_cap: int, limits: LoadLimits
) -> tuple[int, int]:
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
def npz_payload(reader: BinaryIO, where: str, limits: LoadLimits) -> tuple[int, int]:
    """(bytes of array data, arrays) of an `.npz` weights file, reading only each array's
    header, and refusing arrays that declare more than they store or hold objects."""
    import numpy as np

    check_directory(reader, limits, where, "model.weights.npz")
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
            if expands(info.file_size, info.compress_size):
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
