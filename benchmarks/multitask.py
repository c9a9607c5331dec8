"""Multi-task optimisation: gradient aggregation methods against tuned equal weighting.

    python -m benchmarks.multitask            # the full run: 3 seeds, 4 problems, every
                                              # method timed (about 40 min on 2 CPU cores)
    python -m benchmarks.multitask --quick    # a smoke run (about 3 minutes): 2 seeds, one
                                              # problem (MMoE p=0.9), 2 methods timed
    python -m benchmarks.multitask --parts quality   # one part only (cost or quality)

Two parts, on the Keras backend in use (offline data, seeded):

1. **Cost**: the train-step time of each method against equal weighting (a plain Keras
   model compiled with the sum of the task losses: one backward pass, the honest floor),
   for 2, 5 and 20 tasks on one shared trunk.
2. **Quality**: for each problem, single-task models (one per task), equal weighting
   (EW) with its learning rate tuned on a validation split, uncertainty weighting (UW),
   DWA, and every method of `kbm.multitask.METHODS` (plus MGDA-UB) trained with the EW
   learning rate. The learning rates (of EW and of each single-task model) are picked on
   the validation split of the first seed from (1e-3, 3e-3, 1e-2, 3e-2) and kept for the
   other seeds, so every seed after the first is a fresh draw of data and initialisation
   at fixed hyperparameters. Reported per method: the test metric of each task (mean ± sample std
   over seeds) and Delta_m, the mean relative improvement over the single-task models,
   as LibMTL computes it: `Delta_m = 100 / K * sum_k (-1)^{l_k} (M_k - B_k) / B_k`
   (`l_k = 1` when lower is better), so positive is better.

Problems: the MMoE paper's synthetic regression tasks at correlation 0.9 and 0.1
(`benchmarks.experiments.data.mmoe_synthetic`); scikit-learn's digits with four tasks
(the digit, its parity, digit > 4, and a noisy task: digit mod 3 with 40% of the training
labels replaced at random, scored on clean labels); and a tabular set (scikit-learn's
breast-cancer data: the diagnosis, and the mean texture and mean smoothness as regression
targets with their columns removed from the inputs).

Writes `results.json` and `multitask.png` to `--out` (default
`benchmarks/results-multitask/`) and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import keras
import numpy as np

from benchmarks.experiments.common import seed_everything, summary
from benchmarks.experiments.data import mmoe_synthetic
from keras_bigmodel.layers import MultiTaskHead
from keras_bigmodel.layers.multi_task_head import task_outputs
from keras_bigmodel.multitask import (
    METHODS,
    DynamicWeightAveraging,
    DynamicWeighting,
    MultiTaskModel,
    UncertaintyWeighting,
)

__all__ = ["main", "problems", "step_costs"]


# --------------------------------------------------------------------------- data
def _split(x, ys, rng, val=0.15, test=0.25):
    n = len(x)
    order = rng.permutation(n)
    n_test, n_val = int(n * test), int(n * val)
    parts = (order[n_test + n_val :], order[n_test : n_test + n_val], order[:n_test])
    return [(x[p], {t: y[p] for t, y in ys.items()}) for p in parts]


def _standardize(train, *others):
    mu, sd = train.mean(0), train.std(0) + 1e-8
    return [(a - mu) / sd for a in (train, *others)]


def problems(quick: bool, seed: int):
    """`{name: (splits, tasks)}`; `tasks[t] = (kind, units)` with kind "reg" or "cls"."""
    rng = np.random.default_rng(seed)
    out = {}
    n = 1000 if quick else 6000
    settings = (("mmoe_p0.9", 0.9),) if quick else (("mmoe_p0.9", 0.9), ("mmoe_p0.1", 0.1))
    for name, corr in settings:
        x, ys, _ = mmoe_synthetic(n, corr, rng)
        out[name] = (_split(x, ys, rng), {"y1": ("reg", 1), "y2": ("reg", 1)})
    if not quick:
        from sklearn.datasets import load_breast_cancer, load_digits

        digits = load_digits()
        x = (digits.data / 16.0).astype("float32")
        d = digits.target
        noisy = d % 3
        ys = {"digit": d, "parity": d % 2, "gt4": (d > 4).astype(int), "noisy": noisy}
        splits = _split(x, ys, rng)
        train_noisy = splits[0][1]["noisy"].copy()
        flip = rng.random(len(train_noisy)) < 0.4
        train_noisy[flip] = rng.integers(0, 3, size=flip.sum())
        splits[0][1]["noisy"] = train_noisy
        tasks = {"digit": ("cls", 10), "parity": ("cls", 2), "gt4": ("cls", 2), "noisy": ("cls", 3)}
        out["digits"] = (_onehot(splits, tasks), tasks)
        bc = load_breast_cancer()
        data = bc.data
        targets = {"texture": 1, "smoothness": 4}
        drop = [1, 11, 21, 4, 14, 24]
        x = np.delete(data, drop, axis=1)
        ys = {"diagnosis": bc.target, **{t: data[:, c : c + 1] for t, c in targets.items()}}
        splits = _split(x.astype("float32"), ys, rng)
        xs = _standardize(*(s[0] for s in splits))
        for t in targets:
            ts = _standardize(*(s[1][t] for s in splits))
            for s, v in zip(splits, ts):
                s[1][t] = v.astype("float32")
        splits = [(xx.astype("float32"), s[1]) for xx, s in zip(xs, splits)]
        tasks = {"diagnosis": ("cls", 2), "texture": ("reg", 1), "smoothness": ("reg", 1)}
        out["tabular"] = (_onehot(splits, tasks), tasks)
    return out


def _onehot(splits, tasks):
    for _, ys in splits:
        for t, (kind, units) in tasks.items():
            if kind == "cls":
                ys[t] = np.eye(units, dtype="float32")[ys[t].astype(int)]
    return splits


# ------------------------------------------------------------------------- models
def _net(d, tasks, hidden=(64, 32)):
    inputs = keras.Input((d,))
    x = inputs
    for i, h in enumerate(hidden):
        x = keras.layers.Dense(h, activation="relu", name=f"trunk_{i}")(x)
    specs = {
        t: {"units": u, "activation": "softmax" if kind == "cls" else None}
        for t, (kind, u) in tasks.items()
    }
    return keras.Model(inputs, task_outputs(MultiTaskHead(specs, name="heads")(x)))


def _losses(tasks):
    return {
        t: "categorical_crossentropy" if kind == "cls" else "mse" for t, (kind, _) in tasks.items()
    }


def _scores(model, x, ys, tasks):
    pred = model(x)
    out = {}
    for t, (kind, _) in tasks.items():
        p = np.asarray(keras.ops.convert_to_numpy(pred[t]))
        if kind == "cls":
            out[t] = float(np.mean(p.argmax(1) == ys[t].argmax(1)))
        else:
            out[t] = float(np.mean((p - ys[t]) ** 2))
    return out


def _train(variant, data, tasks, lr, epochs, batch, seed):
    (xtr, ytr), (xva, yva), (xte, yte) = data
    keras.utils.set_random_seed(seed)
    net = _net(xtr.shape[1], tasks)
    callbacks = []
    if variant == "ew":
        model = net
        model.compile(keras.optimizers.Adam(lr), loss=_losses(tasks))
    elif variant in ("uw", "dwa"):
        layer = (UncertaintyWeighting if variant == "uw" else DynamicWeighting)(list(tasks))
        model = keras.Model(net.input, layer(net.output))
        model.compile(keras.optimizers.Adam(lr), loss=layer.losses(_losses(tasks)))
        if variant == "dwa":
            callbacks = [DynamicWeightAveraging(layer)]
    else:
        method, rep = (variant[:-3], "trunk_1") if variant.endswith("_ub") else (variant, None)
        model = MultiTaskModel(net, method, representation=rep)
        model.compile(keras.optimizers.Adam(lr), loss=_losses(tasks))
    model.fit(xtr, ytr, epochs=epochs, batch_size=batch, verbose=0, callbacks=callbacks)
    return _scores(model, xva, yva, tasks), _scores(model, xte, yte, tasks)


def _delta_m(scores, base, tasks):
    terms = []
    for t, (kind, _) in tasks.items():
        sign = -1.0 if kind == "reg" else 1.0  # (-1)^{l_k}: lower-is-better flips
        terms.append(sign * (scores[t] - base[t]) / base[t])
    return 100.0 * float(np.mean(terms))


def _val_score(scores, tasks):
    """One number to pick the learning rate with: mean of accuracy and -log MSE."""
    return float(np.mean([s if tasks[t][0] == "cls" else -np.log(s) for t, s in scores.items()]))


def quality(quick: bool, seeds):
    lrs = (1e-2,) if quick else (1e-3, 3e-3, 1e-2, 3e-2)
    epochs = 2 if quick else 20
    variants = ["uw", "dwa", *METHODS, "mgda_ub"]
    results = {}
    chosen = {}  # (problem, task or "ew") -> the learning rate picked on the first seed

    batch = 64 if quick else 128

    def tuned(key, data, tasks, seed):
        """(lr, (val, test)): over the grid on the first seed, at its pick afterwards."""
        grid = (chosen[key],) if key in chosen else lrs
        runs = [(lr, _train("ew", data, tasks, lr, epochs, batch, seed)) for lr in grid]
        best = max(runs, key=lambda r: _val_score(r[1][0], tasks))
        chosen[key] = best[0]
        return best

    for seed in seeds:
        for name, (data, tasks) in problems(quick, seed).items():
            # single-task baselines, each with its own tuned learning rate
            base = {}
            for t in tasks:
                sub = [(x, {t: y[t]}) for x, y in data]
                base[t] = tuned((name, t), sub, {t: tasks[t]}, seed)[1][1][t]
            lr, (_, ew_test) = tuned((name, "ew"), data, tasks, seed)
            runs = {"ew (tuned lr)": ew_test}
            for variant in variants:
                runs[variant] = _train(variant, data, tasks, lr, epochs, batch, seed)[1]
            entry = results.setdefault(name, {"tasks": list(tasks), "runs": {}})
            for variant, scores in runs.items():
                record = entry["runs"].setdefault(variant, {"delta_m": [], "scores": []})
                record["delta_m"].append(_delta_m(scores, base, tasks))
                record["scores"].append(scores)
            entry.setdefault("lr", []).append(lr)
            print(f"  seed {seed} {name}: EW lr {lr}", flush=True)
    for entry in results.values():
        for record in entry["runs"].values():
            record["delta_m_summary"] = summary(record["delta_m"])
    return results


# --------------------------------------------------------------------------- cost
def step_costs(quick: bool):
    """Median train-step seconds of each method for 2, 5 and 20 tasks. The models of one
    task count are compiled first, then timed in rounds (one step of each model per
    round, in a fresh order each round), so that a change in the machine's load falls
    on every method alike rather than on the ones timed at that moment."""
    tasks_counts = (2, 5, 20)
    methods = ("sum", "pcgrad") if quick else (*METHODS, "mgda_ub")
    rounds = 3 if quick else 25
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 64)).astype("float32")
    out = {}
    for k in tasks_counts:
        tasks = {f"t{i}": ("reg", 1) for i in range(k)}
        y = {t: rng.normal(size=(256, 1)).astype("float32") for t in tasks}
        variants = ("ew", *methods)
        models = {}
        for variant in variants:
            keras.utils.set_random_seed(0)
            net = _net(64, tasks, hidden=(256, 256))
            if variant == "ew":
                model = net
            else:
                method, rep = (
                    (variant[:-3], "trunk_1") if variant.endswith("_ub") else (variant, None)
                )
                model = MultiTaskModel(net, method, representation=rep)
            model.compile(keras.optimizers.SGD(1e-3), loss=_losses(tasks))
            model.train_on_batch(x, y)  # compile
            model.train_on_batch(x, y)
            models[variant] = model
        samples = {variant: [] for variant in variants}
        order = np.random.default_rng(k)
        for _ in range(rounds):
            for variant in order.permutation(variants):
                start = time.perf_counter()
                models[variant].train_on_batch(x, y)
                samples[variant].append(time.perf_counter() - start)
        times = {v: float(np.median(t)) for v, t in samples.items()}
        floor = times.get("sum", times["ew"])
        out[k] = {
            v: {"seconds": t, "ratio": t / times["ew"], "ratio_sum": t / floor}
            for v, t in times.items()
        }
        print(f"  {k} tasks: " + ", ".join(f"{v} {r['ratio']:.2f}x" for v, r in out[k].items()))
    return out


# ------------------------------------------------------------------------- report
def _tables(cost, results):
    lines = ["step time against plain-Keras EW / against MultiTaskModel('sum'):", ""]
    lines.append("| method | " + " | ".join(f"{k} tasks" for k in cost) + " |")
    lines.append("| --- |" + " --- |" * len(cost))
    for v in next(iter(cost.values())):
        cells = [f"{cost[k][v]['ratio']:.2f}x / {cost[k][v]['ratio_sum']:.2f}x" for k in cost]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    lines.append("")
    names = list(results)
    lines.append("| method | " + " | ".join(f"Δm {n} (%)" for n in names) + " |")
    lines.append("| --- |" + " --- |" * len(names))
    for v in results[names[0]]["runs"]:
        cells = []
        for n in names:
            s = results[n]["runs"][v]["delta_m_summary"]
            cells.append(f"{s['mean']:+.1f} ± {s['std']:.1f}")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _figure(results, path):
    """Two panels: each method's Δm (mean over seeds), and its Δm minus tuned EW's in
    the same seed (mean, with the number of seeds it won)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    variants = list(results[names[0]]["runs"])
    dm = {
        (v, n): np.asarray(results[n]["runs"][v]["delta_m"], "float64")
        for v in variants
        for n in names
    }
    ew = "ew (tuned lr)"
    means = np.array([[dm[v, n].mean() for n in names] for v in variants])
    gains = np.array([[(dm[v, n] - dm[ew, n]).mean() for n in names] for v in variants])
    # a seed is won by more than 0.05 points (MultiTaskModel('sum') differs from plain
    # Keras EW by float rounding only)
    wins = np.array([[int(((dm[v, n] - dm[ew, n]) > 0.05).sum()) for n in names] for v in variants])
    seeds = len(dm[ew, names[0]])
    width = max(5.0, 1.5 + 1.3 * len(names))
    fig, axes = plt.subplots(1, 2, figsize=(2 * width + 1.5, 0.36 * len(variants) + 2.2))
    panels = (
        (means, "Δm against single-task models\n(mean over seeds)", "Δm (%), positive = better "
         "than single-task", lambda i, j: f"{means[i, j]:+.1f}"),
        (gains, f"Δm minus tuned EW's, paired by seed\n(mean; seeds won by > 0.05 of {seeds})",
         "Δm − EW's Δm (points), positive = beats tuned EW",
         lambda i, j: f"{gains[i, j]:+.1f} ({wins[i, j]}/{seeds})"),
    )  # fmt: skip
    for k, (ax, (values, title, label, text)) in enumerate(zip(axes, panels)):
        limit = max(1e-6, float(np.abs(values).max()))
        image = ax.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto")
        ax.set_xticks(range(len(names)), names)
        ax.set_yticks(range(len(variants)), variants if k == 0 else [""] * len(variants))
        for i in range(len(variants)):
            for j in range(len(names)):
                dark = abs(values[i, j]) > 0.6 * limit
                ax.text(j, i, text(i, j), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
        ax.set_xlabel("problem")
        if k == 0:
            ax.set_ylabel("training method")
        ax.set_title(title)
        fig.colorbar(image, ax=ax, label=label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.multitask")
    parser.add_argument("--quick", action="store_true", help="a smoke run (< 3 minutes)")
    parser.add_argument("--out", default=os.path.join("benchmarks", "results-multitask"))
    parser.add_argument(
        "--parts",
        default="cost,quality",
        help="comma-separated parts to run: cost, quality (a part not run keeps its "
        "results from --out's results.json)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if not parts or not parts <= {"cost", "quality"}:
        parser.error(f"--parts must name cost and/or quality; received {args.parts!r}")
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "results.json")
    previous = {}
    if parts != {"cost", "quality"}:
        if not os.path.exists(path):
            parser.error(f"--parts {args.parts} needs the other part's results in {path}")
        with open(path) as f:
            previous = json.load(f)
        if previous.get("quick") != args.quick:
            parser.error(f"{path} holds a run with quick={previous.get('quick')}")
        if previous.get("backend") != keras.backend.backend():
            parser.error(f"{path} holds a run on {previous.get('backend')}")
    seeds = (0, 1) if args.quick else (0, 1, 2)
    start = time.perf_counter()
    seconds = dict(previous.get("part_seconds", {}))
    if "cost" in parts:
        print("step cost against equal weighting:", flush=True)
        cost = step_costs(args.quick)
        seconds["cost"] = time.perf_counter() - start
    else:
        cost = {int(k): v for k, v in previous["cost"].items()}
    if "quality" in parts:
        print("quality:", flush=True)
        begin = time.perf_counter()
        results = quality(args.quick, seeds)
        seconds["quality"] = time.perf_counter() - begin
    else:
        results = previous["quality"]
    report = {
        "quick": args.quick,
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "seconds": sum(seconds.values()),
        "part_seconds": seconds,
        "seeds": list(seeds),
        "cost": cost,
        "quality": results,
    }
    with open(path, "w") as f:
        json.dump(report, f, indent=1)
    _figure(results, os.path.join(args.out, "multitask.png"))
    print(_tables(cost, results))
    print(f"({report['seconds']:.0f} s)")
    seed_everything(0)


if __name__ == "__main__":
    main()
