"""Runtimes you can serve from: one onnxruntime session or LiteRT interpreter per
file, fed like the Keras model (an array, a list, or a dict by input name; any batch
size), answering with outputs named like the model's.

`open_runtime(path)` works on every Keras backend (it needs `onnxruntime` or
`ai-edge-litert`, not TensorFlow). `run_onnx` / `run_tflite` are one-call forms.
"""

from __future__ import annotations

import os

import numpy as np

from keras_bigmodel.validation import check_path, check_positive_int

__all__ = [
    "RUNTIME_RECORD",
    "Runtime",
    "RuntimeModel",
    "as_feed",
    "load_runtime_model",
    "open_runtime",
    "run_onnx",
    "run_tflite",
    "runtime_file",
    "runtime_record",
    "write_runtime_record",
]

RUNTIME_SUFFIXES = (".onnx", ".tflite")


def as_feed(names: list[str], inputs, what: str = "inputs") -> dict:
    """`inputs` (an array for a one-input model, a list/tuple in the order of `names`,
    or a dict by input name) as `{name: float32 array}`."""
    if isinstance(inputs, dict):
        feed = dict(inputs)
    elif isinstance(inputs, (list, tuple)) and len(names) > 1:
        if len(inputs) != len(names):
            raise ValueError(
                f"`{what}` must hold {len(names)} arrays for the inputs {names}. Received "
                f"a {type(inputs).__name__} of {len(inputs)}"
            )
        feed = dict(zip(names, inputs))
    elif len(names) == 1:
        feed = {names[0]: inputs}
    else:
        raise ValueError(
            f"The model takes several inputs; pass a dict keyed by {sorted(names)} (or a "
            f"list in that order: {names}) as `{what}`"
        )
    unknown = sorted(set(feed) - set(names))
    if unknown:
        raise ValueError(f"Unknown input name(s) {unknown}; the model takes {names}")
    missing = sorted(set(names) - set(feed))
    if missing:
        raise ValueError(f"Missing input(s) {missing}; the model takes {names}")
    out = {}
    for k, v in feed.items():
        array = np.asarray(v)
        if array.dtype.kind not in "fiub":
            raise TypeError(
                f"Input '{k}' of `{what}` must be numeric. Received dtype {array.dtype}"
            )
        out[k] = np.ascontiguousarray(array, dtype="float32")
    return out


class Runtime:
    """One loaded `.onnx` or `.tflite` file, ready to run many times.

    Attributes:
        path: The file.
        kind: `"onnx"` or `"litert"`.
        input_names: The inputs, in the order a list of inputs is taken.
        output_names: The outputs, named like the Keras model's (for files from
            `export_onnx` / `export_tflite`), in the order `run` returns them.
        batch_size: The file's fixed batch size, or `None` if it takes any.
    """

    kind = ""

    def __init__(self, path: str, threads: int | None):
        self.path = path
        self.threads = threads
        self.input_names: list[str] = []
        self.output_names: list[str] = []
        self.batch_size: int | None = None

    def _run(self, feed: dict) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def run(self, inputs) -> list:
        """The outputs for one batch of `inputs`, as a list in `output_names` order."""
        feed = as_feed(self.input_names, inputs)
        count = _count(feed)
        if self.batch_size is None or count == self.batch_size:
            return self._run(feed)
        return self._padded(feed, count)

    def _padded(self, feed: dict, count: int) -> list:
        """A fixed-batch file on another batch size: runs it `batch_size` examples at a
        time, padding the last piece with copies of its last example."""
        b = self.batch_size
        pieces = []
        for start in range(0, count, b):
            part = {k: v[start : start + b] for k, v in feed.items()}
            short = b - _count(part)
            if short:
                part = {
                    k: np.concatenate([v, np.repeat(v[-1:], short, axis=0)])
                    for k, v in part.items()
                }
            outputs = self._run(part)
            pieces.append([o[: b - short] for o in outputs])
        return [np.concatenate(p) for p in zip(*pieces)]

    def predict(self, x, batch_size: int | None = None):
        """Runs the file on `x`, `batch_size` examples at a time (default: the file's
        fixed batch size, else 32), like `keras.Model.predict`.

        Args:
            x: An array, a list of arrays in `input_names` order, or a dict by input
                name; any number of examples.
            batch_size: Examples per run, or `None`.

        Returns:
            One array for a one-output file; a dict `{output name: array}` for
            several.

        Raises:
            ValueError: Inputs that do not match the file's, or a bad `batch_size`.
        """
        batch_size = check_positive_int("batch_size", batch_size, allow_none=True)
        feed = as_feed(self.input_names, x, "x")
        count = _count(feed)
        step = batch_size or self.batch_size or 32
        pieces = [
            self.run({k: v[s : s + step] for k, v in feed.items()}) for s in range(0, count, step)
        ]
        outputs = [np.concatenate(p) for p in zip(*pieces)]
        if len(outputs) == 1:
            return outputs[0]
        return dict(zip(self.output_names, outputs))

    __call__ = predict

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} {self.path!r}: inputs {self.input_names}, outputs "
            f"{self.output_names}, batch {self.batch_size or 'any'}>"
        )


def _count(feed: dict) -> int:
    counts = {k: int(np.shape(v)[0]) if np.ndim(v) else 0 for k, v in feed.items()}
    if len(set(counts.values())) != 1:
        raise ValueError(f"Every input must hold the same number of examples. Received {counts}")
    return next(iter(counts.values()))


class OnnxRuntime(Runtime):
    """An onnxruntime `InferenceSession` on the CPU."""

    kind = "onnx"

    def __init__(self, path: str, threads: int | None):
        import onnxruntime

        super().__init__(path, threads)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            path, options, providers=["CPUExecutionProvider"]
        )
        inputs = self.session.get_inputs()
        self.input_names = [i.name for i in inputs]
        self.output_names = [o.name for o in self.session.get_outputs()]
        batch = {i.shape[0] for i in inputs}
        self.batch_size = batch.pop() if len(batch) == 1 and isinstance(min(batch), int) else None

    def _run(self, feed: dict) -> list:
        return self.session.run(self.output_names, feed)


class LiteRTRuntime(Runtime):
    """A LiteRT (`ai_edge_litert`) interpreter's signature runner."""

    kind = "litert"

    def __init__(self, path: str, threads: int | None):
        from ai_edge_litert.interpreter import Interpreter

        super().__init__(path, threads)
        self.interpreter = Interpreter(model_path=path, num_threads=threads or None)
        self.runner = self.interpreter.get_signature_runner()
        inputs = self.runner.get_input_details()
        self.input_names = sorted(inputs)
        self.output_names = sorted(self.runner.get_output_details())
        batch = {int(inputs[n]["shape"][0]) for n in self.input_names}
        self._fixed = batch.pop() if len(batch) == 1 else None
        self.batch_size = self._fixed
        self._resizable: dict[int, bool] = {}

    def run(self, inputs) -> list:
        feed = as_feed(self.input_names, inputs)
        count = _count(feed)
        if count != self._fixed and self._resizable.get(count, True):
            # The interpreter resizes the inputs; some graphs (an LSTM's state) only
            # run at the size they were converted with, and those get padded pieces.
            try:
                outputs = self._run(feed)
                self._resizable[count] = True
                return outputs
            except (RuntimeError, ValueError):
                self._resizable[count] = False
                self.runner = self.interpreter.get_signature_runner()
        if count == self._fixed:
            return self._run(feed)
        return self._padded(feed, count)

    def _run(self, feed: dict) -> list:
        outputs = self.runner(**feed)
        return [np.array(outputs[k]) for k in self.output_names]


def open_runtime(path: str | os.PathLike, threads: int | None = None) -> Runtime:
    """Opens an `.onnx` (onnxruntime) or `.tflite` (LiteRT) file once for many runs.

    Args:
        path: A file from `export_onnx` or `export_tflite` (any ONNX or TFLite file
            works; outputs are then named as the file names them).
        threads: CPU threads for the runtime, or `None` for its default.

    Returns:
        A `Runtime`: `predict(x, batch_size=None)` (also `runtime(x)`), `run(x)` for
        one batch as a list, `input_names`, `output_names`, `batch_size`.

    Raises:
        ValueError: A path that does not end in `.onnx` or `.tflite`, or bad
            `threads`.
        FileNotFoundError: No file at `path`.

    Example:

    ```python
    runtime = kbm.compress.open_runtime("cnn.onnx", threads=1)
    probabilities = runtime.predict(x, batch_size=64)
    ```
    """
    path = check_path("path", path)
    threads = check_positive_int("threads", threads, allow_none=True)
    if not path.endswith(RUNTIME_SUFFIXES):
        raise ValueError(
            f"`path` must end in one of {list(RUNTIME_SUFFIXES)}. Received: path={path!r}"
        )
    if not os.path.isfile(path):
        kind = "ONNX" if path.endswith(".onnx") else "LiteRT"
        raise FileNotFoundError(f"No {kind} file at {path!r}")
    if path.endswith(".onnx"):
        return OnnxRuntime(path, threads)
    return LiteRTRuntime(path, threads)


def run_tflite(path: str | os.PathLike, inputs) -> list:
    """Runs a `.tflite` file once with the LiteRT interpreter (`ai_edge_litert`).

    Works on every backend: it needs the `ai-edge-litert` package, not TensorFlow.
    For many calls, `open_runtime` keeps the interpreter.

    Args:
        path: A `.tflite` file, e.g. from `export_tflite`.
        inputs: An array, or for several inputs a dict keyed by input name (or a
            list in the order of the sorted names).

    Returns:
        The outputs as a list of NumPy arrays, ordered by output name (the
        order of `keras.tree.flatten` on a dict-output model's outputs).

    Raises:
        ValueError: Inputs that do not match the model's.
        FileNotFoundError: No file at `path`.
    """
    path = check_path("path", path)
    if not path.endswith(".tflite"):
        raise ValueError(f"`path` must end in '.tflite'. Received: path={path!r}")
    return open_runtime(path).run(inputs)


def run_onnx(path: str | os.PathLike, inputs) -> list:
    """Runs an `.onnx` file once with onnxruntime on the CPU.

    For many calls, `open_runtime` keeps the session.

    Args:
        path: An `.onnx` file, e.g. from `export_onnx`.
        inputs: An array, or for several inputs a dict keyed by input name (or a
            list in the model's input order).

    Returns:
        The outputs as a list of NumPy arrays, in the graph's output order (for
        `export_onnx` files, the order of `keras.tree.flatten(model.output)`).

    Raises:
        ValueError: Inputs that do not match the model's.
        FileNotFoundError: No file at `path`.
    """
    path = check_path("path", path)
    if not path.endswith(".onnx"):
        raise ValueError(f"`path` must end in '.onnx'. Received: path={path!r}")
    return open_runtime(path).run(inputs)


# ------------------------------------------------- a runtime in place of a model
RUNTIME_RECORD = "runtime.json"
_MAX_RECORD = 1 << 20


def runtime_record(model) -> dict:
    """What a runtime file cannot say about the Keras model it came from: the inputs'
    names, shapes and dtypes, whether the outputs are a dict (and their names and
    shapes), and the preset record (`kbm.models.provenance`). `write_runtime_record`
    stores it beside the file as `runtime.json`; `load_runtime_model` reads it."""
    import keras

    from keras_bigmodel.models import provenance

    def spec(tensor, name):
        return {
            "name": name,
            "shape": [None if d is None else int(d) for d in tensor.shape[1:]],
            "dtype": keras.backend.standardize_dtype(tensor.dtype),
        }

    if isinstance(model.input, dict):
        inputs = [spec(model.input[k], k) for k in model.input]
    else:
        inputs = [spec(t, t.name) for t in keras.tree.flatten(model.input)]
    if isinstance(model.output, dict):
        outputs = [spec(model.output[k], k) for k in model.output]
    else:
        outputs = [spec(t, n) for t, n in zip(keras.tree.flatten(model.output), model.output_names)]
    return {
        "format_version": 1,
        "name": model.name,
        "inputs": inputs,
        "input_dict": isinstance(model.input, dict),
        "outputs": outputs,
        "output_dict": isinstance(model.output, dict),
        "preset": provenance(model),
    }


def write_runtime_record(model, directory: str) -> str:
    """Writes `runtime_record(model)` to `directory/runtime.json` (atomically)."""
    from keras_bigmodel import fileio

    return fileio.write_json_atomic(
        os.path.join(directory, RUNTIME_RECORD), runtime_record(model), sort_keys=True
    )


def _read_record(path: str) -> dict | None:
    import json

    from keras_bigmodel import fileio
    from keras_bigmodel.saving import ModelFileError

    record_path = os.path.join(os.path.dirname(path) or ".", RUNTIME_RECORD)
    if not os.path.lexists(record_path):
        return None
    with fileio.open_regular(record_path, follow_symlinks=False, max_bytes=_MAX_RECORD) as f:
        raw = fileio.read_bounded(f, _MAX_RECORD)
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise ModelFileError(f"{record_path} is not valid JSON: {e}") from None

    def specs_ok(value):
        return isinstance(value, list) and all(
            isinstance(s, dict)
            and isinstance(s.get("name"), str)
            and isinstance(s.get("shape"), list)
            and all(d is None or (isinstance(d, int) and 0 < d <= 1 << 20) for d in s["shape"])
            and s.get("dtype") in ("float32", "float16", "int32", "int64", "uint8", "bool")
            for s in value
        )

    if (
        not isinstance(record, dict)
        or not specs_ok(record.get("inputs"))
        or not specs_ok(record.get("outputs"))
        or not isinstance(record.get("name", ""), str)
        or not isinstance(record.get("preset"), (dict, type(None)))
    ):
        raise ModelFileError(f"{record_path} does not describe a model's inputs and outputs")
    return record


class RuntimeModel:
    """An `.onnx` / `.tflite` file standing in for the Keras model it was exported
    from, for code that reads a model's `input`/`output` structure and calls
    `predict` (the command line's `evaluate` and `predict`).

    Attributes:
        runtime: The `Runtime` that runs the file.
        input, inputs, output, outputs: `keras.KerasTensor`s shaped like the
            model's (a dict where the model had one), from `runtime.json` beside
            the file, else from the file itself.
        output_names: The outputs' names.
        name: The model's name.
        preset: The preset record of the model it was exported from, or None.
    """

    def __init__(self, runtime: Runtime, record: dict | None):
        import keras

        self.runtime = runtime
        self.path = runtime.path
        if record is None:
            record = {
                "name": os.path.splitext(os.path.basename(runtime.path))[0],
                "inputs": [
                    {"name": n, "shape": None, "dtype": "float32"} for n in runtime.input_names
                ],
                "outputs": [
                    {"name": n, "shape": None, "dtype": "float32"} for n in runtime.output_names
                ],
                "input_dict": len(runtime.input_names) > 1,
                "output_dict": len(runtime.output_names) > 1,
                "preset": None,
            }
            details = _shapes(runtime)
            for spec in record["inputs"] + record["outputs"]:
                spec["shape"] = details.get(spec["name"])
        names_in = [s["name"] for s in record["inputs"]]
        names_out = [s["name"] for s in record["outputs"]]
        if sorted(names_in) != sorted(runtime.input_names) or sorted(names_out) != sorted(
            runtime.output_names
        ):
            from keras_bigmodel.saving import ModelFileError

            raise ModelFileError(
                f"{RUNTIME_RECORD} beside {runtime.path} names the inputs {names_in} and "
                f"outputs {names_out}; the file has {runtime.input_names} and "
                f"{runtime.output_names}"
            )

        def tensor(spec):
            shape = spec["shape"]
            shape = (None,) + tuple(shape) if shape is not None else (None,)
            return keras.KerasTensor(shape, dtype=spec.get("dtype", "float32"), name=spec["name"])

        ins = {s["name"]: tensor(s) for s in record["inputs"]}
        outs = {s["name"]: tensor(s) for s in record["outputs"]}
        self.inputs = list(ins.values())
        self.outputs = list(outs.values())
        self.input = (
            ins
            if record.get("input_dict")
            else (self.inputs[0] if len(self.inputs) == 1 else self.inputs)
        )
        self.output = (
            outs
            if record.get("output_dict")
            else (self.outputs[0] if len(self.outputs) == 1 else self.outputs)
        )
        self.output_names = names_out
        self.name = record.get("name") or "model"
        self.preset = record.get("preset")

    def predict(self, x, batch_size: int | None = None, verbose=0, **kwargs):
        """Like `keras.Model.predict`: `x` an array, a list, a dict by input name, or
        a `keras.utils.PyDataset` of input batches. Returns an array, or a dict by
        output name for a dict-output model (a list for other multi-output ones)."""
        import keras

        if isinstance(x, keras.utils.PyDataset):
            pieces = []
            for i in range(len(x)):
                batch = x[i]
                if isinstance(batch, tuple):
                    batch = batch[0]
                pieces.append(self._as_structure(self.runtime.run(batch)))
            return keras.tree.map_structure(lambda *p: np.concatenate(p), *pieces)
        result = self.runtime.predict(x, batch_size=batch_size)
        if not isinstance(result, dict):
            result = [result]
        else:
            result = [result[n] for n in self.runtime.output_names]
        return self._as_structure(result)

    def _as_structure(self, outputs: list):
        by_name = dict(zip(self.runtime.output_names, outputs))
        if isinstance(self.output, dict):
            return {n: by_name[n] for n in self.output}
        if isinstance(self.output, list):
            return [by_name[n] for n in self.output_names]
        return by_name[self.output_names[0]]

    def __call__(self, x):
        return self.predict(x)


def _shapes(runtime: Runtime) -> dict:
    """Non-batch shapes of a runtime's inputs and outputs, where the file says."""
    shapes = {}
    if isinstance(runtime, OnnxRuntime):
        for item in list(runtime.session.get_inputs()) + list(runtime.session.get_outputs()):
            shapes[item.name] = [d if isinstance(d, int) else None for d in item.shape[1:]]
    else:
        details = {**runtime.runner.get_input_details(), **runtime.runner.get_output_details()}
        for name, detail in details.items():
            shapes[name] = [int(d) for d in detail["shape"][1:]]
    return shapes


def load_runtime_model(path: str | os.PathLike, threads: int | None = None) -> RuntimeModel:
    """An `.onnx` / `.tflite` file as a `RuntimeModel` (with `runtime.json` beside it,
    as `keras-bigmodel quantize --format onnx|litert` writes, it is shaped exactly
    like the Keras model; without, like the file's own inputs and outputs).

    Args:
        path: The file.
        threads: As for `open_runtime`.

    Returns:
        A `RuntimeModel`.

    Raises:
        ValueError / FileNotFoundError: As `open_runtime`.
        ModelFileError: A `runtime.json` that is malformed or names other inputs or
            outputs than the file's.

    Example:

    ```python
    model = kbm.compress.load_runtime_model("cnn-int8/model.onnx")
    probabilities = model.predict(x, batch_size=64)
    ```
    """
    runtime = open_runtime(path, threads=threads)
    return RuntimeModel(runtime, _read_record(runtime.path))


def runtime_file(path: str | os.PathLike) -> str | None:
    """The runtime file `path` names: itself if it ends in `.onnx` / `.tflite`, the
    `model.onnx` / `model.tflite` inside a directory without `model.keras` (as
    `keras-bigmodel quantize --format onnx|litert` writes), else None."""
    path = os.fspath(path)
    if path.endswith(RUNTIME_SUFFIXES):
        return path
    if os.path.isdir(path) and not os.path.lexists(os.path.join(path, "model.keras")):
        for suffix in RUNTIME_SUFFIXES:
            candidate = os.path.join(path, "model" + suffix)
            if os.path.isfile(candidate):
                return candidate
    return None
