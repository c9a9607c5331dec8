"""Missing and useless modalities: two-branch `Fusion` models (a) where one modality is
pure noise, and (b) where a modality is absent at test time, trained with and without
`modality_dropout`."""

from __future__ import annotations

import keras
import numpy as np

from benchmarks.experiments import data
from benchmarks.experiments.common import predict, seed_everything, summary, timer
from keras_bigmodel.layers import Fusion, TaskHead

__all__ = ["SETTINGS", "build", "run"]

SETTINGS = {
    "full": {
        "runs": 3,
        "n_train": 3000,
        "n_test": 2000,
        "epochs": 15,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "noise_modes": ["attention", "gated", "weighted"],
        "missing_mode": "attention",
        "modality_dropout": 0.3,
    },
    "quick": {
        "runs": 2,
        "n_train": 300,
        "n_test": 200,
        "epochs": 1,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "noise_modes": ["attention"],
        "missing_mode": "attention",
        "modality_dropout": 0.3,
    },
}
CLASSES, DIM_A, DIM_B, BRANCH_UNITS = 4, 16, 16, 16
# Class prototypes N(0, 1) plus Gaussian scatter: each modality alone is informative but
# noisy (about 75-80% accuracy), both together better.
SCATTER = {"a": 2.2, "b": 2.2}


def build(mode: str, learning_rate: float, modality_dropout: float = 0.0, branches=("a", "b")):
    """Inputs `a`, `b` and `present` (batch, 2) -> Dense(16, relu) per branch -> Fusion
    -> softmax. Returns `(model, weights_model)`; the second gives the fusion's weight of
    each branch (for modes that weigh branches)."""
    inputs = {name: keras.Input((DIM_A if name == "a" else DIM_B,), name=name) for name in branches}
    if len(branches) == 1:
        (name,) = branches
        x = keras.layers.Dense(BRANCH_UNITS, activation="relu", name=f"branch_{name}")(inputs[name])
        out = TaskHead(CLASSES, activation="softmax", name="label")(x)
        model = keras.Model(inputs, out)
        model.compile(
            keras.optimizers.Adam(learning_rate),
            "sparse_categorical_crossentropy",
            metrics=["sparse_categorical_accuracy"],
        )
        return model, None
    present = keras.Input((2,), name="present")
    encoded = {
        name: keras.layers.Dense(BRANCH_UNITS, activation="relu", name=f"branch_{name}")(t)
        for name, t in inputs.items()
    }
    fusion = Fusion(
        mode, units=BRANCH_UNITS, modality_dropout=modality_dropout, seed=7, name="fusion"
    )
    weighs = mode in ("attention", "gated", "weighted")
    if weighs:
        fused, weights = fusion(encoded, modality_mask=present, return_weights=True)
    else:
        fused, weights = fusion(encoded, modality_mask=present), None
    out = TaskHead(CLASSES, activation="softmax", name="label")(fused)
    all_inputs = {**inputs, "present": present}
    model = keras.Model(all_inputs, out)
    model.compile(
        keras.optimizers.Adam(learning_rate),
        "sparse_categorical_crossentropy",
        metrics=["sparse_categorical_accuracy"],
    )
    return model, (keras.Model(all_inputs, weights) if weighs else None)


def _accuracy(model, features, labels) -> float:
    return float(np.mean(np.argmax(predict(model, features), axis=-1) == labels))


def _prototypes(rng, noise_b: bool) -> dict:
    return {
        "a": rng.normal(size=(CLASSES, DIM_A)),
        "b": None if noise_b else rng.normal(size=(CLASSES, DIM_B)),
    }


def _fit(model, x, y, settings):
    with timer() as t:
        model.fit(x, y, epochs=settings["epochs"], batch_size=settings["batch_size"], verbose=0)
    return t.seconds


def run(settings: dict, log=print) -> dict:
    results = {"settings": settings, "noise": {}, "missing": {}}
    both = None
    # (a) modality b is pure noise: the learned weights must favour a.
    noise_rows = {mode: {"weight_a": [], "accuracy": []} for mode in settings["noise_modes"]}
    only_a = []
    for run_index in range(settings["runs"]):
        seed = 500 + run_index
        rng = np.random.default_rng(seed)
        protos = _prototypes(rng, noise_b=True)
        scatter = {"a": SCATTER["a"], "b": DIM_B}
        x, y = data.two_modalities(settings["n_train"], rng, protos, scatter, CLASSES)
        x_test, y_test = data.two_modalities(settings["n_test"], rng, protos, scatter, CLASSES)
        both = np.ones((settings["n_train"], 2), "float32")
        both_test = np.ones((settings["n_test"], 2), "float32")
        for mode in settings["noise_modes"]:
            seed_everything(seed)
            model, weights_model = build(mode, settings["learning_rate"])
            seconds = _fit(model, {**x, "present": both}, y, settings)
            w = predict(weights_model, {**x_test, "present": both_test})
            acc = _accuracy(model, {**x_test, "present": both_test}, y_test)
            noise_rows[mode]["weight_a"].append(float(w[:, 0].mean()))
            noise_rows[mode]["accuracy"].append(acc)
            log(
                f"  noise run {run_index} {mode:<9} weight(a) {w[:, 0].mean():.3f} "
                f"accuracy {acc:.3f} ({seconds:.1f} s)"
            )
        seed_everything(seed)
        model, _ = build(None, settings["learning_rate"], branches=("a",))
        _fit(model, {"a": x["a"]}, y, settings)
        only_a.append(_accuracy(model, {"a": x_test["a"]}, y_test))
    results["noise"] = {
        mode: {k: summary(v) for k, v in rows.items()} for mode, rows in noise_rows.items()
    }
    results["noise"]["a_only_accuracy"] = summary(only_a)

    # (b) both informative; at test time one is missing (modality_mask 0, input zeros).
    conditions = {"both": (1, 1), "a_missing": (0, 1), "b_missing": (1, 0)}
    variants = {
        "no_modality_dropout": 0.0,
        f"modality_dropout_{settings['modality_dropout']}": settings["modality_dropout"],
    }
    rows = {v: {c: [] for c in conditions} for v in variants}
    single = {"a_only": [], "b_only": []}
    mode = settings["missing_mode"]
    for run_index in range(settings["runs"]):
        seed = 700 + run_index
        rng = np.random.default_rng(seed)
        protos = _prototypes(rng, noise_b=False)
        x, y = data.two_modalities(settings["n_train"], rng, protos, SCATTER, CLASSES)
        x_test, y_test = data.two_modalities(settings["n_test"], rng, protos, SCATTER, CLASSES)
        both = np.ones((settings["n_train"], 2), "float32")
        for variant, rate in variants.items():
            seed_everything(seed)
            model, _ = build(mode, settings["learning_rate"], modality_dropout=rate)
            seconds = _fit(model, {**x, "present": both}, y, settings)
            for condition, (has_a, has_b) in conditions.items():
                present = np.tile(np.array([[has_a, has_b]], "float32"), (len(y_test), 1))
                features = {
                    "a": x_test["a"] * has_a,  # a missing modality arrives as zeros
                    "b": x_test["b"] * has_b,
                    "present": present,
                }
                rows[variant][condition].append(_accuracy(model, features, y_test))
            log(
                f"  missing run {run_index} {variant:<24} "
                + " ".join(f"{c} {rows[variant][c][-1]:.3f}" for c in conditions)
                + f" ({seconds:.1f} s)"
            )
        for name in ("a", "b"):
            seed_everything(seed)
            model, _ = build(None, settings["learning_rate"], branches=(name,))
            _fit(model, {name: x[name]}, y, settings)
            single[f"{name}_only"].append(_accuracy(model, {name: x_test[name]}, y_test))
    results["missing"] = {
        "mode": mode,
        "variants": {v: {c: summary(r) for c, r in cs.items()} for v, cs in rows.items()},
        "single_modality": {k: summary(v) for k, v in single.items()},
    }
    return results
