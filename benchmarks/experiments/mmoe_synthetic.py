"""The MMoE paper's synthetic benchmark: shared-bottom, MMoE and PLE as the correlation
of two regression tasks falls (Ma et al., KDD 2018, section 4)."""

from __future__ import annotations

import keras
import numpy as np

import zoo
from benchmarks.experiments import data
from benchmarks.experiments.common import predict, seed_everything, summary, timer

__all__ = ["MODELS", "SETTINGS", "build", "run"]

MODELS = ("shared_bottom", "mmoe", "ple")
SETTINGS = {
    # One pass over 50,000 fresh examples (no example seen twice, so the models are
    # compared on how well they fit both tasks, not on over-fitting a small sample).
    "full": {
        "correlations": [1.0, 0.9, 0.5, 0.0],
        "runs": 5,
        "n_train": 50_000,
        "n_test": 5000,
        "epochs": 1,
        "batch_size": 64,
        "learning_rate": 2e-3,
    },
    "quick": {
        "correlations": [1.0, 0.0],
        "runs": 2,
        "n_train": 300,
        "n_test": 200,
        "epochs": 1,
        "batch_size": 64,
        "learning_rate": 2e-3,
    },
}
# The paper's sizes: 8 experts of 16 units, towers of 8; the shared bottom is as wide as
# needed for the same number of weights (126 units: 14,776 against MMoE's 14,834).
D, C, M, NOISE = 100, 1.0, 10, 0.1
SHARED_BOTTOM_UNITS, NUM_EXPERTS, EXPERT_UNITS, TOWER_UNITS = 126, 8, 16, 8
TASKS = {"y1": {"units": 1}, "y2": {"units": 1}}


def build(kind: str, learning_rate: float) -> keras.Model:
    """One of the three models, from the zoo, compiled with MSE per task."""
    common = {
        "input_shape": (D,),
        "loss": "mse",
        "metrics": None,
        "optimizer": keras.optimizers.Adam(learning_rate),
    }
    if kind == "shared_bottom":
        tasks = {t: {**spec, "hidden_units": [TOWER_UNITS]} for t, spec in TASKS.items()}
        return zoo.build("multitask", trunk_units=(SHARED_BOTTOM_UNITS,), tasks=tasks, **common)
    towers = {"tasks": TASKS, "tower_units": (TOWER_UNITS,), "expert_units": (EXPERT_UNITS,)}
    if kind == "mmoe":
        return zoo.build("mmoe", num_experts=NUM_EXPERTS, **towers, **common)
    if kind == "ple":
        # One extraction level (CGC) with the same 8 experts: 2 per task and 4 shared.
        return zoo.build(
            "ple", num_levels=1, num_task_experts=2, num_shared_experts=4, **towers, **common
        )
    raise ValueError(f"unknown model {kind!r}")


def run(settings: dict, log=print) -> dict:
    """Trains every model at every correlation, `runs` times; returns the results."""
    results = {"settings": settings, "models": {}, "label_correlation": {}, "parameters": {}}
    for kind in MODELS:
        results["parameters"][kind] = build(kind, 1e-3).count_params()
    for p in settings["correlations"]:
        losses = {kind: [] for kind in MODELS}
        label_corr = []
        for run_index in range(settings["runs"]):
            seed = 1000 * run_index + round(p * 100)
            rng = np.random.default_rng(seed)
            x, y, u = data.mmoe_synthetic(settings["n_train"], p, rng, D, C, M, NOISE)
            x_test, y_test, _ = data.mmoe_synthetic(settings["n_test"], p, rng, D, C, M, NOISE, u)
            label_corr.append(np.corrcoef(y["y1"][:, 0], y["y2"][:, 0])[0, 1])
            for kind in MODELS:
                seed_everything(seed)
                model = build(kind, settings["learning_rate"])
                with timer() as t:
                    model.fit(
                        x,
                        y,
                        epochs=settings["epochs"],
                        batch_size=settings["batch_size"],
                        verbose=0,
                    )
                pred = predict(model, x_test)
                mse = {k: float(np.mean((pred[k] - y_test[k]) ** 2)) for k in y_test}
                losses[kind].append(mse)
                log(
                    f"  p={p:.1f} run {run_index} {kind:<13} test MSE y1 {mse['y1']:.3f} "
                    f"y2 {mse['y2']:.3f} ({t.seconds:.1f} s)"
                )
        results["label_correlation"][str(p)] = summary(label_corr)
        for kind in MODELS:
            entry = results["models"].setdefault(kind, {})
            entry[str(p)] = {
                "mse": summary([(m["y1"] + m["y2"]) / 2 for m in losses[kind]]),
                "mse_y1": summary([m["y1"] for m in losses[kind]]),
                "mse_y2": summary([m["y2"] for m in losses[kind]]),
            }
    results["degradation"] = {
        kind: {
            str(p): entry[str(p)]["mse"]["mean"]
            - entry[str(settings["correlations"][0])]["mse"]["mean"]
            for p in settings["correlations"]
        }
        for kind, entry in results["models"].items()
    }
    return results
