"""What the commands share: loading a model with what it recorded about its data,
reading the data the way the model expects, the check that a model fits the data, and
feeding the data to Keras (arrays in memory, or a `keras.utils.PyDataset` streamed
from disk)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import data, fileio
from keras_bigmodel.models import provenance
from zoo.views import DataView, ModelInput

__all__ = [
    "DATA_FILE",
    "CommandError",
    "LoadedModel",
    "check_fits",
    "class_names_for",
    "describe_shape",
    "keras_data",
    "load_checked",
    "load_data",
    "load_model",
    "predict",
    "progress",
    "read_data_record",
    "say",
    "view_for",
    "write_data_record",
]

DATA_FILE = "data.json"
_MAX_DATA_JSON = 1024 * 1024


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def say(out, text: str = "") -> None:
    """Prints one line of the command's output at once (long work follows it)."""
    print(text, file=out, flush=True)


def progress(out=None) -> int:
    """Keras's progress bar on a terminal; one line per epoch in logs and pipes."""
    out = out or sys.stdout
    return 1 if hasattr(out, "isatty") and out.isatty() else 2


# ------------------------------------------------------------------------ models
@dataclasses.dataclass
class LoadedModel:
    """A model, where it came from, and what it recorded about its training data."""

    model: keras.Model
    path: str
    record: dict | None  # data.json of a trained preset directory

    @property
    def name(self) -> str:
        origin = provenance(self.model)
        return origin["name"] if origin else self.model.name

    @property
    def label(self) -> str:
        return f"model '{self.name}' ({self.path})"


def load_model(path: str, out=None) -> LoadedModel:
    """A preset directory (with its data.json, if any) or a `.keras` file, through the
    checked loaders."""
    if out is not None:
        say(out, f"loading {path} ...")
    # Not compiled: the commands that load a model only run it (compiling builds metrics
    # and losses for nothing).
    if os.path.isdir(path):
        model = zoo.load_preset(path, compile=False)
        return LoadedModel(model, path, read_data_record(path))
    if not os.path.lexists(path):
        raise CommandError(f"No such file or directory: {path}")
    return LoadedModel(kbm.load_model(path, compile=False), path, None)


def write_data_record(directory: str, record: dict) -> str:
    """Writes data.json (atomically, replacing rather than following a link)."""
    return fileio.write_json_atomic(os.path.join(directory, DATA_FILE), record, sort_keys=True)


def _bad_field(path: str, field: str, expected: str, value) -> kbm.ModelFileError:
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    return kbm.ModelFileError(f"{path}: field {field!r} must be {expected}. Received: {shown}")


def _strings(value) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def read_data_record(directory: str) -> dict | None:
    """data.json of a preset directory (None if it has none), every field checked: the
    directory is untrusted input, as in `zoo.load_preset`."""
    path = os.path.join(directory, DATA_FILE)
    if not os.path.lexists(path):
        return None
    try:
        with fileio.open_regular(path, follow_symlinks=False, max_bytes=_MAX_DATA_JSON) as f:
            raw = fileio.read_bounded(f, _MAX_DATA_JSON)
    except fileio.UnsafePathError as e:
        raise kbm.UnsafeModelError(f"{path}: {e.strerror}") from None
    try:
        record = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise kbm.ModelFileError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(record, dict):
        raise kbm.ModelFileError(f"{path} must hold a JSON object")
    names = record.get("class_names", {})
    if not isinstance(names, dict) or not all(_strings(v) for v in names.values()):
        raise _bad_field(path, "class_names", "an object of lists of strings", names)
    for field in ("feature_columns", "label_columns"):
        if field in record and not _strings(record[field]):
            raise _bad_field(path, field, "a list of strings", record[field])
    size = record.get("image_size")
    if size is not None and not (
        isinstance(size, list)
        and len(size) == 2
        and all(isinstance(d, int) and not isinstance(d, bool) and 0 < d <= 65536 for d in size)
    ):
        raise _bad_field(path, "image_size", "[height, width]", size)
    if record.get("color_mode") not in (None, *data.COLOR_MODES):
        raise _bad_field(
            path, "color_mode", f"one of {list(data.COLOR_MODES)}", record.get("color_mode")
        )
    if not isinstance(record.get("resized", False), bool):
        raise _bad_field(path, "resized", "true or false", record.get("resized"))
    return record


# -------------------------------------------------------------------------- views
def input_names(model: keras.Model) -> list[str]:
    """The model's input names, in the order of `model.inputs`."""
    if isinstance(model.input, dict):
        return list(model.input)
    return [t.name for t in model.inputs]


def input_shapes(model: keras.Model) -> dict[str, tuple]:
    tensors = (
        model.input
        if isinstance(model.input, dict)
        else dict(zip(input_names(model), model.inputs))
    )
    return {name: tuple(t.shape[1:]) for name, t in tensors.items()}


def output_names(model: keras.Model) -> list[str] | None:
    """Task names of a dict-output model, else None (one output)."""
    if isinstance(model.output, dict):
        return list(model.output)
    return None


def _kind(shape: tuple, dtype: str) -> str:
    if len(shape) == 3:
        return "image"
    if len(shape) == 2:
        return "sequence"
    return "tokens" if "int" in str(dtype) else "vector"


def view_for(model: keras.Model) -> DataView:
    """The zoo preset's `DataView` for a model a preset built, or one derived from the
    model's inputs and outputs (any functional model)."""
    names = input_names(model)
    origin = provenance(model)
    if origin is not None:
        try:
            spec = zoo.get_preset(origin["name"])
        except (KeyError, ValueError, TypeError):
            spec = None
        if spec is not None and spec.data is not None:
            if sorted(i.name for i in spec.data.inputs) == sorted(names):
                return spec.data
    tensors = model.input if isinstance(model.input, dict) else dict(zip(names, model.inputs))
    inputs = tuple(
        ModelInput(name, _kind(tuple(t.shape[1:]), t.dtype), None) for name, t in tensors.items()
    )
    if isinstance(model.output, dict):
        return DataView(inputs=inputs, target="tasks")
    if isinstance(model.output, (list, tuple)):
        raise CommandError(
            f"model '{model.name}' has {len(model.output)} unnamed outputs; the command line "
            f"needs one output, or a dict of outputs named by task"
        )
    return DataView(inputs=inputs, target="classes")


# --------------------------------------------------------------------------- data
def load_data(
    args,
    loaded: LoadedModel | None,
    *,
    require_labels: bool,
    view: DataView | None,
    subset: str,
    out=None,
) -> data.Dataset:
    """Reads `args.data` with the command's data options, reading it the way the model
    recorded (class names, CSV columns, image size and colour mode)."""
    record = loaded.record if loaded is not None else None
    record = record or {}
    explicit_labels = args.label_column
    options: dict[str, Any] = {
        "label_columns": explicit_labels or record.get("label_columns"),
        "feature_columns": record.get("feature_columns"),
        "class_names": record.get("class_names") or None,
        "image_size": args.image_size
        or (tuple(record["image_size"]) if record.get("resized") else None),
        "color_mode": args.color_mode or record.get("color_mode"),
        "bad_images": args.bad_images,
        "memory_limit": 0 if args.stream else data.DEFAULT_MEMORY_LIMIT,
        "require_labels": require_labels,
        "missing_labels": "error" if (explicit_labels or require_labels) else "unlabelled",
        "subset": subset,
        "verbose": 1 if out is not None and progress(out) == 1 else 0,
    }
    if args.data == "digits" and view is not None and view.digits_view is not None:
        options["class_names"] = None  # the preset's own digits view names the classes
    if out is not None:
        say(out, f"reading {args.data} ...")
    try:
        dataset = data.load(args.data, **options)
    except data.ClassMismatchError as e:
        label = loaded.label if loaded is not None else "the model"
        raise CommandError(f"{label} does not fit {args.data}: {e}") from None
    if args.data == "digits" and view is not None and view.digits_view is not None:
        dataset = _digits_view(dataset, view, record)
    if out is not None:
        say(out, f"data: {dataset.summary()}")
        if dataset.skipped:
            path, reason = dataset.skipped[0]
            say(out, f"skipped {len(dataset.skipped)} unreadable image(s), e.g. {path}: {reason}")
    return dataset


def _digits_view(dataset: data.Dataset, view: DataView, record: dict) -> data.Dataset:
    """The bundled digits as the preset sees them (e.g. a digit and a parity task)."""
    features, labels = view.digits(dataset.features(), dataset.labels["label"])
    if not isinstance(labels, dict):
        labels = {"label": labels}
    names = {}
    for task, y in labels.items():
        y = np.asarray(y)
        count = y.shape[1] if y.ndim == 2 else int(y.max()) + 1
        names[task] = (record.get("class_names") or {}).get(task) or [str(i) for i in range(count)]
    return data.Dataset.from_arrays(
        features, labels, class_names=names, source=dataset.source, format="digits"
    )


# -------------------------------------------------------------------------- check
def describe_shape(shape: tuple) -> str:
    """`(8, 8, 1)` -> '8x8 images with 1 channel', and so on."""
    dims = ["?" if d is None else str(d) for d in shape]
    if len(dims) == 3:
        return f"{dims[0]}x{dims[1]} images with {dims[2]} channel{'' if dims[2] == '1' else 's'}"
    if len(dims) == 2:
        return f"sequences of {dims[0]} steps x {dims[1]} features"
    if len(dims) == 1:
        return f"vectors of {dims[0]} features"
    return f"arrays of shape ({', '.join(dims)})"


def _fits(expected: tuple, got: tuple) -> bool:
    return len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))


def _image_hint(dataset: data.Dataset, expected: tuple) -> str:
    if dataset.format != "images" or len(expected) != 3 or None in expected[:2]:
        return ""
    hint = f"; --image-size {expected[0]}x{expected[1]} resizes the images"
    mode = {1: "grayscale", 3: "rgb"}.get(expected[2])
    if mode and mode != dataset.info.get("color_mode"):
        hint += f" and --color-mode {mode} converts them"
    return hint


def _is_flags(labels: np.ndarray) -> bool:
    labels = np.asarray(labels)
    return labels.ndim == 2 and labels.shape[1] > 1 and not np.allclose(labels.sum(axis=1), 1)


def load_checked(args, out, *, require_labels: bool) -> tuple[LoadedModel, DataView, data.Dataset]:
    """The model (`args.model`) and the data (`--data`) a command reads, checked against
    each other with `check_fits` before any work: `(loaded, view, dataset)`."""
    loaded = load_model(args.model, out)
    view = view_for(loaded.model)
    dataset = load_data(
        args, loaded, require_labels=require_labels, view=view, subset="test", out=out
    )
    check_fits(loaded, view, dataset)
    return loaded, view, dataset


def check_fits(loaded: LoadedModel, view: DataView, dataset: data.Dataset) -> None:
    """Refuses, before any work, data whose inputs or classes the model does not take.

    The message is the same whichever command asks: '<model> does not fit <data>:
    input 'image' expects 8x8 images with 1 channel; the data gives ...'.
    """
    model = loaded.model
    prefix = f"{loaded.label} does not fit {dataset.source}"
    try:
        arranged = view.model_inputs(dataset.take(np.arange(min(len(dataset), 2))))
    except ValueError as e:
        raise CommandError(f"{prefix}: {e}") from None
    expected = input_shapes(model)
    given = arranged if isinstance(arranged, dict) else {next(iter(expected)): arranged}
    for name, shape in expected.items():
        if name not in given:
            raise CommandError(
                f"{prefix}: input '{name}' gets no data (the data has {sorted(given)})"
            )
        got = tuple(np.shape(given[name])[1:])
        if not _fits(shape, got):
            raise CommandError(
                f"{prefix}: input '{name}' expects {describe_shape(shape)}; the data gives "
                f"{describe_shape(got)}{_image_hint(dataset, shape)}"
            )
    if not dataset.labelled:
        return
    tasks = output_names(model)
    if tasks is not None:
        if sorted(tasks) != sorted(dataset.tasks):
            raise CommandError(
                f"{prefix}: the model's tasks are {tasks}; the data's labels are "
                f"{dataset.tasks} (missing: {sorted(set(tasks) - set(dataset.tasks))}, unknown: "
                f"{sorted(set(dataset.tasks) - set(tasks))})"
                + (
                    "; name the label columns with --label-column"
                    if dataset.format == "csv"
                    else ""
                )
            )
        pairs = [(t, model.output[t], f"task '{t}'") for t in tasks]
    else:
        if len(dataset.tasks) != 1:
            raise CommandError(
                f"{prefix}: the model has one output; the data has labels {dataset.tasks}"
                + ("; choose one with --label-column" if dataset.format == "csv" else "")
            )
        pairs = [(dataset.tasks[0], model.output, "it")]
    recorded = (loaded.record or {}).get("class_names") or {}
    for task, tensor, who in pairs:
        units = int(tensor.shape[-1])
        names = dataset.class_names[task]
        labels = dataset.labels[task]
        count = len(names)
        binary = view.target == "binary"
        if _is_flags(labels) and not binary:
            raise CommandError(
                f"{prefix}: the labels of '{task}' are 0/1 flags (several per row); {who} "
                f"predicts one class per example"
            )
        exact = dataset.names_from.get(task) == "values" or np.ndim(labels) == 2
        if (exact and count != units) or count > units:
            model_names = recorded.get(task) or (
                next(iter(recorded.values())) if len(recorded) == 1 and tasks is None else None
            )
            known = f" ({data._shown(model_names, 12)})" if model_names else ""
            raise CommandError(
                f"{prefix}: {who} predicts {units} classes{known}; the data has {count} "
                f"({data._shown(names, 12)})"
            )


def class_names_for(loaded: LoadedModel, dataset: data.Dataset, view: DataView) -> dict:
    """`{output: class names}` for each output (the task names of a multi-task model;
    the data's one label name otherwise)."""
    model = loaded.model
    recorded = (loaded.record or {}).get("class_names") or {}
    tasks = output_names(model)
    keys = (
        tasks
        if tasks is not None
        else [
            dataset.tasks[0]
            if dataset.labelled
            else (next(iter(recorded)) if recorded else "label")
        ]
    )
    tensors = [model.output[t] for t in tasks] if tasks is not None else [model.output]
    out = {}
    for key, tensor in zip(keys, tensors):
        units = int(tensor.shape[-1])
        names = None
        if dataset.labelled and key in dataset.class_names:
            names = dataset.class_names[key]
        elif key in recorded:
            names = recorded[key]
        elif tasks is None and len(recorded) == 1:
            names = next(iter(recorded.values()))
        if names is None or len(names) < units:
            names = (
                [str(i) for i in range(units)]
                if names is None
                else list(names) + [str(i) for i in range(len(names), units)]
            )
        out[key] = list(names)[:units]
    return out


# ---------------------------------------------------------------------- feeding
def keras_data(
    dataset: data.Dataset,
    view: DataView,
    batch_size: int,
    *,
    shuffle: bool = False,
    seed: int = 0,
    with_labels: bool = True,
) -> dict:
    """Keyword arguments for `model.fit` / `predict`: arrays with `batch_size` when the
    data is in memory, else `x=` a `keras.utils.PyDataset` that reads batch by batch."""
    with_labels = with_labels and dataset.labelled
    if dataset.in_memory:
        kwargs = {"x": view.model_inputs(dataset.features()), "batch_size": batch_size}
        if with_labels:
            kwargs["y"] = view.model_targets(dict(dataset.labels))
        return kwargs
    return {
        "x": dataset.batches(
            batch_size,
            inputs=view.model_inputs,
            targets=view.model_targets,
            shuffle=shuffle,
            seed=seed,
            with_labels=with_labels,
        )
    }


def predict(
    loaded: LoadedModel, view: DataView, dataset: data.Dataset, batch_size: int, out
) -> dict[str, np.ndarray]:
    """The model's outputs on the whole dataset, `{output name: (n, units)}` (the one
    output is keyed like `class_names_for`), with Keras's progress bar."""
    model = loaded.model
    kwargs = keras_data(dataset, view, batch_size, with_labels=False)
    # A progress bar on a terminal; in logs and pipes the lines before say what runs.
    result = model.predict(**kwargs, verbose=1 if progress(out) == 1 else 0)
    tasks = output_names(model)
    if tasks is not None:
        if isinstance(result, dict):
            return {t: np.asarray(result[t]) for t in tasks}
        return {t: np.asarray(r) for t, r in zip(tasks, result)}
    key = next(iter(class_names_for(loaded, dataset, view)))
    return {key: np.asarray(result)}
