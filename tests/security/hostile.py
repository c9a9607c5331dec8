"""Builders of hostile model files, one per attack, made by the tests themselves.

Each builder takes the directory to write into and the path of a sentinel file that its
payload creates if any of it ever runs, and returns the path of the hostile file.
Builders that plant Python modules put them in that directory, which the loading
process puts first on `sys.path` (and makes its working directory), as `python -m`,
Jupyter and scripts do.
"""

from __future__ import annotations

import functools
import io
import json
import os
import struct
import zipfile

import h5py
import keras
import numpy as np


def benign_model() -> keras.Model:
    inputs = keras.Input((4,), name="x")
    hidden = keras.layers.Dense(3, activation="relu", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(hidden), name="benign")


@functools.lru_cache(maxsize=1)
def _benign_members() -> tuple:
    """The members of the benign model's archive (built once per process)."""
    import tempfile

    model = benign_model()
    model.compile("adam", "mse")
    with tempfile.TemporaryDirectory() as tmp:
        model.save(os.path.join(tmp, "benign.keras"))
        with zipfile.ZipFile(os.path.join(tmp, "benign.keras")) as zf:
            return tuple((info.filename, zf.read(info)) for info in zf.infolist())


def benign_archive(directory) -> str:
    """The benign model (Dense(3) -> Dense(2), compiled), saved into `directory`."""
    return write_members(os.path.join(directory, "benign.keras"), list(_benign_members()))


def read_members(path) -> list[tuple[zipfile.ZipInfo, bytes]]:
    with zipfile.ZipFile(path) as zf:
        return [(info, zf.read(info)) for info in zf.infolist()]


def read_members_by_name(path) -> list[tuple[str, bytes]]:
    return [(info.filename, data) for info, data in read_members(path)]


def write_members(path, members, compression=zipfile.ZIP_STORED) -> str:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members:
            info = name if isinstance(name, zipfile.ZipInfo) else zipfile.ZipInfo(name)
            info.compress_type = compression
            zf.writestr(info, data)
    return path


def _member(name):
    return dict(_benign_members())[name]


def benign_config() -> dict:
    return json.loads(_member("config.json"))


def with_config(directory, name, edit, weights=None) -> str:
    """A copy of the benign archive whose config.json went through `edit(config)` (and
    whose weights file is `weights`, if given)."""
    members = []
    for member, data in _benign_members():
        if member == "config.json":
            config = json.loads(data)
            edit(config)
            data = json.dumps(config).encode()
        if member == "model.weights.h5" and weights is not None:
            data = weights
        members.append((member, data))
    return write_members(os.path.join(directory, name), members)


def _layers(config):
    return config["config"]["layers"]


def touch_code(sentinel) -> str:
    return f"__import__('pathlib').Path({str(sentinel)!r}).touch()"


def plant(directory, module: str, sentinel, body: str = "") -> None:
    """Writes `module` (dotted: packages get an `__init__.py`) under `directory`; every
    file touches the sentinel when imported."""
    parts = module.split(".")
    path = directory
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if last and i > 0:
            target = os.path.join(path, part + ".py")
        else:
            path = os.path.join(path, part)
            os.makedirs(path, exist_ok=True)
            target = os.path.join(path, "__init__.py")
        with open(target, "w") as f:
            f.write(f"{touch_code(sentinel)}\n{body if last else ''}\n")


# ------------------------------------------------- code and foreign modules (1)
def lambda_bytecode(directory, sentinel) -> str:
    """CVE-2024-3660: a Lambda layer carries marshalled Python bytecode."""
    payload = eval(f"lambda t: ({touch_code(sentinel)}, t)[1]")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Lambda(payload, name="evil")(inputs))
    path = os.path.join(directory, "lambda.keras")
    model.save(path)
    os.remove(sentinel)  # building the model ran the lambda once; the file is what matters
    return path


def foreign_module_import(directory, sentinel) -> str:
    """CVE-2025-1550: config.json names a module outside Keras."""
    plant(directory, "evil_payload", sentinel, "class Boom:\n    pass")

    def edit(config):
        _layers(config)[1].update(
            {"module": "evil_payload", "class_name": "Boom", "registered_name": None}
        )

    return with_config(directory, "import.keras", edit)


def keras_hub_function_entry(directory, sentinel) -> str:
    """The issue's case 1: a function entry whose registered_name is a registered object
    (so a check trusting it passes) while Keras resolves it by config and module, and
    imports `keras_hub.*` (here planted in the working directory) to find it."""
    plant(directory, "keras_hub.src.payload", sentinel, "def gelu(x):\n    return x")

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "keras_hub.src.payload",
            "class_name": "function",
            "config": "gelu",
            "registered_name": "keras_bigmodel>AttentionLayer",
        }

    return with_config(directory, "keras_hub_function.keras", edit)


def keras_cv_initializer(directory, sentinel) -> str:
    """A class entry (an initializer) from a planted `keras_cv`."""
    plant(directory, "keras_cv.initializers", sentinel, "class Evil:\n    pass")

    def edit(config):
        _layers(config)[1]["config"]["kernel_initializer"] = {
            "module": "keras_cv.initializers",
            "class_name": "Evil",
            "config": {},
            "registered_name": None,
        }

    return with_config(directory, "keras_cv_initializer.keras", edit)


def keras_nlp_compile_loss(directory, sentinel) -> str:
    """A compile loss from a planted `keras_nlp` (compile_config is deserialized too)."""
    plant(directory, "keras_nlp.losses", sentinel, "def evil(y, p):\n    return p")

    def edit(config):
        config["compile_config"]["loss"] = {
            "module": "keras_nlp.losses",
            "class_name": "function",
            "config": "evil",
            "registered_name": "evil",
        }

    return with_config(directory, "keras_nlp_loss.keras", edit)


def keras_src_not_imported(directory, sentinel) -> str:
    """A `keras.src.*` module that is not imported (Keras would import it by name)."""

    def edit(config):
        _layers(config)[1].update(
            {
                "module": "keras.src.kbm_never_imported",
                "class_name": "Dense",
                "registered_name": "Dense",
            }
        )

    return with_config(directory, "keras_src.keras", edit)


def registered_name_mismatch(directory, sentinel) -> str:
    """A class entry whose registered_name resolves to a registered class while its
    class_name and module say something else: the names disagree."""
    plant(directory, "keras_hub.evil", sentinel, "class Boom:\n    pass")

    def edit(config):
        _layers(config)[1].update(
            {
                "module": "keras_hub.evil",
                "class_name": "Boom",
                "registered_name": "keras_bigmodel>AttentionLayer",
            }
        )

    return with_config(directory, "mismatch.keras", edit)


def function_name_mismatch(directory, sentinel) -> str:
    """A function entry resolving to a Keras activation by config, with a registered_name
    naming something else."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "keras.activations",
            "class_name": "function",
            "config": "relu",
            "registered_name": "keras_bigmodel>AttentionLayer",
        }

    return with_config(directory, "function_mismatch.keras", edit)


def os_system_entry(directory, sentinel) -> str:
    """A config entry that resolves to os.system, called with a shell command."""

    def edit(config):
        _layers(config)[1].update(
            {
                "module": "os",
                "class_name": "system",
                "registered_name": None,
                "config": f"touch {sentinel}",
            }
        )

    return with_config(directory, "os_system.keras", edit)


def unsafe_mode_switch(directory, sentinel) -> str:
    """CVE-2025-9906: turn safe mode off from inside the file, then a Lambda runs."""
    lambda_file = lambda_bytecode(directory, sentinel)
    members = []
    for info, data in read_members(lambda_file):
        if info.filename == "config.json":
            config = json.loads(data)
            switch = {
                "module": "keras.config",
                "class_name": "function",
                "config": "enable_unsafe_deserialization",
                "registered_name": "enable_unsafe_deserialization",
            }
            config["config"]["layers"][0]["config"]["switch"] = switch
            data = json.dumps(config).encode()
        members.append((info.filename, data))
    return write_members(os.path.join(directory, "switch.keras"), members)


def get_file_entry(directory, sentinel) -> str:
    """CVE-2025-8747: a function entry that makes Keras download/overwrite a file."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "keras.utils",
            "class_name": "function",
            "config": "get_file",
            "registered_name": "get_file",
        }

    return with_config(directory, "get_file.keras", edit)


def builtins_exec_function(directory, sentinel) -> str:
    """A `builtins` function entry naming something that is not a Keras built-in."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "exec",
            "registered_name": "function",
        }

    return with_config(directory, "builtins_exec.keras", edit)


def builtins_deserializer(directory, sentinel) -> str:
    """A `builtins` function entry naming a Keras `deserialize` (not a computation)."""

    def edit(config):
        _layers(config)[1]["config"]["activation"] = {
            "module": "builtins",
            "class_name": "function",
            "config": "deserialize",
            "registered_name": "function",
        }

    return with_config(directory, "builtins_deserialize.keras", edit)


def tfsm_layer(directory, sentinel) -> str:
    """A TFSMLayer loads (and runs the ops of) a SavedModel from any path."""

    def edit(config):
        _layers(config)[1].update(
            {
                "module": "keras.layers",
                "class_name": "TFSMLayer",
                "config": {"filepath": str(directory), "name": "hidden"},
            }
        )

    return with_config(directory, "tfsm.keras", edit)


def typespec_entry(directory, sentinel) -> str:
    plant(directory, "keras_hub.specs", sentinel, "class Spec:\n    pass")

    def edit(config):
        _layers(config)[1]["config"]["spec"] = {
            "class_name": "__typespec__",
            "spec_name": "Spec",
            "module": "keras_hub.specs",
            "config": [],
            "registered_name": None,
        }

    return with_config(directory, "typespec.keras", edit)


def non_modelling_keras_class(directory, sentinel) -> str:
    """A Keras-module entry that is not a modelling class (a file-writing utility)."""

    def edit(config):
        _layers(config)[1].update(
            {
                "module": "keras.callbacks",
                "class_name": "CSVLogger",
                "config": {"filename": str(sentinel)},
            }
        )

    return with_config(directory, "callback.keras", edit)


# ------------------------------------------------------------- file options (4)
def _renamed_layer(directory, file_name, new_name) -> str:
    """The benign model with its `hidden` layer (and every reference to it) renamed."""
    members = []
    for member, data in _benign_members():
        if member == "config.json":
            data = data.replace(b'"hidden"', json.dumps(new_name).encode())
        members.append((member, data))
    return write_members(os.path.join(directory, file_name), members)


def traversal_layer_name(directory, sentinel) -> str:
    """CVE-2026-12479's mechanism: a layer named like a path out of the store
    (`../../../../x`); Keras builds asset paths from layer names."""
    return _renamed_layer(directory, "traversal_name.keras", "../../../../kbm_evil")


def backslash_layer_name(directory, sentinel) -> str:
    """The same with Windows separators, which Keras's own name check lets through."""
    return _renamed_layer(directory, "backslash_name.keras", "..\\..\\kbm_evil")


def _lookup_layer(directory, name, class_name, config):
    def edit(cfg):
        _layers(cfg)[1].update(
            {
                "module": "keras.layers",
                "class_name": class_name,
                "config": {"name": "hidden", **config},
                "registered_name": None,
            }
        )

    return with_config(directory, name, edit)


def vocabulary_file(directory, sentinel) -> str:
    """A StringLookup whose vocabulary is a path: loading it reads a local file."""
    return _lookup_layer(
        directory, "vocabulary.keras", "StringLookup", {"vocabulary": "/etc/passwd"}
    )


def integer_lookup_vocabulary_file(directory, sentinel) -> str:
    return _lookup_layer(
        directory, "int_vocabulary.keras", "IntegerLookup", {"vocabulary": "/etc/hostname"}
    )


def text_vectorization_file(directory, sentinel) -> str:
    return _lookup_layer(
        directory, "text_vectorization.keras", "TextVectorization", {"vocabulary": "/etc/passwd"}
    )


def idf_weights_file(directory, sentinel) -> str:
    return _lookup_layer(
        directory,
        "idf.keras",
        "StringLookup",
        {"vocabulary": ["a", "b"], "output_mode": "tf_idf", "idf_weights": "/etc/passwd"},
    )


# ------------------------------------------------------------------ sizes (2)
def _sized(directory, name, index, edit_layer):
    def edit(config):
        edit_layer(_layers(config)[index]["config"], _layers(config)[index])

    return with_config(directory, name, edit)


def dense_1e9(directory, sentinel) -> str:
    """A 4 KB file declaring Dense(10**9): 5 * 10**9 parameters."""
    return _sized(directory, "dense_1e9.keras", 2, lambda c, e: c.update(units=10**9))


def embedding_1e10(directory, sentinel) -> str:
    """Embedding(10**10, 8) in place of the first Dense."""

    def edit(config, entry):
        entry.update(
            {
                "class_name": "Embedding",
                "config": {"name": "hidden", "input_dim": 10**10, "output_dim": 8},
            }
        )
        entry["build_config"] = {"input_shape": [None, 4]}

    def edit_all(config):
        edit(None, _layers(config)[1])
        _layers(config)[2]["build_config"] = {"input_shape": [None, 4, 8]}

    return with_config(directory, "embedding_1e10.keras", edit_all)


def conv_4096(directory, sentinel) -> str:
    """A 4096x4096 convolution kernel (16 filters) on a 4096x4096x3 input."""

    def edit(config):
        layers = _layers(config)
        layers[0]["config"]["batch_shape"] = [None, 4096, 4096, 3]
        layers[1].update(
            {
                "class_name": "Conv2D",
                "config": {"name": "hidden", "filters": 16, "kernel_size": [4096, 4096]},
            }
        )
        layers[1]["build_config"] = {"input_shape": [None, 4096, 4096, 3]}
        for layer in layers[1:]:
            for node in layer["inbound_nodes"]:
                node["args"][0]["config"]["shape"] = [None, 4096, 4096, 3]
        layers[2]["build_config"] = {"input_shape": [None, 1, 1, 16]}

    return with_config(directory, "conv_4096.keras", edit)


def huge_build_config(directory, sentinel) -> str:
    """A build_config declaring a 10**12-element input."""

    def edit(config, entry):
        entry["build_config"] = {"input_shape": [None, 10**6, 10**6]}

    return _sized(directory, "build_config.keras", 1, edit)


def numpy_subarray_dtype(directory, sentinel) -> str:
    """A `__numpy__` of dtype `(16000,16000)f8`: one element is a 2 GB sub-array, which
    NumPy allocates while the compile config is deserialized."""

    def edit(config):
        config["compile_config"]["loss_weights"] = {
            "class_name": "__numpy__",
            "config": {"value": [1], "dtype": "(16000,16000)f8"},
        }

    return with_config(directory, "numpy_dtype.keras", edit)


def numpy_too_many_elements(directory, sentinel) -> str:
    """A `__numpy__` spelling out more elements than `max_tensor_elements` allows (the
    test lowers the limit so that the file stays small)."""

    def edit(config):
        config["compile_config"]["loss_weights"] = {
            "class_name": "__numpy__",
            "config": {"value": [0] * 5000, "dtype": "float64"},
        }

    return with_config(directory, "numpy_elements.keras", edit)


def unbacked_parameters(directory, sentinel) -> str:
    """Dense(50_000_000): 800 MB of float32 variables, within max_params, that the 1 KB
    weights file does not store; Keras would allocate and initialise them all."""
    return _sized(directory, "unbacked.keras", 2, lambda c, e: c.update(units=50_000_000))


def unbacked_parameters_small(directory, sentinel) -> str:
    """Dense(5_000_000): 80 MB of float32 variables the weights file does not store;
    small enough for plain Keras to load as a control of what the check prevents."""
    return _sized(directory, "unbacked-small.keras", 2, lambda c, e: c.update(units=5_000_000))


def five_thousand_layers(directory, sentinel) -> str:
    """5,000 layers (500 KB of config)."""

    def edit(config):
        layer = {
            "module": "keras.layers",
            "class_name": "Dense",
            "config": {"name": "d", "units": 1},
            "registered_name": None,
        }
        _layers(config).extend(dict(layer) for _ in range(5000))

    return with_config(directory, "layers_5000.keras", edit)


def long_paths(directory, sentinel) -> str:
    """Nesting 90 deep under 200-character keys (a checker that spells out every
    node's path holds megabytes of strings); the junk makes Keras fail cleanly."""
    junk: dict = {}
    node = junk
    for _ in range(90):
        node["k" * 200] = {}
        node = node["k" * 200]
    return _sized(directory, "long_paths.keras", 1, lambda c, e: c.update(junk=junk))


def deep_json(directory, sentinel) -> str:
    """A config nested 150 objects deep (written as text: json.dumps would recurse)."""
    members = []
    for name, data in _benign_members():
        if name == "config.json":
            data = b'{"deep": ' + b'{"abcdefgh": ' * 150 + b"1" + b"}" * 150 + b", " + data[1:]
        members.append((name, data))
    return write_members(os.path.join(directory, "deep.keras"), members)


def json_container_bomb(directory, sentinel) -> str:
    """7.5 MB of `[],` (under max_config_bytes): 2.5 million lists, ~1 GB to parse."""
    members = []
    for name, data in _benign_members():
        if name == "config.json":
            data = b'{"bomb": [' + b"[]," * 2_500_000 + b"[]], " + data[1:]
        members.append((name, data))
    return write_members(os.path.join(directory, "json_bomb.keras"), members)


# ------------------------------------------------------------- archives (3)
def _benign_with_extra(directory, name, extra, compression=zipfile.ZIP_STORED) -> str:
    return write_members(
        os.path.join(directory, name), list(_benign_members()) + extra, compression
    )


def legacy_hdf5(directory, sentinel) -> str:
    """CVE-2025-9905: legacy HDF5 full models ignore safe_mode (a Lambda inside)."""
    payload = eval(f"lambda t: ({touch_code(sentinel)}, t)[1]")
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
    info.external_attr = 0o120777 << 16  # a symbolic link to /etc/passwd
    return _benign_with_extra(directory, "symlink.keras", [(info, b"/etc/passwd")])


def many_members(directory, sentinel) -> str:
    extra = [(f"assets/f{i}", b"") for i in range(5000)]
    return _benign_with_extra(directory, "many.keras", extra)


def lying_directory(directory, sentinel) -> str:
    """An end record claiming 2 entries over a 20 MB central directory (zipfile would
    parse every entry in it)."""
    path = _benign_with_extra(directory, "lying.keras", [(f"assets/f{i}", b"") for i in range(9)])
    data = bytearray(open(path, "rb").read())
    at = data.rfind(b"PK\x05\x06")
    data[at + 8 : at + 12] = struct.pack("<HH", 2, 2)
    data[at + 12 : at + 16] = struct.pack("<I", 20 * 1024 * 1024)
    with open(path, "wb") as f:
        f.write(data)
    return path


def zip_bomb_asset(directory, sentinel) -> str:
    extra = [("assets/bomb", bytes(4 * 1024 * 1024))]  # 4 MiB of zeros, ~4 KiB deflated
    return _benign_with_extra(directory, "bomb.keras", extra, zipfile.ZIP_DEFLATED)


def many_small_bzip2_assets(directory, sentinel) -> str:
    """1,000 bzip2 assets of 10 KB of zeros each: none is over 1 MiB, together they
    expand 10 MB from ~50 KB."""
    extra = [(f"assets/a{i}", bytes(10 * 1024)) for i in range(1000)]
    return _benign_with_extra(directory, "bzip2_assets.keras", extra, zipfile.ZIP_BZIP2)


def zip_bomb_config(directory, sentinel) -> str:
    members = []
    for name, data in _benign_members():
        if name == "config.json":
            data = data[:-1] + b" " * (9 * 1024 * 1024) + data[-1:]  # over 8 MiB
        members.append((name, data))
    return write_members(
        os.path.join(directory, "config_bomb.keras"), members, zipfile.ZIP_DEFLATED
    )


def padded_weights(directory, sentinel) -> str:
    members = []
    for name, data in _benign_members():
        if name == "model.weights.h5":
            data = data + bytes(8 * 1024 * 1024)  # far beyond what 23 weights need
        members.append((name, data))
    return write_members(os.path.join(directory, "padded.keras"), members)


def _benign_with_weights(
    directory, name, make_h5, compression=zipfile.ZIP_STORED, libver=None
) -> str:
    members = []
    for member, data in _benign_members():
        if member == "model.weights.h5":
            buffer = io.BytesIO(data)
            with h5py.File(buffer, "a", libver=libver) as h5:
                make_h5(h5)
            data = buffer.getvalue()
        members.append((member, data))
    return write_members(os.path.join(directory, name), members, compression)


def h5_external_link(directory, sentinel) -> str:
    def make(h5):
        h5["layers/hidden/vars/leak"] = h5py.ExternalLink("/etc/passwd", "/")

    return _benign_with_weights(directory, "external_link.keras", make)


def h5_soft_link(directory, sentinel) -> str:
    def make(h5):
        h5["layers/hidden/vars/soft"] = h5py.SoftLink("/layers/out/vars/0")

    return _benign_with_weights(directory, "soft_link.keras", make)


def h5_external_storage(directory, sentinel) -> str:
    outside = os.path.join(directory, "outside.bin")
    np.zeros(4, "float32").tofile(outside)

    def make(h5):
        h5.create_dataset(
            "layers/hidden/vars/ext", shape=(4,), dtype="float32", external=[(outside, 0, 16)]
        )

    return _benign_with_weights(directory, "external_storage.keras", make)


def h5_compressed_dataset(directory, sentinel) -> str:
    def make(h5):
        h5.create_dataset(
            "layers/hidden/vars/huge", data=np.zeros((2048, 2048), "float32"), compression="gzip"
        )

    return _benign_with_weights(directory, "h5_bomb.keras", make)


def h5_fill_value(directory, sentinel) -> str:
    """A 4 GB dataset that was never written: it stores nothing, and reading it returns
    (allocates) fill values."""

    def make(h5):
        del h5["layers/dense/vars/0"]
        h5.create_dataset("layers/dense/vars/0", shape=(10**9,), dtype="float32")

    return _benign_with_weights(directory, "fill_value.keras", make)


def _cached(key: str, make) -> bytes:
    """Bytes that take seconds to build and depend on no backend, kept between the test
    runs of the three backends (in the system's temporary directory, keyed by version)."""
    import hashlib
    import tempfile

    version = hashlib.sha256(f"{key}|{h5py.__version__}|{np.__version__}|v1".encode())
    path = os.path.join(
        tempfile.gettempdir(), f"keras-bigmodel-tests-{os.getuid()}-{version.hexdigest()[:16]}"
    )
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        data = make()
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return data


def h5_hard_links_300k(directory, sentinel) -> str:
    """300,000 hard links (300 groups of 1,000, copied by HDF5 itself; ~2 s to build, so
    the weights file is cached between backend runs)."""

    def make(h5):
        source = h5.create_group("layers/hidden/vars/many")
        source["x"] = np.zeros(1, "float32")
        for i in range(999):
            source.id.links.create_hard(b"%d" % i, source.id, b"x")
        group = h5.create_group("layers/hidden/copies")
        for j in range(299):
            h5py.h5o.copy(source.id, b".", group.id, b"c%d" % j)

    def weights():
        buffer = io.BytesIO(_member("model.weights.h5"))
        with h5py.File(buffer, "a", libver="earliest") as h5:
            make(h5)
        return buffer.getvalue()

    members = [
        (n, _cached("links_300k", weights) if n == "model.weights.h5" else d)
        for n, d in _benign_members()
    ]
    return write_members(os.path.join(directory, "links_300k.keras"), members)


def npz_pickled_weights(directory, sentinel) -> str:
    buffer = io.BytesIO()
    np.savez(buffer, evil=np.array([{"a": 1}], dtype=object))
    return _with_npz(directory, "pickle.keras", buffer.getvalue())


def _with_npz(directory, name, npz_bytes) -> str:
    members = [(n, d) for n, d in _benign_members() if n != "model.weights.h5"]
    members.append(("model.weights.npz", npz_bytes))
    return write_members(os.path.join(directory, name), members)


def npz_shape_bomb(directory, sentinel) -> str:
    """An npz array whose header declares (20000, 20000) float64 (3.2 GB) over a member
    that stores only the header: NumPy allocates the declared array before reading."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (20000, 20000)}
    )
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w") as zf:
        zf.writestr("layers/hidden.npy", header.getvalue())
    return _with_npz(directory, "npz_shape.keras", npz.getvalue())


def npz_deflate_bomb(directory, sentinel) -> str:
    """An npz array of 8 MB of zeros, deflated to ~8 KB inside the npz."""
    npz = io.BytesIO()
    with zipfile.ZipFile(npz, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("layers/hidden.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array_header_1_0(
                member, {"descr": "<f8", "fortran_order": False, "shape": (1_000_000,)}
            )
            member.write(bytes(8_000_000))
    return _with_npz(directory, "npz_deflate.keras", npz.getvalue())


def malformed_json(directory, sentinel) -> str:
    members = [(n, b"{not json" if n == "config.json" else d) for n, d in _benign_members()]
    return write_members(os.path.join(directory, "malformed.keras"), members)


def weights_not_hdf5(directory, sentinel) -> str:
    members = [
        (n, b"garbage" * 100 if n == "model.weights.h5" else d) for n, d in _benign_members()
    ]
    return write_members(os.path.join(directory, "not_h5.keras"), members)


def missing_config(directory, sentinel) -> str:
    members = [(n, d) for n, d in _benign_members() if n != "config.json"]
    return write_members(os.path.join(directory, "no_config.keras"), members)


def encrypted_member(directory, sentinel) -> str:
    """A member flagged as encrypted (zipfile cannot write one, so the flag is patched)."""
    path = _benign_with_extra(directory, "encrypted.keras", [("assets/secret", b"x")])
    data = bytearray(open(path, "rb").read())
    name = b"assets/secret"
    for signature, flags_at, name_at in ((b"PK\x03\x04", 6, 30), (b"PK\x01\x02", 8, 46)):
        start = 0
        while (at := data.find(signature, start)) != -1:
            if data[at + name_at : at + name_at + len(name)] == name:
                data[at + flags_at] |= 0x1
            start = at + 4
    with open(path, "wb") as f:
        f.write(data)
    return path


def fifo_model(directory, sentinel) -> str:
    """A FIFO named like a model: opening it to read would block forever."""
    path = os.path.join(directory, "fifo.keras")
    os.mkfifo(path)
    return path
