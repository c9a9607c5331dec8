"""Builders of hostile model files, one per attack, made by the tests themselves.

Each builder takes the directory to write into and the path of a sentinel file that
its payload creates if any of it ever runs, and returns the path of the hostile file.
"""

from __future__ import annotations

import io
import json
import os
import zipfile

import h5py
import keras
import numpy as np


def benign_model() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden), name="benign")


def benign_archive(directory) -> str:
    path = os.path.join(directory, "benign.keras")
    model = benign_model()
    model.compile("adam", "mse")
    model.save(path)
    return path


def read_members(path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def write_members(path, members, compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            info.compress_type = compression
            zf.writestr(info, data)
    return path


def with_config(directory, name, edit) -> str:
    """A copy of the benign archive whose config.json went through `edit(config)`."""
    members = []
    for info, data in read_members(benign_archive(directory)):
        if info.filename == "config.json":
            config = json.loads(data)
            edit(config)
            data = json.dumps(config).encode()
        members.append((info.filename, data))
    return write_members(os.path.join(directory, name), members)


def _layers(config):
    return config["config"]["layers"]


def touch_code(sentinel) -> str:
    return f"__import__('pathlib').Path({str(sentinel)!r}).touch()"


# ------------------------------------------------------------------- the attacks
def lambda_bytecode(directory, sentinel) -> str:
    """CVE-2024-3660: a Lambda layer carries marshalled Python bytecode."""
    payload = eval(f"lambda t: ({touch_code(sentinel)}, t)[1]")  # noqa: S307 (test payload)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(payload, name="evil")(inputs))
    path = os.path.join(directory, "lambda.keras")
    model.save(path)
    os.remove(sentinel)  # building the model ran the lambda once; the file is what matters
    return path


def foreign_module_import(directory, sentinel) -> str:
    """CVE-2025-1550: config.json names a module outside Keras, imported at load."""
    with open(os.path.join(directory, "evil_payload.py"), "w") as f:
        f.write(f"{touch_code(sentinel)}\nclass Boom:\n    pass\n")

    def edit(config):
        layer = _layers(config)[1]
        layer.update({"module": "evil_payload", "class_name": "Boom", "registered_name": None})

    return with_config(directory, "import.keras", edit)


def os_system_entry(directory, sentinel) -> str:
    """A config entry that resolves to os.system, called with a shell command."""

    def edit(config):
        _layers(config)[1].update({
            "module": "os", "class_name": "system", "registered_name": None,
            "config": f"touch {sentinel}",
        })

    return with_config(directory, "os_system.keras", edit)


def unsafe_mode_switch(directory, sentinel) -> str:
    """CVE-2025-9906: turn safe mode off from inside the file, then a Lambda runs."""
    lambda_file = lambda_bytecode(directory, sentinel)
    members = []
    for info, data in read_members(lambda_file):
        if info.filename == "config.json":
            config = json.loads(data)
            switch = {"module": "keras.config", "class_name": "function",
                      "config": "enable_unsafe_deserialization",
                      "registered_name": "enable_unsafe_deserialization"}
            config["config"]["layers"][0]["config"]["switch"] = switch
            data = json.dumps(config).encode()
        members.append((info.filename, data))
    return write_members(os.path.join(directory, "switch.keras"), members)


def get_file_entry(directory, sentinel) -> str:
    """CVE-2025-8747: a function entry that makes Keras download/overwrite a file."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "keras.utils", "class_name": "function", "config": "get_file",
            "registered_name": "get_file",
        }

    return with_config(directory, "get_file.keras", edit)


def builtins_exec_function(directory, sentinel) -> str:
    """A `builtins` function entry naming something that is not a Keras built-in."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "builtins", "class_name": "function", "config": "exec",
            "registered_name": "function",
        }

    return with_config(directory, "builtins_exec.keras", edit)


def tfsm_layer(directory, sentinel) -> str:
    """A TFSMLayer loads (and runs the ops of) a SavedModel from any path."""

    def edit(config):
        _layers(config)[1].update({"module": "keras.layers", "class_name": "TFSMLayer",
                                   "config": {"filepath": str(directory), "name": "hidden"}})

    return with_config(directory, "tfsm.keras", edit)


def vocabulary_file(directory, sentinel) -> str:
    """A StringLookup whose vocabulary is a path: loading it reads a local file."""

    def edit(config):
        _layers(config)[1].update({"module": "keras.layers", "class_name": "StringLookup",
                                   "config": {"vocabulary": "/etc/passwd", "name": "hidden"}})

    return with_config(directory, "vocabulary.keras", edit)


def non_modelling_keras_class(directory, sentinel) -> str:
    """A Keras-module entry that is not a modelling class (a file-writing utility)."""

    def edit(config):
        _layers(config)[1].update({"module": "keras.callbacks", "class_name": "CSVLogger",
                                   "config": {"filename": str(sentinel)}})

    return with_config(directory, "callback.keras", edit)


def legacy_hdf5(directory, sentinel) -> str:
    """CVE-2025-9905: legacy HDF5 full models ignore safe_mode (a Lambda inside)."""
    payload = eval(f"lambda t: ({touch_code(sentinel)}, t)[1]")  # noqa: S307 (test payload)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(payload)(inputs))
    path = os.path.join(directory, "legacy.h5")
    model.save(path)
    os.remove(sentinel)
    return path


def hdf5_named_keras(directory, sentinel) -> str:
    """The same legacy file under a .keras name: detected by content, not name."""
    src = legacy_hdf5(directory, sentinel)
    dst = os.path.join(directory, "disguised.keras")
    os.replace(src, dst)
    return dst


def _benign_with_extra(directory, name, extra, compression=zipfile.ZIP_STORED) -> str:
    members = [(i.filename, d) for i, d in read_members(benign_archive(directory))]
    return write_members(os.path.join(directory, name), members + extra, compression)


def absolute_member(directory, sentinel) -> str:
    return _benign_with_extra(directory, "absolute.keras", [(str(sentinel), b"x")])


def dotdot_member(directory, sentinel) -> str:
    return _benign_with_extra(directory, "dotdot.keras", [("assets/../../escape.txt", b"x")])


def duplicate_member(directory, sentinel) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we want
        return _benign_with_extra(directory, "duplicate.keras", [("config.json", b"{}")])


def unexpected_member(directory, sentinel) -> str:
    return _benign_with_extra(directory, "unexpected.keras", [("run_me.py", b"print(1)")])


def symlink_member(directory, sentinel) -> str:
    info = zipfile.ZipInfo("assets/link")
    info.external_attr = (0o120777 << 16)  # a symbolic link to /etc/passwd
    return _benign_with_extra(directory, "symlink.keras", [(info, b"/etc/passwd")])


def many_members(directory, sentinel) -> str:
    extra = [(f"assets/f{i}", b"") for i in range(5000)]
    return _benign_with_extra(directory, "many.keras", extra)


def zip_bomb_asset(directory, sentinel) -> str:
    extra = [("assets/bomb", bytes(40 * 1024 * 1024))]  # 40 MiB of zeros, ~40 KiB deflated
    return _benign_with_extra(directory, "bomb.keras", extra, zipfile.ZIP_DEFLATED)


def zip_bomb_config(directory, sentinel) -> str:
    members = []
    for info, data in read_members(benign_archive(directory)):
        if info.filename == "config.json":
            data = data[:-1] + b" " * (80 * 1024 * 1024) + data[-1:]
        members.append((info.filename, data))
    return write_members(os.path.join(directory, "config_bomb.keras"), members,
                         zipfile.ZIP_DEFLATED)


def padded_weights(directory, sentinel) -> str:
    members = []
    for info, data in read_members(benign_archive(directory)):
        if info.filename == "model.weights.h5":
            data = data + bytes(8 * 1024 * 1024)  # far beyond what 23 weights need
        members.append((info.filename, data))
    return write_members(os.path.join(directory, "padded.keras"), members)


def _benign_with_weights(directory, name, make_h5) -> str:
    members = []
    for info, data in read_members(benign_archive(directory)):
        if info.filename == "model.weights.h5":
            buffer = io.BytesIO(data)
            with h5py.File(buffer, "a") as h5:
                make_h5(h5)
            data = buffer.getvalue()
        members.append((info.filename, data))
    return write_members(os.path.join(directory, name), members)


def h5_external_link(directory, sentinel) -> str:
    def make(h5):
        h5["layers/hidden/vars/leak"] = h5py.ExternalLink("/etc/passwd", "/")
    return _benign_with_weights(directory, "external_link.keras", make)


def h5_external_storage(directory, sentinel) -> str:
    outside = os.path.join(directory, "outside.bin")
    np.zeros(4, "float32").tofile(outside)

    def make(h5):
        h5.create_dataset("layers/hidden/vars/ext", shape=(4,), dtype="float32",
                          external=[(outside, 0, 16)])
    return _benign_with_weights(directory, "external_storage.keras", make)


def h5_compressed_dataset(directory, sentinel) -> str:
    def make(h5):
        h5.create_dataset("layers/hidden/vars/huge", data=np.zeros((2048, 2048), "float32"),
                          compression="gzip")
    return _benign_with_weights(directory, "h5_bomb.keras", make)


def npz_pickled_weights(directory, sentinel) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, evil=np.array([{"a": 1}], dtype=object))
    members = [(i.filename, d) for i, d in read_members(benign_archive(directory))
               if i.filename != "model.weights.h5"]
    members.append(("model.weights.npz", buffer.getvalue()))
    return write_members(os.path.join(directory, "pickle.keras"), members)


def deep_json(directory, sentinel) -> str:
    """A config nested 5000 lists deep (written as text: json.dumps would recurse)."""
    members = []
    for info, data in read_members(benign_archive(directory)):
        if info.filename == "config.json":
            data = b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b", " + data[1:]
        members.append((info.filename, data))
    return write_members(os.path.join(directory, "deep.keras"), members)


def malformed_json(directory, sentinel) -> str:
    members = [(i.filename, b"{not json" if i.filename == "config.json" else d)
               for i, d in read_members(benign_archive(directory))]
    return write_members(os.path.join(directory, "malformed.keras"), members)


def weights_not_hdf5(directory, sentinel) -> str:
    members = [(i.filename, b"garbage" * 100 if i.filename == "model.weights.h5" else d)
               for i, d in read_members(benign_archive(directory))]
    return write_members(os.path.join(directory, "not_h5.keras"), members)


def missing_config(directory, sentinel) -> str:
    members = [(i.filename, d) for i, d in read_members(benign_archive(directory))
               if i.filename != "config.json"]
    return write_members(os.path.join(directory, "no_config.keras"), members)


def encrypted_member(directory, sentinel) -> str:
    """A member flagged as encrypted (zipfile cannot write one, so the flag is patched)."""
    path = _benign_with_extra(directory, "encrypted.keras", [("assets/secret", b"x")])
    data = bytearray(open(path, "rb").read())
    name = b"assets/secret"
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (at := data.find(signature, start)) != -1:
            if data[at + name_at: at + name_at + len(name)] == name:
                data[at + flags_at] |= 0x1
            start = at + 4
    with open(path, "wb") as f:
        f.write(data)
    return path
