"""Every hostile file is refused before anything in it runs: in one loading process per
backend pass (load_child.py), which also measures its peak memory; in the TensorFlow
pass it also reloads a file with plain Keras and is then killed in the middle of a save.

For each attack the tests check the error (type and message), that no module appeared
in `sys.modules` (the attacks plant `keras_hub`, `keras_cv`, `keras_nlp` and other
modules in the loader's working directory, first on `sys.path`), that no sentinel file
appeared, that no file in the attack's directory changed, and that the loader's peak
memory (`ru_maxrss`) stayed within a bound far below what any of the attacks would
make Keras allocate.
"""

import dataclasses
import json
import os
import re
import select
import signal
import subprocess
import sys
import time

import hostile
import keras
import numpy as np
import pytest
from sample_models import user_model

import keras_bigmodel as kbm
from keras_bigmodel import _compat

CHILD = os.path.join(os.path.dirname(__file__), "load_child.py")
UNSAFE, CORRUPT, TOO_LARGE = "UnsafeModelError", "ModelFileError", "ModelTooLargeError"
# Peak memory the loading process may gain over its warmed-up baseline while refusing
# every file below; each attack, let through, would make it allocate far more (the
# smallest, `unbacked_parameters`, 800 MB; most, gigabytes).
PEAK_MEMORY_BOUND_MB = 150


@dataclasses.dataclass(frozen=True)
class Case:
    builder: object
    error: str
    message: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    unsafe_host: bool = False  # the host called keras.config.enable_unsafe_deserialization()
    name: str = ""

    @property
    def id(self):
        return self.name or self.builder.__name__


CASES = [
    # 1. code, and modules Keras would import (planted in the working directory)
    Case(hostile.lambda_bytecode, UNSAFE, r"Lambda layer"),
    Case(
        hostile.foreign_module_import,
        UNSAFE,
        r"'config\.layers\[1\]' names the class evil_payload\.Boom .* neither part of Keras",
    ),
    Case(
        hostile.keras_hub_function_entry,
        UNSAFE,
        r"config\.activation' names keras_hub\.src\.payload\.gelu; Keras would import the "
        r"module 'keras_hub\.src\.payload', which is not imported",
    ),
    Case(
        hostile.keras_cv_initializer,
        UNSAFE,
        r"kernel_initializer' .*would import the module 'keras_cv\.initializers'",
    ),
    Case(
        hostile.keras_nlp_compile_loss,
        UNSAFE,
        r"'compile_config\.loss' .*would import the module 'keras_nlp\.losses'",
    ),
    Case(
        hostile.keras_src_not_imported,
        UNSAFE,
        r"would import the module 'keras\.src\.kbm_never_imported', which is not imported",
    ),
    Case(
        hostile.registered_name_mismatch,
        UNSAFE,
        r"says class_name='Boom' but its registered_name 'keras_bigmodel>AttentionLayer' "
        r"resolves to 'AttentionLayer'; the names disagree",
    ),
    Case(
        hostile.function_name_mismatch,
        UNSAFE,
        r"says registered_name='keras_bigmodel>AttentionLayer' but resolves to the Keras "
        r"built-in keras\.activations\.relu; the names disagree",
    ),
    Case(hostile.os_system_entry, UNSAFE, r"names the class os\.system"),
    Case(hostile.unsafe_mode_switch, UNSAFE, r"enable_unsafe_deserialization|Lambda layer"),
    Case(hostile.get_file_entry, UNSAFE, r"keras\.utils\.get_file, which is not a modelling"),
    Case(hostile.builtins_exec_function, UNSAFE, r"names the function 'exec', which is not"),
    Case(hostile.builtins_deserializer, UNSAFE, r"function keras\.\w+\.deserialize"),
    Case(hostile.tfsm_layer, UNSAFE, r"is a TFSMLayer layer"),
    Case(hostile.typespec_entry, UNSAFE, r"TypeSpec from 'keras_hub\.specs'"),
    Case(
        hostile.non_modelling_keras_class,
        UNSAFE,
        r"keras\.callbacks\.CSVLogger, which is not a Keras modelling class",
    ),
    # 4. options that read files, refused by the check whatever Keras's global flag says
    Case(
        hostile.integer_lookup_vocabulary_file,
        UNSAFE,
        r"\(IntegerLookup\) reads its vocabulary from the file '/etc/hostname'",
    ),
    Case(
        hostile.text_vectorization_file,
        UNSAFE,
        r"\(TextVectorization\) reads its vocabulary from the file '/etc/passwd'",
    ),
    Case(hostile.idf_weights_file, UNSAFE, r"reads its idf_weights from the file '/etc/passwd'"),
    # 2. sizes declared in the config
    Case(
        hostile.dense_1e9,
        TOO_LARGE,
        r"variables hold this many parameters \(4,000,000,0\d\d\), over the limit "
        r"max_params=300,000,000\. If you trust this file, raise the limit: "
        r"kbm\.load_model\(path, max_params=\.\.\.\)",
    ),
    Case(hostile.embedding_1e10, TOO_LARGE, r"\(80,000,000,0\d\d\), over the limit max_params="),
    Case(hostile.conv_4096, TOO_LARGE, r"\(805,306,4\d\d\), over the limit max_params="),
    Case(
        hostile.huge_build_config,
        TOO_LARGE,
        r"build_config at 'config\.layers\[1\]' declares a tensor shape .* over the limit "
        r"max_tensor_elements=67,108,864",
    ),
    Case(
        hostile.numpy_subarray_dtype,
        UNSAFE,
        r"'compile_config\.loss_weights' is an array of dtype '\(16000,16000\)f8'",
    ),
    Case(
        hostile.numpy_too_many_elements,
        TOO_LARGE,
        r"over the limit max_tensor_elements=1,000",
        kwargs={"max_tensor_elements": 1000},
    ),
    Case(
        hostile.unbacked_parameters,
        UNSAFE,
        r"declares 200,000,0\d\d parameters \(800,000,\d+ bytes\) but the weights file "
        r"stores only \d+ bytes",
    ),
    Case(hostile.five_thousand_layers, TOO_LARGE, r"over the limit max_layers=2,000"),
    Case(hostile.deep_json, TOO_LARGE, r"nested too deeply .* over the limit max_depth=100"),
    Case(hostile.json_container_bomb, UNSAFE, r"holds 2,500,\d+ JSON lists/objects"),
    Case(hostile.long_paths, CORRUPT, r"Keras could not rebuild the model"),
    Case(
        hostile.traversal_layer_name,
        UNSAFE,
        r"is named '\.\./\.\./\.\./\.\./kbm_evil', which holds a path separator",
    ),
    Case(hostile.backslash_layer_name, UNSAFE, r"which holds a path separator; refused"),
    Case(hostile.unbacked_parameters_small, UNSAFE, r"but the weights file stores only"),
    # 3. archives and weights files
    Case(hostile.legacy_hdf5, UNSAFE, r"legacy HDF5 full-model file"),
    Case(hostile.hdf5_named_keras, UNSAFE, r"legacy HDF5 full-model file"),
    Case(hostile.absolute_member, UNSAFE, r"absolute or '\.\.' path"),
    Case(
        hostile.dotdot_member,
        UNSAFE,
        r"'assets/\.\./\.\./escape\.txt' has an absolute or '\.\.' path",
    ),
    Case(hostile.duplicate_member, UNSAFE, r"'config\.json' appears more than once"),
    Case(hostile.unexpected_member, UNSAFE, r"unexpected member 'run_me\.py'"),
    Case(hostile.symlink_member, UNSAFE, r"'assets/link' is a symbolic link"),
    Case(hostile.many_members, TOO_LARGE, r"\(5,003\), over the limit max_members=4,096"),
    Case(hostile.lying_directory, UNSAFE, r"zip directory is 20,971,520 bytes"),
    Case(hostile.zip_bomb_asset, UNSAFE, r"'assets/bomb' expands .* decompression bomb"),
    Case(
        hostile.many_small_bzip2_assets,
        UNSAFE,
        r"1003 members expand from [\d,]+ to 10,\d{3},\d{3} bytes",
    ),
    Case(hostile.zip_bomb_config, TOO_LARGE, r"over the limit max_config_bytes=8,388,608"),
    Case(hostile.padded_weights, UNSAFE, r"padded beyond its weights"),
    Case(hostile.h5_external_link, UNSAFE, r"links to an external file \(/etc/passwd\)"),
    Case(hostile.h5_soft_link, UNSAFE, r"/layers/hidden/vars/soft is a soft link"),
    Case(hostile.h5_external_storage, UNSAFE, r"reads its data from other files"),
    Case(hostile.h5_compressed_dataset, UNSAFE, r"/layers/hidden/vars/huge is compressed"),
    Case(
        hostile.h5_fill_value,
        UNSAFE,
        r"/layers/dense/vars/0 declares 4,000,000,000 bytes but stores 0",
    ),
    Case(hostile.h5_hard_links_300k, UNSAFE, r"holds more than 1,2\d\d links and attributes"),
    Case(hostile.npz_pickled_weights, UNSAFE, r"'evil\.npy' holds Python objects"),
    Case(
        hostile.npz_shape_bomb,
        UNSAFE,
        r"'layers/hidden\.npy' declares 3,200,000,000 bytes but its member holds 0",
    ),
    Case(hostile.npz_deflate_bomb, UNSAFE, r"'layers/hidden\.npy' is a decompression bomb"),
    Case(hostile.encrypted_member, UNSAFE, r"'assets/secret' is encrypted"),
    Case(hostile.fifo_model, UNSAFE, r"is not a regular file"),
    Case(hostile.malformed_json, CORRUPT, r"'config\.json' is not valid JSON"),
    Case(hostile.weights_not_hdf5, CORRUPT, r"model\.weights\.h5 is not an HDF5 file"),
    Case(hostile.missing_config, CORRUPT, r"has no config\.json"),
    # last: it leaves the host's process-wide flag as the host set it (unsafe)
    Case(
        hostile.vocabulary_file,
        UNSAFE,
        r"\(StringLookup\) reads its vocabulary from the file '/etc/passwd'",
        unsafe_host=True,
        name="vocabulary_file_after_enable_unsafe_deserialization",
    ),
]
BY_ID = {c.id: c for c in CASES}


def _snapshot(directory):
    return {
        os.path.join(root, f): os.lstat(os.path.join(root, f)).st_mtime_ns
        for root, _, files in os.walk(directory)
        for f in files
    }


def _fresh_process_file(directory):
    """A user's model (every layer of the package around plain Keras layers), compiled
    and saved with kbm.save_model, and its weights."""
    model = user_model()
    model.compile("adam", {"label": "categorical_crossentropy", "score": "mse"})
    path = kbm.save_model(model, os.path.join(directory, "user.keras"))
    weights = os.path.join(directory, "weights.npz")
    np.savez(weights, *model.get_weights())
    return {"path": path, "weights": weights}


def _wait_for(proc, word, deadline):
    while time.time() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.5)
        if ready:
            line = proc.stdout.readline()
            if not line:
                return False
            if line.strip() == word:
                return True
        elif proc.poll() is not None:
            return False
    return False


BACKENDS = (keras.backend.backend(),)  # this pass's backend: one loading process each


def _start(root, backend, manifest):
    path = root / f"manifest-{backend}.json"
    path.write_text(json.dumps(manifest))
    stderr = open(root / f"stderr-{backend}.txt", "w+")
    proc = subprocess.Popen(
        [sys.executable, CHILD, str(path)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        cwd=str(root),
        env={**os.environ, "KERAS_BACKEND": backend},
    )
    return proc, stderr


def _kill_mid_save(proc, saves, deadline) -> bool:
    """SIGKILLs `proc` at a known point of a save: the archive written into the
    temporary file, not yet renamed onto the target (load_child.py stops there)."""
    for word in ("RESULTS", "SAVING", "MIDSAVE"):
        if not _wait_for(proc, word, deadline):
            return False
    temps = [n for n in os.listdir(saves) if ".kbm-tmp" in n]
    if len(temps) != 1 or os.path.getsize(saves / temps[0]) == 0:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    return True


@pytest.fixture(scope="module")
def children(tmp_path_factory):
    """The loading process of this pass's backend (with the fresh-process reload and the
    killed save in the TensorFlow pass: both are the same on every backend)."""
    root = tmp_path_factory.mktemp("hostile")
    cases, snapshots = [], {}
    for case in CASES:
        directory = root / case.id
        directory.mkdir()
        sentinel = directory / "SENTINEL"
        path = case.builder(str(directory), str(sentinel))
        assert not sentinel.exists()
        snapshots[case.id] = _snapshot(directory)
        cases.append(
            {
                "id": case.id,
                "path": path,
                "dir": str(directory),
                "sentinel": str(sentinel),
                "kwargs": case.kwargs,
                "unsafe_host": case.unsafe_host,
            }
        )
    (root / "fresh").mkdir()
    saves = root / "saves"
    saves.mkdir()
    started = {}
    for backend in BACKENDS:
        manifest = {"cases": cases, "results": str(root / f"results-{backend}.json")}
        if backend == "tensorflow":  # backend-independent checks, done once
            manifest["fresh"] = _fresh_process_file(str(root / "fresh"))
            manifest["size_control"] = next(
                c["path"] for c in cases if c["id"] == "unbacked_parameters_small"
            )
            manifest["save_loop"] = {
                "target": str(saves / "target.keras"),
                "expected": str(root / "expected.sha256"),
            }
        started[backend] = (*_start(root, backend, manifest), manifest["results"])
    kill = {"killed": False}
    results, logs = {}, {}
    try:
        deadline = time.time() + 300
        if "tensorflow" in started:
            kill["killed"] = _kill_mid_save(started["tensorflow"][0], saves, deadline)
    finally:
        for backend, (proc, stderr, results_path) in started.items():
            try:
                proc.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            stderr.seek(0)
            logs[backend] = stderr.read()[-4000:]
            stderr.close()
            if os.path.exists(results_path):
                results[backend] = json.loads(open(results_path).read())
    kill.update(
        after=sorted(os.listdir(saves)), saves=str(saves), expected=str(root / "expected.sha256")
    )
    return {"results": results, "snapshots": snapshots, "root": root, "kill": kill, "logs": logs}


def _results(children, backend):
    if backend not in children["results"]:
        pytest.fail(f"the {backend} loading process wrote no results:\n{children['logs'][backend]}")
    return children["results"][backend]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_loading_process_ran_cleanly(children, backend):
    results = _results(children, backend)
    assert results["errors"] == [], children["logs"][backend]
    # The unmeasured first pass over the files imports only the codec zipfile decodes
    # member names with (nothing of the backend's, nothing the files name).
    warmup = [m for names in results["warmup_modules"].values() for m in names]
    assert all(m.startswith("encodings.") for m in warmup), warmup


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case_id", list(BY_ID))
def test_hostile_file_is_refused_and_runs_nothing(children, backend, case_id):
    case = BY_ID[case_id]
    record = _results(children, backend)["cases"][case_id]
    assert record["error"] is not None, "the hostile file loaded"
    assert case.error in record["mro"], record
    assert "ValueError" in record["mro"], record
    assert re.search(case.message, record["message"]), record["message"]
    assert record["new_modules"] == [], "loading imported modules"
    assert not record["sentinel"], "the payload ran"
    directory = children["root"] / case_id
    assert _snapshot(directory) == children["snapshots"][case_id], "the load wrote files"
    if case.unsafe_host:  # forced on for our load, then the host's setting again
        assert record["safe_mode_before"] is False and record["safe_mode_after"] is False
    else:
        assert record["safe_mode_after"] is not False


@pytest.mark.parametrize("backend", BACKENDS)
def test_peak_memory_of_all_refusals_stays_bounded(children, backend):
    results = _results(children, backend)
    base = results["baseline_mb"]
    peaks = [(record["peak_mb"], case_id) for case_id, record in results["cases"].items()]
    growth = max(peaks)[0] - base
    steps, last = [], base
    for peak, case_id in peaks:
        if peak > last:
            steps.append(f"{case_id}: +{peak - last:.0f} MB")
            last = peak
    assert growth < PEAK_MEMORY_BOUND_MB, f"peak grew {growth:.0f} MB: {steps}"


@pytest.mark.tensorflow_only
def test_fresh_process_reloads_with_plain_keras(children):
    """A file saved by kbm.save_model reloads in a process that imported only
    keras_bigmodel, with plain `keras.saving.load_model` in safe mode, with every weight
    identical (the reloaded outputs are compared in test_backends and the harness)."""
    fresh = _results(children, "tensorflow")["fresh"]
    assert fresh is not None, children["results"]["tensorflow"]["errors"]
    assert fresh["weights"] > 10 and fresh["max_difference"] == 0.0, fresh


def _digest(weights) -> str:
    import hashlib

    digest = hashlib.sha256()
    for w in weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    return digest.hexdigest()


@pytest.mark.tensorflow_only
def test_save_killed_with_sigkill_keeps_the_previous_file(children):
    """A save killed in the middle leaves the previous file whole and at most one
    temporary file, which the next save into that directory removes."""
    kill = children["kill"]
    assert kill["killed"], f"no save in progress was caught: {kill}"
    temporaries = [n for n in kill["after"] if ".kbm-tmp" in n]
    assert "target.keras" in kill["after"] and len(temporaries) <= 1, kill["after"]
    target = os.path.join(kill["saves"], "target.keras")
    model = kbm.load_model(target)
    assert _digest(model.get_weights()) == open(kill["expected"]).read()
    kbm.save_model(hostile.benign_model(), os.path.join(kill["saves"], "next.keras"))
    assert sorted(os.listdir(kill["saves"])) == ["next.keras", "target.keras"]


def test_the_lambda_payload_is_live(tmp_path):
    """Control: the same file really runs code when loaded unsafely, so the refusal
    above is what protects the user."""
    sentinel = tmp_path / "SENTINEL"
    path = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    model = keras.saving.load_model(path, safe_mode=False)
    model(keras.ops.zeros((1, 4)))
    assert sentinel.exists()


def test_the_planted_module_is_live(tmp_path, monkeypatch):
    """Control: importing the planted `keras_hub` (as Keras would) runs it."""
    sentinel = tmp_path / "SENTINEL"
    hostile.keras_hub_function_entry(str(tmp_path), str(sentinel))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        __import__("keras_hub.src.payload")
        assert sentinel.exists()
    finally:
        for name in [m for m in sys.modules if m.split(".")[0] == "keras_hub"]:
            del sys.modules[name]


def _drop_modules(prefix):
    for name in [m for m in sys.modules if m.split(".")[0] == prefix]:
        del sys.modules[name]


def test_the_foreign_module_payload_is_live_but_keras_no_longer_imports_it(tmp_path, monkeypatch):
    """Control for class 1: the planted module runs its payload when imported (as Keras
    before its CVE-2025-1550 fix imported any module a config named); Keras 3.15 itself,
    with safe mode off, no longer imports it. The check refuses it either way."""
    sentinel = tmp_path / "SENTINEL"
    path = hostile.foreign_module_import(str(tmp_path), str(sentinel))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        with pytest.raises(Exception):  # noqa: B017 - what matters is what ran
            keras.saving.load_model(path, safe_mode=False)
        assert not sentinel.exists()
        __import__("evil_payload")
        assert sentinel.exists()
    finally:
        _drop_modules("evil_payload")


def test_the_vocabulary_file_payload_is_live(tmp_path):
    """Control for class 4 with plain Keras: the lookup layer the file declares, once
    deserialized with safe mode off, holds the lines of the local file it names."""
    path = hostile.vocabulary_file(str(tmp_path), str(tmp_path / "SENTINEL"))
    config = next(
        layer
        for layer in json.loads(dict(hostile.read_members_by_name(path))["config.json"])["config"][
            "layers"
        ]
        if layer["class_name"] == "StringLookup"
    )
    with _compat.safe_mode_scope(False):
        layer = keras.layers.deserialize(config)
    with open("/etc/passwd") as f:
        first = f.readline().rstrip("\n")
    assert first in layer.get_vocabulary()


@pytest.mark.tensorflow_only
def test_plain_keras_allocates_what_an_unbacked_file_declares(children):
    """Control for class 2: plain Keras, in safe mode, builds and initialises the 80 MB of
    variables the file declares before it finds the weights missing; kbm refuses the
    same file before anything is built (the case above)."""
    results = _results(children, "tensorflow")
    assert results["size_control_error"] is not None, "plain Keras loaded an unbacked file"
    assert results["size_control_growth_mb"] > 60, results["size_control_growth_mb"]
