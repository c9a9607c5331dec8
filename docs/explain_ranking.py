"""Measures the tables of docs/explain.md: explanation methods ranked by the metrics on
trained models, the randomisation sanity check, and the pointing game.

For each seed: trains the `cnn` preset on scikit-learn's 8x8 digits and the
`attention_rnn` preset on the same images read as 8-step sequences of rows, ranks the
methods that apply to each with `kbm.explain.compare` on 16 test digits (their
predicted class), runs `kbm.explain.metrics.randomisation` for every method on the
CNN, and trains a small CNN on `synthetic.planted_patch` for the pointing game.
Prints Markdown tables (mean ± standard deviation over the seeds) and writes
`explain_ranking.json` and the curves of the first seed (`explain-compare-cnn.png`,
`explain-compare-attention_rnn.png`) to --out.

Run from the repository root (offline; about two minutes on a 2-core CPU):

    python docs/explain_ranking.py [--out docs] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.data import Digits, load_digits
from keras_bigmodel.explain import synthetic
from keras_bigmodel.explain.compare import _LABELS, METRICS

EPOCHS = {"cnn": 10, "attention_rnn": 15}
EXAMPLES = 16


def _train(name, x, y, seed):
    keras.utils.set_random_seed(seed)
    model = zoo.build(name, input_shape=list(x.shape[1:]))
    model.fit(x, Digits.one_hot(y), epochs=EPOCHS[name], batch_size=32, verbose=0)
    return model


def _accuracy(model, x, y) -> float:
    return float(np.mean(model.predict(x, verbose=0).argmax(-1) == y))


def _patch_cnn(seed):
    task = synthetic.planted_patch(n_train=600, n_test=200, seed=seed)
    keras.utils.set_random_seed(seed)
    image = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv")(image)
    h = keras.layers.GlobalMaxPooling2D()(h)
    model = keras.Model(image, keras.layers.Dense(2, activation="softmax")(h))
    model.compile(keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy")
    model.fit(task.x_train, task.y_train, epochs=15, batch_size=32, verbose=0)
    return model, task


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    start = time.time()
    digits = load_digits()
    data = {
        "cnn": (digits.x_train, digits.x_test),
        "attention_rnn": (digits.x_train[..., 0], digits.x_test[..., 0]),
    }
    ranking = {name: {} for name in data}
    accuracy = {name: [] for name in data}
    sanity: dict = {}
    pointing: dict = {}
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(digits.x_test), EXAMPLES, replace=False)
        for name, (train, test) in data.items():
            model = _train(name, train, digits.y_train, seed)
            accuracy[name].append(_accuracy(model, test, digits.y_test))
            result = kbm.explain.compare(
                model,
                test[pick],
                seed=seed,
                path=os.path.join(args.out, f"explain-compare-{name}.png")
                if seed == args.seeds[0]
                else None,
                model_name=f"digits {name} (seed {seed})",
            )
            for row in result["rows"]:
                entry = ranking[name].setdefault(row["method"], {"rank": []})
                entry["rank"].append(row["rank"])
                for metric in result["metrics"]:
                    entry.setdefault(metric, []).append(row[metric])
            if name == "cnn":
                classes = result["class_index"]
                for method in kbm.explain.applicable_methods(model):
                    check = kbm.explain.metrics.randomisation(
                        model, test[pick], classes, method, seed=seed
                    )
                    sanity.setdefault(method, []).append(check["mean"].tolist())
                sanity["layers"] = check["layers"]

            def the_input(model, inputs, class_index):
                return np.asarray(inputs)

            if name == "cnn":
                control = kbm.explain.metrics.randomisation(
                    model, test[pick], classes, the_input, seed=seed
                )
                sanity.setdefault("the input itself (control)", []).append(control["mean"].tolist())
        model, task = _patch_cnn(seed)
        patched = task.y_test == 1
        x, truth = task.x_test[patched], synthetic.regions(task)[patched]
        pointing.setdefault("accuracy", []).append(_accuracy(model, task.x_test, task.y_test))
        for method in kbm.explain.applicable_methods(model):
            maps = np.abs(kbm.explain.attributions(model, x, 1, method, seed=seed))
            game = kbm.explain.metrics.pointing_game(maps, truth)
            pointing.setdefault(method, []).append(game["hit_rate"])
        print(f"seed {seed} done at {time.time() - start:.0f} s", flush=True)

    report = {
        "backend": keras.backend.backend(),
        "seeds": args.seeds,
        "examples": EXAMPLES,
        "accuracy": accuracy,
        "ranking": ranking,
        "randomisation": sanity,
        "pointing_game": pointing,
        "seconds": round(time.time() - start, 1),
    }
    with open(os.path.join(args.out, "explain_ranking.json"), "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
    _print(report)
    return report


def _spread(values) -> str:
    values = np.asarray(values, dtype="float64")
    return f"{values.mean():.3g} ± {values.std():.2g}"


def _print(report) -> None:
    for name, methods in report["ranking"].items():
        acc = _spread(report["accuracy"][name])
        print(f"\n{name} (test accuracy {acc}, {len(report['seeds'])} seeds)\n")
        metrics = [m for m in METRICS if m in next(iter(methods.values()))]
        heads = ["method", "mean rank"] + [
            METRICS[m][0] + (" ↑" if METRICS[m][1] else " ↓") for m in metrics
        ]
        print("| " + " | ".join(heads) + " |")
        print("|" + "---|" * len(heads))
        order = sorted(methods, key=lambda k: np.mean(methods[k]["rank"]))
        for method in order:
            cells = [_LABELS[method], _spread(methods[method]["rank"])]
            cells += [_spread(methods[method][m]) for m in metrics]
            print("| " + " | ".join(cells) + " |")
    sanity = report["randomisation"]
    layers = sanity["layers"]
    print("\nrandomisation (cnn): mean Spearman similarity after randomising, from the top\n")
    print("| method | " + " | ".join(f"+ {layer}" for layer in layers) + " |")
    print("|" + "---|" * (len(layers) + 1))
    for method, runs in sanity.items():
        if method == "layers":
            continue
        runs = np.asarray(runs)
        label = _LABELS.get(method, method)
        print(f"| {label} | " + " | ".join(_spread(runs[:, i]) for i in range(len(layers))) + " |")
    pointing = report["pointing_game"]
    print(f"\npointing game (planted patch, accuracy {_spread(pointing['accuracy'])})\n")
    print("| method | hit rate |")
    print("|---|---|")
    for method, rates in pointing.items():
        if method != "accuracy":
            print(f"| {_LABELS[method]} | {_spread(rates)} |")
    print(f"\n{report['seconds']} s on {report['backend']}")


if __name__ == "__main__":
    main()
