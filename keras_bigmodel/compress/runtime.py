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

__all__ = ["Runtime", "as_feed", "open_runtime", "run_onnx", "run_tflite"]

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
