"""The loading process of the hostile-file tests (test_hostile_files.py starts one per
backend, side by side): `KERAS_BACKEND=... python load_child.py MANIFEST.json`.

1. Imports only keras_bigmodel and reloads a user's file with plain
   `keras.saving.load_model` (the package's layers are registered on import).
2. Loads every hostile file once (a warm-up: the first build of a layer type may import
   modules of the backend's own), records its peak memory (`ru_maxrss`) as the
   baseline, and caps its data segment 3 GB above that, so that an attack that got
   through would fail with MemoryError instead of exhausting the machine.
3. Loads every hostile file with `kbm.load_model`, each from its own directory made
   the working directory and put first on `sys.path` (where the attacks plant their
   modules), and records the error, the modules that appeared in `sys.modules`,
   whether the sentinel appeared, the safe-mode flag afterwards and the peak memory.
4. As a control, loads an unbacked file with plain Keras and records how much memory
   that allocates (the TensorFlow pass).
5. Writes the results (JSON), then, if asked, saves a model and stops at a known point
   of a second save, where the test kills it with SIGKILL.
"""

import json
import os
import resource
import sys
import time


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_case(case: dict, kbm, keras, _compat) -> dict:
    """Loads one hostile file from its own directory (cwd, first on sys.path)."""
    record = {"error": None, "mro": [], "message": "", "new_modules": []}
    began = time.time()
    home = os.getcwd()
    os.chdir(case["dir"])
    sys.path.insert(0, case["dir"])
    if case.get("unsafe_host"):
        keras.config.enable_unsafe_deserialization()
    record["safe_mode_before"] = _compat.in_safe_mode()
    before = set(sys.modules)
    try:
        kbm.load_model(case["path"], **case.get("kwargs", {}))
    except BaseException as e:  # every outcome is recorded and asserted
        record["error"] = type(e).__name__
        record["mro"] = [c.__name__ for c in type(e).__mro__]
        record["message"] = str(e)
    record["new_modules"] = sorted(set(sys.modules) - before)
    record["safe_mode_after"] = _compat.in_safe_mode()
    sys.path.remove(case["dir"])
    os.chdir(home)
    record["sentinel"] = os.path.exists(case["sentinel"])
    record["peak_mb"] = peak_mb()
    record["seconds"] = time.time() - began
    return record


def main(manifest_path: str) -> None:
    start = time.time()
    with open(manifest_path) as f:
        manifest = json.load(f)
    results = {"fresh": None, "cases": {}, "errors": [], "seconds": {}}

    import keras
    import numpy as np

    import keras_bigmodel as kbm  # registers the layers; nothing else of ours is imported

    results["seconds"]["import"] = time.time() - start
    fresh = manifest.get("fresh")
    if fresh:
        try:
            model = keras.saving.load_model(fresh["path"], safe_mode=True, compile=False)
            saved = np.load(fresh["weights"])
            expected = [saved[f"arr_{i}"] for i in range(len(saved.files))]
            loaded = model.get_weights()
            same = len(loaded) == len(expected) and all(
                a.shape == b.shape for a, b in zip(loaded, expected)
            )
            results["fresh"] = {
                "weights": len(loaded),
                "max_difference": max(float(np.abs(a - b).max()) for a, b in zip(loaded, expected))
                if same
                else float("inf"),
            }
        except Exception as e:  # reported, asserted by the test
            results["errors"].append(f"fresh: {type(e).__name__}: {e}")
    results["seconds"]["fresh"] = time.time() - start

    from keras_bigmodel import _compat

    # Warm-up: every case once, unmeasured (the first load of a layer type may import
    # modules of the backend's own); then the baseline.
    results["warmup_modules"] = {}
    for case in manifest["cases"]:
        if not case.get("unsafe_host"):
            before = set(sys.modules)
            run_case(case, kbm, keras, _compat)
            new = sorted(set(sys.modules) - before)
            if new:
                results["warmup_modules"][case["id"]] = new
    results["baseline_mb"] = peak_mb()
    results["seconds"]["warmup"] = time.time() - start
    data_bytes = int(open("/proc/self/statm").read().split()[5]) * resource.getpagesize()
    resource.setrlimit(resource.RLIMIT_DATA, (data_bytes + 3 * 2**30, resource.RLIM_INFINITY))

    for case in manifest["cases"]:
        results["cases"][case["id"]] = run_case(case, kbm, keras, _compat)
    results["seconds"]["cases"] = time.time() - start
    control = manifest.get("size_control")
    if control:
        # Control: plain Keras given an unbacked file (refused above) allocates what it
        # declares before it reads the weights. The resident size now, then the peak.
        with open("/proc/self/status") as f:
            resident = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        try:
            keras.saving.load_model(control, safe_mode=True, compile=False)
            results["size_control_error"] = None
        except Exception as e:  # Keras fails once it reads the weights; asserted
            results["size_control_error"] = type(e).__name__
        results["size_control_growth_mb"] = peak_mb() - resident / 1024
    tmp = manifest["results"] + ".part"
    with open(tmp, "w") as f:
        json.dump(results, f)
    os.replace(tmp, manifest["results"])
    print("RESULTS", flush=True)

    loop = manifest.get("save_loop")
    if loop:
        import hashlib

        inputs = keras.Input((1000,))
        model = keras.Model(inputs, keras.layers.Dense(4000)(inputs))  # 16 MB of weights
        digest = hashlib.sha256()
        for w in model.get_weights():
            digest.update(np.ascontiguousarray(w).tobytes())
        with open(loop["expected"], "w") as f:
            f.write(digest.hexdigest())
        kbm.save_model(model, loop["target"])
        print("SAVING", flush=True)
        # The next save stops at a known point: Keras has written the whole archive into
        # the temporary file, which is not yet renamed onto the target. The test kills
        # the process there (SIGKILL), deterministically.
        from keras_bigmodel import _compat

        write_archive = _compat.save_model_to_file

        def write_then_wait(model, f):
            write_archive(model, f)
            f.flush()
            print("MIDSAVE", flush=True)
            time.sleep(120)  # killed by the test long before

        _compat.save_model_to_file = write_then_wait
        kbm.save_model(model, loop["target"])


if __name__ == "__main__":
    main(sys.argv[1])
