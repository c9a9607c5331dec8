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

import dataclasses
import json
import os
import zipfile
from collections.abc import Mapping
from typing import Any, BinaryIO

from keras_bigmodel.security.budget import DeclaredSize, measure_declared_size
from keras_bigmodel.security.config_check import ConfigFindings, check_config
from keras_bigmodel.security.errors import ModelFileError, UnsafeModelError
from keras_bigmodel.security.guard import loading_guard
from keras_bigmodel.security.limits import LoadLimits, resolve_limits
from keras_bigmodel.security.weights_check import (
    H5_BASE_LINKS,
    H5_LINKS_PER_LAYER,
    H5_SLACK_BYTES,
    H5_SLACK_PER_LINK,
    hdf5_payload,
    is_hdf5,
    npz_payload,
)
from keras_bigmodel.security.zip_members import (
    JSON_MEMBERS,
    MAX_METADATA_BYTES,
    WEIGHT_MEMBERS,
    check_directory,
    check_members,
    open_member,
    read_json,
)

__all__ = ["ArchiveReport", "inspect_archive", "is_hdf5"]

# Bytes of variables a config may declare beyond what its weights file stores.
_DECLARED_SLACK = 64 * 1024


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
        check_directory(f, limits, where, "the archive")
        archive = zipfile.ZipFile(f, "r")
    except zipfile.BadZipFile as e:
        raise ModelFileError(f"{where} is not a valid .keras archive (zip): {e}") from None
    except (OSError, EOFError, ValueError) as e:
        if isinstance(e, ModelFileError):
            raise
        raise ModelFileError(f"{where} could not be read as a .keras archive: {e}") from None
    with archive:
        infos = archive.infolist()
        check_members(infos, limits, where)
        names = [i.filename for i in infos]
        weights = [n for n in names if n in WEIGHT_MEMBERS]
        if len(weights) != 1:
            raise ModelFileError(
                f"{where} must hold exactly one weights file ({' or '.join(WEIGHT_MEMBERS)}); "
                f"found {weights or 'none'}"
            )
        for required in JSON_MEMBERS:
            if required not in names:
                raise ModelFileError(f"{where} has no {required}; it is not a Keras model archive")
        metadata = read_json(archive, "metadata.json", MAX_METADATA_BYTES, where)
        if not isinstance(metadata, dict):
            raise ModelFileError(f"{where}: metadata.json must hold a JSON object")
        config = read_json(archive, "config.json", limits.max_config_bytes, where)
        if not isinstance(config, dict):
            raise ModelFileError(f"{where}: config.json must hold a JSON object")
        findings = check_config(config, custom_objects=custom_objects, where=where, limits=limits)
        info = archive.getinfo(weights[0])
        link_cap = H5_BASE_LINKS + H5_LINKS_PER_LAYER * max(findings.layers, 1)
        try:
            with open_member(archive, f, info, where) as reader:
                if info.filename.endswith(".h5"):
                    payload, links = hdf5_payload(reader, where, link_cap, limits)
                    slack = H5_SLACK_BYTES + H5_SLACK_PER_LINK * links
                else:
                    payload, links = npz_payload(reader, where, limits)
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
