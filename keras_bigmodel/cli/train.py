"""`train PRESET --data PATH --out DIR`: a zoo preset fitted to the user's data.

The preset's `DataView` sets its input shapes and classes from the data; integer
labels train with sparse losses, one-hot rows with categorical ones. The result is a
preset directory (`zoo.save_preset`: model.keras + preset.json) plus data.json (class
names and how the data was read, so that `evaluate`, `predict` and `explain` read new
data the same way and report classes by name) and metrics.json.
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
    """The overrides that fit the preset to the data (shapes, classes by name)."""
    sample = dataset.take(np.arange(min(len(dataset), 2)))
    try:
        config = view.config_for(sample, view.model_targets(dict(dataset.labels)))
    except ValueError as e:
        raise CommandError(f"preset '{preset}' cannot take {dataset.source}: {e}") from None
    names = dataset.class_names
    if view.target == "classes":
        config[view.classes_key] = len(next(iter(names.values())))
    elif view.target == "tasks":
        for task, spec in config.get(view.tasks_key, {}).items():
            spec["units"] = len(names[task])
    return config


def _check_out(path: str) -> None:
    if os.path.lexists(path) and not os.path.isdir(path):
        raise CommandError(f"--out {path} exists and is not a directory")


def _validation_scores(loaded, view, validation, batch_size, out) -> dict:
    outputs = predict(loaded, view, validation, batch_size, out)
    scores = {}
    for task, probabilities in outputs.items():
        labels = validation.labels[task] if task in validation.labels else validation.y
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
    dataset = load_data(args, None, require_labels=True, view=view, subset="train", out=out)
    for task, names in dataset.class_names.items():
        if len(names) < 2 and view.target != "binary":
            raise CommandError(
                f"{dataset.source}: training needs at least two classes; '{task}' has one "
                f"({names[0]})"
            )
    mode, dataset = _label_mode(dataset, view)
    config = _config(args.preset, view, dataset)
    overrides = dict(args.set or [])
    model = zoo.build(args.preset, labels=mode, **{**config, **overrides})
    loaded = LoadedModel(model, args.out, {"class_names": dataset.class_names})
    check_fits(loaded, view, dataset)
    shown = json.dumps({**config, **overrides}, default=str)
    say(
        out,
        f"model: {args.preset} with {shown}: {model.count_params():,} parameters, {mode} labels",
    )

    train, validation = dataset.split(args.validation_split, seed=args.seed)
    say(
        out,
        f"training on {len(train):,} examples"
        + (f", validating on {len(validation):,}" if validation is not None else "")
        + f", {args.epochs} epochs of batches of {args.batch_size}",
    )
    callbacks = []
    if args.early_stopping:
        monitor = "val_loss" if validation is not None else "loss"
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor, patience=args.patience, restore_best_weights=True
            )
        )
    fit_data = keras_data(train, view, args.batch_size, shuffle=True, seed=args.seed)
    validation_data = None
    if validation is not None:
        val = keras_data(validation, view, args.batch_size)
        validation_data = val["x"] if "y" not in val else (val["x"], val["y"])
    history = model.fit(
        **fit_data,
        shuffle=True,
        validation_data=validation_data,
        epochs=args.epochs,
        callbacks=callbacks,
        verbose=progress(out),
    )
    epochs_run = len(history.history.get("loss", []))
    scores = None
    if validation is not None:
        scores = _validation_scores(loaded, view, validation, args.batch_size, out)

    say(out, f"saving {args.out} ...")
    zoo.save_preset(model, args.out)
    record = dataset.record()
    record.update({"label_mode": mode, "target": view.target, "preset": args.preset})
    write_data_record(args.out, record)
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
