"""What the commands share: loading a model with what it recorded about its data,
reading the data the way the model expects, the check that a model fits the data, and
feeding the data to Keras (arrays in memory, or a `keras.utils.PyDataset` streamed
from disk)."""

from __future__ import annotations

import dataclasses
import os
import sys

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import data
from keras_bigmodel.data import image_preprocessing, tabular
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

DATA_FILE = data.DATA_FILE


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

    @property
    def front(self) -> image_preprocessing.ImagePreprocessing | None:
        """The model's `ImagePreprocessing` layer (it resizes and rescales raw images
        itself), or None."""
        return image_preprocessing.front_of(self.model)


def load_model(path: str, out=None) -> LoadedModel:
    """A preset directory (with its data.json, if any) or a `.keras` file, through the
    checked loaders."""
    runtime = kbm.compress.runtime_file(path)  # an .onnx / .tflite file, or a folder with one
    if runtime is not None:
        model = kbm.compress.load_runtime_model(runtime)
        return LoadedModel(model, path, read_data_record(os.path.dirname(runtime)))
    if out is not None:
        say(out, f"loading {path} ...")
    # Not compiled: the commands that load a model only run it (compiling builds metrics
    # and losses for nothing).
    if os.path.isdir(path):
        model = zoo.load_preset(path, compile=False)
        return LoadedModel(model, path, read_data_record(path))
    if not os.path.lexists(path):
        raise CommandError(f"No such file or directory: {path}")
    model = kbm.load_model(path, compile=False)
    return LoadedModel(model, path, _record_from_model(model))


def _record_from_model(model: keras.Model) -> dict | None:
    """What a bare `.keras` file says about its data: a tabular model's columns."""
    columns = tabular.columns_of(model)
    if columns is None:
        return None
    schema = [{k: c[k] for k in ("name", "kind", "vocabulary") if k in c} for c in columns]
    return {"format": "csv", "schema": schema, "feature_columns": [c["name"] for c in schema]}


def write_data_record(directory: str, record: dict) -> str:
    """Writes data.json and its hash (see `keras_bigmodel.data.write_record`)."""
    return data.write_record(directory, record)


def read_data_record(directory: str) -> dict | None:
    """data.json of a preset directory (None if it has none), every field and its hash
    checked (see `keras_bigmodel.data.read_record`)."""
    return data.read_record(directory)


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
    origin = provenance(model) or getattr(model, "preset", None)  # a RuntimeModel's record
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
def load_options(
    args,
    record: dict | None,
    *,
    require_labels: bool,
    subset: str,
    verbose: int = 0,
    front: image_preprocessing.ImagePreprocessing | None = None,
    own_sizes: bool = False,
    pixels: str | None = None,
) -> data.LoadOptions:
    """The one `LoadOptions` a command reads its data with: its arguments, then what the
    model recorded (class names, CSV columns and schema, image size and colour mode).

    A model with an `ImagePreprocessing` `front` takes raw pixels (0..255) and resizes
    them itself: with `own_sizes` the images keep their own sizes (predict, evaluate,
    explain), else they are read at the front's size (quantize: exports take that
    size). A record with `scale` "1" without a front is an exported file of such a
    model: raw pixels at the recorded size. `pixels` forces "raw" or "unit" (train).
    """
    record = record or {}
    explicit_labels = args.label_column
    feature_columns = getattr(args, "feature_columns", None)
    image_size = args.image_size
    if front is not None:
        raw = True
        if image_size is None and not own_sizes:
            image_size = front.size
    elif record.get("scale") == "1":  # raw pixels, at the exported file's fixed size
        raw = True
        if image_size is None and record.get("image_size"):
            image_size = tuple(record["image_size"])
    else:
        raw = False
        if image_size is None and record.get("resized"):
            image_size = tuple(record["image_size"])
    if pixels is not None:
        raw = pixels == "raw"
    return data.LoadOptions(
        label_columns=explicit_labels or record.get("label_columns"),
        feature_columns=feature_columns or record.get("feature_columns"),
        drop_columns=tuple(getattr(args, "drop_columns", None) or ()),
        categorical_columns=tuple(getattr(args, "categorical_columns", None) or ()),
        id_column=getattr(args, "id_column", None) or _recorded_id(args.data, record),
        missing=getattr(args, "missing", None) or "impute",
        schema=record.get("schema"),
        class_names=record.get("class_names") or None,
        image_size=image_size,
        own_sizes=front is not None and own_sizes and image_size is None,
        pixels="raw" if raw else "unit",
        color_mode=args.color_mode or record.get("color_mode"),
        bad_images=args.bad_images,
        memory_limit=0 if args.stream else data.DEFAULT_MEMORY_LIMIT,
        require_labels=require_labels,
        missing_labels="error" if (explicit_labels or require_labels) else "unlabelled",
        subset=subset,
        verbose=verbose,
    )


def _recorded_id(path: str, record: dict) -> str | None:
    """The id column the model was trained with, when this CSV has it (new rows to
    predict may not)."""
    name = record.get("id_column")
    if name is None or data.kind_of_path(path) != "table":
        return None
    return name if name in (data.table.header_of(path) or []) else None


def load_data(
    args,
    loaded: LoadedModel | None,
    *,
    require_labels: bool,
    view: DataView | None,
    subset: str,
    out=None,
    who: str | None = None,
    own_sizes: bool = False,
    pixels: str | None = None,
) -> data.Dataset:
    """Reads `args.data` with the command's options (`load_options`), the way the model
    recorded; the kind of data the model (`who`) takes is checked against the data's
    first. `own_sizes`: a model that resizes images itself gets them at their own
    sizes."""
    record = loaded.record if loaded is not None else None
    options = load_options(
        args,
        record,
        require_labels=require_labels,
        subset=subset,
        verbose=1 if out is not None and progress(out) == 1 else 0,
        front=loaded.front if loaded is not None else None,
        own_sizes=own_sizes,
        pixels=pixels,
    )
    who = who or (loaded.label if loaded is not None else "the model")
    if view is not None:
        check_kind(who, view, args.data)
    own_digits = view is not None and view.digits_view is not None
    if own_digits and data.reader_for(args.data).format == "digits":
        options = options.replace(class_names=None)  # the preset's digits view names them
    if out is not None:
        say(out, f"reading {args.data} ...")
    try:
        dataset = data.load(args.data, options)
    except data.ClassMismatchError as e:
        label = loaded.label if loaded is not None else "the model"
        raise CommandError(f"{label} does not fit {args.data}: {e}") from None
    if dataset.format == "digits" and own_digits:
        dataset = _digits_view(dataset, view, record or {})
    if view is not None:
        _check_plain_table(who, view, dataset)
    if out is not None:
        say(out, f"data: {dataset.summary()}")
        if dataset.skipped:
            path, reason = dataset.skipped[0]
            say(out, f"skipped {len(dataset.skipped)} unreadable image(s), e.g. {path}: {reason}")
        if dataset.format == "csv":
            for line in describe_table(dataset):
                say(out, line)
    return dataset


_KIND_WORDS = {"image": "images", "table": "a table (CSV)", "array": "arrays"}


def check_kind(who: str, view: DataView, path: str) -> None:
    """Refuses data of another kind than the model takes (an image model given a CSV)
    before anything is read, with the one message that matters."""
    kind = data.kind_of_path(path)
    kinds = {i.kind for i in view.inputs}
    if kind is None or kind == "array":
        return
    if kind == "table" and kinds & {"image", "sequence"} and not kinds & {"vector", "table"}:
        takes = "images" if "image" in kinds else "sequences"
        raise CommandError(f"{who} takes {takes}; {path} is a table (CSV)")
    if kind == "image" and kinds <= {"table"}:
        raise CommandError(f"{who} takes a table (CSV rows); {path} holds images")


def _check_plain_table(who: str, view: DataView, dataset: data.Dataset) -> None:
    """A model that takes plain numbers (not a `table` input) cannot take strings or
    missing values: say which column, and which preset can."""
    if dataset.kind != "table" or any(i.kind == "table" for i in view.inputs):
        return
    schema = dataset.info.get("schema") or []
    strings = [c for c in schema if c["kind"] in tabular.CATEGORICAL_KINDS]
    missing = dataset.info.get("missing_values") or {}
    if missing and not np.isnan(np.asarray(dataset.features(), dtype="float32")).any():
        missing = {}  # the rows that had them were dropped (--missing drop)
    if not strings and not missing:
        return
    if strings:
        name = strings[0]["name"]
        problem = (
            f"column '{name}' holds strings"
            if strings[0]["kind"] == "categorical"
            else f"column '{name}' is categorical (--categorical-columns)"
        )
    else:
        problem = (
            f"column '{next(iter(missing))}' has {next(iter(missing.values()))} missing values"
        )
    raise CommandError(
        f"{who} takes numbers only; {problem} in {dataset.source}: the 'tabular' preset encodes "
        f"strings and imputes missing values inside the model (train tabular ...), or leave "
        f"such columns out with --drop-columns, or rows with --missing drop"
    )


def describe_table(dataset: data.Dataset) -> list[str]:
    """What the CSV reader did: columns used and their kinds, missing values, rows
    dropped, masked labels, columns left out."""
    info = dataset.info
    schema = info.get("schema") or []
    numeric = [c["name"] for c in schema if c["kind"] == "numeric"]
    unit = {"categorical": "values", "integer_categorical": "codes"}
    categorical = [
        f"{c['name']} ({len(c['vocabulary'])} {unit[c['kind']]})"
        for c in schema
        if c["kind"] in tabular.CATEGORICAL_KINDS
    ]
    lines = [
        f"columns: {len(schema)} features"
        + (f"; numeric: {data.shown(numeric, 12)}" if numeric else "")
        + (f"; categorical: {data.shown(categorical, 12)}" if categorical else "")
        + f"; labels: {', '.join(info.get('label_columns') or []) or 'none'}"
    ]
    used = set(c["name"] for c in schema) | set(info.get("label_columns") or [])
    used.add(info.get("id_column"))
    left = [c for c in info.get("columns", []) if c not in used]
    if left:
        lines.append(f"left out: {data.shown(left, 12)}")
    missing = info.get("missing_values") or {}
    if missing:
        lines.append(
            "missing values: "
            + ", ".join(f"{k} {v}" for k, v in missing.items())
            + (
                f"; {info['dropped_rows']} rows dropped"
                if info.get("dropped_rows")
                else " (imputed inside the model, with an indicator)"
            )
        )
    if info.get("unknown_categories"):
        lines.append(
            "unknown categories (read as missing): "
            + ", ".join(f"{k} {v}" for k, v in info["unknown_categories"].items())
        )
    if info.get("masked_labels"):
        lines.append(
            "missing labels (masked in the loss): "
            + ", ".join(f"{k} {v}" for k, v in info["masked_labels"].items())
        )
    return lines


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
        size = "images of any size" if dims[:2] == ["?", "?"] else f"{dims[0]}x{dims[1]} images"
        return f"{size} with {dims[2]} channel{'' if dims[2] == '1' else 's'}"
    if len(dims) == 2:
        return f"sequences of {dims[0]} steps x {dims[1]} features"
    if len(dims) == 1:
        return f"vectors of {dims[0]} features"
    return f"arrays of shape ({', '.join(dims)})"


def _fits(expected: tuple, got: tuple) -> bool:
    return len(expected) == len(got) and all(e is None or e == g for e, g in zip(expected, got))


def _image_hint(dataset: data.Dataset, expected: tuple) -> str:
    if dataset.format != "images" or len(expected) != 3:
        return ""
    hints = []
    if None not in expected[:2]:
        hints.append(f"--image-size {expected[0]}x{expected[1]} resizes the images")
    mode = {1: "grayscale", 3: "rgb"}.get(expected[2])
    if mode and mode != dataset.info.get("color_mode"):
        hints.append(f"--color-mode {mode} converts them")
    return "; " + " and ".join(hints) if hints else ""


def _is_flags(labels: np.ndarray) -> bool:
    labels = np.asarray(labels)
    return labels.ndim == 2 and labels.shape[1] > 1 and not np.allclose(labels.sum(axis=1), 1)


def load_checked(
    args, out, *, require_labels: bool, own_sizes: bool = True
) -> tuple[LoadedModel, DataView, data.Dataset]:
    """The model (`args.model`) and the data (`--data`) a command reads, checked against
    each other with `check_fits` before any work: `(loaded, view, dataset)`. A model
    that resizes images itself gets them at their own sizes (`own_sizes`)."""
    loaded = load_model(args.model, out)
    view = view_for(loaded.model)
    dataset = load_data(
        args,
        loaded,
        require_labels=require_labels,
        view=view,
        subset="test",
        out=out,
        own_sizes=own_sizes,
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
        # images read at their own sizes: a sample of the first size
        arranged = view.model_inputs(dataset.take(dataset.size_groups()[0][:2]))
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
            known = f" ({data.shown(model_names, 12)})" if model_names else ""
            raise CommandError(
                f"{prefix}: {who} predicts {units} classes{known}; the data has {count} "
                f"({data.shown(names, 12)})"
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
    groups = dataset.size_groups()
    if len(groups) == 1:
        result = _predict_group(model, view, dataset, batch_size, out)
    else:  # images at their own sizes: one size at a time, back in the data's order
        parts = [_predict_group(model, view, dataset.subset(g), batch_size, out) for g in groups]
        order = np.concatenate(groups)

        def gather(*arrays):
            stacked = np.concatenate([np.asarray(a) for a in arrays])
            back = np.empty_like(stacked)
            back[order] = stacked
            return back

        result = keras.tree.map_structure(gather, *parts)
    tasks = output_names(model)
    if tasks is not None:
        if isinstance(result, dict):
            return {t: np.asarray(result[t]) for t in tasks}
        return {t: np.asarray(r) for t, r in zip(tasks, result)}
    key = next(iter(class_names_for(loaded, dataset, view)))
    return {key: np.asarray(result)}


def _predict_group(model, view: DataView, dataset: data.Dataset, batch_size: int, out):
    kwargs = keras_data(dataset, view, batch_size, with_labels=False)
    # A progress bar on a terminal; in logs and pipes the lines before say what runs.
    return model.predict(**kwargs, verbose=1 if progress(out) == 1 else 0)
