"""`train PRESET --data PATH --out DIR`: a zoo preset fitted to the user's data.

The preset's `DataView` sets its input shapes and classes from the data; integer
labels train with sparse losses, one-hot rows with categorical ones. The result is a
preset directory (`zoo.save_preset`: model.keras + preset.json) plus data.json (class
names and how the data was read, so that `evaluate`, `predict` and `explain` read new
data the same way and report classes by name) and metrics.json.

An image preset (one input, of kind image) trained on a folder of images gets an
`ImagePreprocessing` front (`keras_bigmodel.data.image_preprocessing`): the saved
model takes raw pixels (0..255) of any size and resizes and rescales them itself. The
reader still resizes the training images (Pillow) to the network's size and the front
is then the identity resize and a rescaling by 1/255, so the network trains on the
pixels it did without the front.
"""

from __future__ import annotations

import copy
import json
import os

import keras
import numpy as np

import zoo
from keras_bigmodel import data, fileio
from keras_bigmodel.cli import _report
from keras_bigmodel.cli._common import (
    CommandError,
    LoadedModel,
    check_fits,
    keras_data,
    load_data,
    predict,
    progress,
    say,
    write_data_record,
)
from keras_bigmodel.data import image_preprocessing

__all__ = ["run_train"]


def _label_mode(dataset: data.Dataset, view) -> tuple[str, data.Dataset]:
    """`"categorical"` when every task has one-hot rows, else `"sparse"` (one-hot tasks
    mixed with integer ones are turned into integers)."""
    if view.target == "binary":
        return "categorical", dataset
    modes = {task: view.label_mode({task: y}) for task, y in dataset.labels.items()}
    if set(modes.values()) == {"categorical"}:
        return "categorical", dataset
    if "categorical" in modes.values():
        dataset = copy.copy(dataset)
        dataset.labels = dataset.sparse_labels()
    return "sparse", dataset


def _config(preset: str, view, dataset: data.Dataset) -> dict:
    """The overrides that fit the preset to the data (the view decides: shapes and
    classes by name, a tabular preset's columns fitted to the training rows)."""
    try:
        return view.config_for_dataset(dataset)
    except ValueError as e:
        raise CommandError(f"preset '{preset}' cannot take {dataset.source}: {e}") from None


def _masked_losses(model, dataset: data.Dataset, mode: str) -> dict | None:
    """`TaskLoss`es that leave out the masked (missing) labels of a multi-task table."""
    masked = dataset.info.get("masked_labels") or {}
    if not masked or not isinstance(model.output, dict):
        return None
    from keras_bigmodel.multitask import TaskLoss

    base = "sparse_categorical_crossentropy" if mode == "sparse" else "categorical_crossentropy"
    return {
        task: TaskLoss(base, task=task, mask_value=data.table.MASKED) if task in masked else base
        for task in model.output
    }


class _KeepBest(keras.callbacks.Callback):
    """Remembers the weights of the best epoch so far (by the monitored loss), in
    memory, so that an interrupted training can still save them."""

    def __init__(self, monitor: str):
        super().__init__()
        self.monitor = monitor
        self.best, self.epoch, self.weights = float("inf"), None, None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is not None and float(value) < self.best:
            self.best, self.epoch = float(value), epoch + 1
            self.weights = [np.array(w) for w in self.model.get_weights()]


def _brief(config: dict) -> dict:
    """The config as shown: a tabular model's columns by name and kind only."""
    shown = dict(config)
    if isinstance(shown.get("columns"), list):
        shown["columns"] = f"{len(shown['columns'])} columns"
    return shown


def _save_best(dataset: data.Dataset, mode: str, view, preset: str):
    def save(model, directory):
        zoo.save_preset(model, directory)
        record = dataset.record()
        record.update({"label_mode": mode, "target": view.target, "preset": preset})
        write_data_record(directory, record)

    return save


def takes_front(view, path: str) -> bool:
    """Whether `train` puts an `ImagePreprocessing` front before the preset: a preset
    with one input, of kind image, trained on a folder of images."""
    return (
        len(view.inputs) == 1
        and view.inputs[0].kind == "image"
        and data.kind_of_path(path) == "image"
        and os.path.isdir(path)  # a folder (the digits are arrays in [0, 1])
    )


def _check_out(path: str) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CommandError(f"--out {path} exists and is not a directory")


def _validation_scores(loaded, view, validation, batch_size, out) -> dict:
    outputs = predict(loaded, view, validation, batch_size, out)
    scores = {}
    for task, probabilities in outputs.items():
        labels = validation.labels[task] if task in validation.labels else validation.y
        if np.ndim(labels) == 1:
            present = np.asarray(labels) != data.table.MASKED  # masked labels are left out
            labels, probabilities = np.asarray(labels)[present], probabilities[present]
        names = validation.class_names.get(task) or [str(i) for i in range(probabilities.shape[-1])]
        if view.target == "binary":
            scores[task] = _report.binary_metrics(labels, probabilities, names)["accuracy"]
        else:
            scores[task] = _report.classification_metrics(labels, probabilities, names)["accuracy"]
    return scores


def run_train(args, out) -> None:
    """Reads the data, builds the preset for it, trains, saves the preset directory."""
    spec = zoo.get_preset(args.preset)  # an unknown name lists the close matches
    if spec.data is None:
        trainable = [n for n in zoo.list_presets() if zoo.get_preset(n).data is not None]
        raise CommandError(
            f"preset '{args.preset}' has no data view, so the command line cannot train it; "
            f"trainable presets: {', '.join(trainable)}"
        )
    _check_out(args.out)
    view = spec.data
    keras.utils.set_random_seed(args.seed)
    front = takes_front(view, args.data)
    dataset = load_data(
        args,
        None,
        require_labels=True,
        view=view,
        subset="train",
        out=out,
        who=f"preset '{args.preset}'",
        pixels="raw" if front else None,
    )
    for task, names in dataset.class_names.items():
        if len(names) < 2 and view.target != "binary":
            raise CommandError(
                f"{dataset.source}: training needs at least two classes; '{task}' has one "
                f"({names[0]})"
            )
    mode, dataset = _label_mode(dataset, view)
    train, validation = dataset.split(args.validation_split, seed=args.seed)
    config = _config(args.preset, view, train)
    encoding = getattr(args, "categorical_encoding", None)
    if encoding is not None:
        if "columns" not in config:
            raise CommandError(
                f"--categorical-encoding applies to presets that encode table columns "
                f"(tabular); preset '{args.preset}' does not"
            )
        config["categorical_encoding"] = encoding
    overrides = dict(args.set or [])
    try:
        model = zoo.build(args.preset, labels=mode, **{**config, **overrides})
    except (ValueError, TypeError) as e:
        raise CommandError(f"preset '{args.preset}' with {sorted(overrides)}: {e}") from None
    losses = _masked_losses(model, dataset, mode)
    if losses is not None:
        model = zoo.build(args.preset, labels=mode, loss=losses, **{**config, **overrides})
    if front:
        try:
            model = image_preprocessing.with_front(model)
        except ValueError as e:
            raise CommandError(f"preset '{args.preset}' cannot take raw images: {e}") from None
    loaded = LoadedModel(model, args.out, {"class_names": dataset.class_names})
    check_fits(loaded, view, dataset)
    shown = json.dumps(_brief({**config, **overrides}), default=str)
    say(
        out,
        f"model: {args.preset} with {shown}: {model.count_params():,} parameters, {mode} labels",
    )
    if front:
        height, width = image_preprocessing.front_of(model).size
        say(
            out,
            f"inside the model: images of any size resized to {height}x{width} and pixels "
            f"scaled by 1/255 (the model takes raw 0..255 pixels)",
        )

    say(
        out,
        f"training on {len(train):,} examples"
        + (f", validating on {len(validation):,}" if validation is not None else "")
        + f", {args.epochs} epochs of batches of {args.batch_size}",
    )
    callbacks = []
    monitor = "val_loss" if validation is not None else "loss"
    if args.early_stopping:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=args.patience, restore_best_weights=True
            )
        )
    keep_best = _KeepBest(monitor)
    callbacks.append(keep_best)
    save = _save_best(dataset, mode, view, args.preset)
    fit_data = keras_data(train, view, args.batch_size, shuffle=True, seed=args.seed)
    validation_data = None
    if validation is not None:
        val = keras_data(validation, view, args.batch_size)
        validation_data = val["x"] if "y" not in val else (val["x"], val["y"])
    try:
        history = model.fit(
            **fit_data,
            shuffle=True,
            validation_data=validation_data,
            epochs=args.epochs,
            callbacks=callbacks,
            verbose=progress(out),
        )
    except KeyboardInterrupt:
        if keep_best.epoch is None:
            raise KeyboardInterrupt(
                f"before the first epoch ended; nothing was saved to {args.out}"
            ) from None
        model.set_weights(keep_best.weights)
        save(model, args.out)
        raise KeyboardInterrupt(
            f"the best model so far (epoch {keep_best.epoch} of {args.epochs}, {monitor} "
            f"{keep_best.best:.4f}) is saved in {args.out}"
        ) from None
    epochs_run = len(history.history.get("loss", []))
    scores = None
    if validation is not None:
        scores = _validation_scores(loaded, view, validation, args.batch_size, out)

    say(out, f"saving {args.out} ...")
    save(model, args.out)
    metrics = {
        "preset": args.preset,
        "data": dataset.source,
        "examples": {
            "train": len(train),
            "validation": 0 if validation is None else len(validation),
        },
        "skipped": len(dataset.skipped),
        "epochs": args.epochs,
        "epochs_run": epochs_run,
        "early_stopping": bool(args.early_stopping),
        "label_mode": mode,
        "config": {**config, **overrides},
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "validation_accuracy": scores,
    }
    fileio.write_json_atomic(os.path.join(args.out, "metrics.json"), metrics)
    stopped = f" (early stopping after {epochs_run})" if epochs_run < args.epochs else ""
    if scores:
        result = "validation accuracy " + ", ".join(
            f"{v:.3f}" if len(scores) == 1 else f"{k} {v:.3f}" for k, v in scores.items()
        )
    else:
        result = f"final training loss {history.history['loss'][-1]:.4f}"
    say(
        out,
        f"trained {args.preset} for {args.epochs} epochs{stopped}: {result} -> {args.out} "
        f"({', '.join(sorted(os.listdir(args.out)))})",
    )
