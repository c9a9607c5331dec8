"""Partial labels: half of task b's labels are missing. Learning from every sample with
masked task losses (`kbm.multitask.TaskLoss`) against dropping the samples that lack a
label, with all labels as the ceiling; and the same masked losses weighted by
uncertainty (Kendall et al.) or DWA (Liu et al.)."""

from __future__ import annotations

import keras
import numpy as np

import zoo
from benchmarks.experiments import data
from benchmarks.experiments.common import predict, seed_everything, summary, timer
from keras_bigmodel.multitask import (
    DynamicWeightAveraging,
    DynamicWeighting,
    MaskedMetric,
    TaskLoss,
    UncertaintyWeighting,
)

__all__ = ["SETTINGS", "VARIANTS", "run"]

SETTINGS = {
    "full": {
        "runs": 5,
        "n_train": 1000,
        "n_test": 4000,
        "missing": 0.5,
        "epochs": 40,
        "batch_size": 50,
        "learning_rate": 3e-3,
    },
    "quick": {
        "runs": 2,
        "n_train": 200,
        "n_test": 200,
        "missing": 0.5,
        "epochs": 1,
        "batch_size": 50,
        "learning_rate": 3e-3,
    },
}
VARIANTS = (
    "all_labels",
    "dropped_samples",
    "masked_labels",
    "masked_uncertainty",
    "masked_dwa",
)
DIM, LATENT, TRUNK = 20, 8, (32,)
CLASSES = {"a": 4, "b": 3}
MISSING = -1  # integer labels cannot hold NaN: -1 marks a missing class


def _model(variant: str, learning_rate: float):
    tasks = {t: {"units": k, "activation": "softmax"} for t, k in CLASSES.items()}
    base = zoo.build("multitask", input_shape=(DIM,), trunk_units=TRUNK, tasks=tasks, compile=False)
    weighting, callbacks = None, []
    if variant == "masked_uncertainty":
        weighting = UncertaintyWeighting(list(CLASSES), name="weighting")
    elif variant == "masked_dwa":
        weighting = DynamicWeighting(list(CLASSES), name="weighting")
        callbacks = [DynamicWeightAveraging(weighting)]
    model = base if weighting is None else keras.Model(base.input, weighting(base.output))
    mask_value = MISSING if variant.startswith("masked") else None
    if weighting is None:
        losses = {
            t: TaskLoss("sparse_categorical_crossentropy", task=t, mask_value=mask_value)
            for t in CLASSES
        }
    else:
        losses = weighting.losses("sparse_categorical_crossentropy", mask_value=mask_value)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        loss=losses,
        metrics={
            t: [MaskedMetric("sparse_categorical_accuracy", mask_value=MISSING)] for t in CLASSES
        },
    )
    return model, callbacks


def run(settings: dict, log=print) -> dict:
    rows = {v: {"a": [], "b": []} for v in VARIANTS}
    for run_index in range(settings["runs"]):
        seed = 300 + run_index
        rng = np.random.default_rng(seed)
        mixing = rng.normal(size=(DIM, LATENT)) / np.sqrt(DIM) * 2.0
        heads = {t: rng.normal(size=(LATENT, k)) for t, k in CLASSES.items()}
        x, y = data.two_tasks(settings["n_train"], rng, mixing, heads)
        x_test, y_test = data.two_tasks(settings["n_test"], rng, mixing, heads)
        labelled = rng.permutation(len(x)) >= int(settings["missing"] * len(x))
        y_partial = {"a": y["a"], "b": np.where(labelled, y["b"], MISSING)}
        for variant in VARIANTS:
            seed_everything(seed)
            model, callbacks = _model(variant, settings["learning_rate"])
            epochs = settings["epochs"]
            if variant == "all_labels":
                fit_x, fit_y = x, y
            elif variant == "dropped_samples":
                # Half the samples: twice the epochs, so that every variant takes the
                # same number of gradient steps.
                fit_x, fit_y = x[labelled], {t: v[labelled] for t, v in y.items()}
                epochs = round(epochs / labelled.mean())
            else:
                fit_x, fit_y = x, y_partial
            with timer() as t:
                model.fit(
                    fit_x,
                    fit_y,
                    epochs=epochs,
                    batch_size=settings["batch_size"],
                    verbose=0,
                    callbacks=callbacks,
                )
            pred = predict(model, x_test)
            for task in CLASSES:
                rows[variant][task].append(float(np.mean(pred[task].argmax(-1) == y_test[task])))
            log(
                f"  run {run_index} {variant:<19} accuracy a {rows[variant]['a'][-1]:.3f} "
                f"b {rows[variant]['b'][-1]:.3f} ({t.seconds:.1f} s)"
            )
    return {
        "settings": settings,
        "variants": {v: {t: summary(r) for t, r in tasks.items()} for v, tasks in rows.items()},
    }
