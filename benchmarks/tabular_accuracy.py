"""Accuracy of `train tabular` with its defaults on CSV files as users have them, against
the same network trained on the same rows standardized by hand.

For each table (a penguins-like CSV, scikit-learn's wine, breast_cancer and iris written
as CSV with two string columns and 5% of the numeric cells missing, see tests/tables.py)
the rows are split 75/25, stratified, into a training and a test CSV; then

- **CLI**: `keras-bigmodel train tabular --data train.csv --label-column target` with
  every default (the model preprocesses the raw rows itself) and `evaluate` on the test
  CSV;
- **by hand, same cells**: the same CSV cells prepared by hand as a user would with
  scikit-learn (missing numbers imputed with the training mean, `StandardScaler`,
  `OneHotEncoder`), into the same MLP;
- **by hand, complete rows**: the *complete* rows (no missing value), numeric columns standardized
  with the training mean and standard deviation (scikit-learn's `StandardScaler`),
  string columns one-hot encoded, into the same MLP (Dense 64 silu, Dense 32 silu,
  softmax), optimizer, epochs, batch size and the same 80% of the training rows the
  CLI trains on (it holds 20% out for validation), evaluated on the same test rows.

Seeds 0, 1, 2; the mean test accuracy of each is printed and written to JSON.

    python -m benchmarks.tabular_accuracy [--out tabular-accuracy.json] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
TABLES = ("penguins", "wine", "breast_cancer", "iris")


def _split(labels, seed):
    from sklearn.model_selection import train_test_split

    index = np.arange(len(labels))
    return train_test_split(index, test_size=0.25, random_state=seed, stratify=labels)


def _table(name, directory, seed):
    import csv

    import tables

    full = os.path.join(directory, f"{name}.csv")
    if name == "penguins":
        tables.penguins_csv(full, seed=0)
        label = "species"
    else:
        tables.sklearn_csv(full, name, seed=0)
        label = "target"
    with open(full, newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    labels = [r[header.index(label)] for r in body]
    train, test = _split(labels, seed)
    paths = {}
    for part, index in (("train", train), ("test", test)):
        paths[part] = os.path.join(directory, f"{name}-{seed}-{part}.csv")
        with open(paths[part], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(body[i] for i in index)
    return paths, label, train, test


def _cli(paths, label, directory, seed, epochs):
    import keras_bigmodel_cli as cli

    out = os.path.join(directory, f"model-{seed}")
    report = os.path.join(directory, f"report-{seed}.json")
    args = ["--data", paths["train"], "--label-column", label, "--seed", str(seed)]
    if epochs:
        args += ["--epochs", str(epochs)]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["train", "tabular", *args, "--out", out]) == 0
        assert (
            cli.main(
                [
                    "evaluate",
                    out,
                    "--data",
                    paths["test"],
                    "--out",
                    os.path.join(directory, "c.png"),
                    "--json",
                    report,
                ]
            )
            == 0
        )
    return json.load(open(report))["tasks"][label]["accuracy"]


def _clean_frame(name):
    """The complete rows (before any cell was blanked) as (numeric, strings, labels)."""
    if name == "penguins":
        import csv

        import tables

        with tempfile.TemporaryDirectory() as d:
            # the same generator, before the NA cells were written: regenerate and read
            path = tables.penguins_csv(os.path.join(d, "p.csv"), seed=0)
            body = list(csv.reader(open(path)))[1:]
        numeric = np.array(
            [[np.nan if c == "NA" else float(c) for c in r[2:6]] + [float(r[7])] for r in body]
        )
        strings = np.array([[r[1], r[6]] for r in body])
        return numeric, strings, np.array([r[0] for r in body])
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x = bunch.data
    rng = np.random.default_rng(0)
    terciles = np.quantile(x[:, 0], [1 / 3, 2 / 3])
    size = np.where(x[:, 0] < terciles[0], "low", np.where(x[:, 0] < terciles[1], "mid", "high"))
    lots = rng.choice(["A-1", "B-2", "C-3"], size=len(x))
    return x, np.stack([size, lots], 1), np.asarray(bunch.target_names)[bunch.target]


def _by_hand(name, train, test, seed, epochs):
    import keras
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric, strings, labels = _clean_frame(name)
    # Rows without any measurement (the penguins' two) are dropped by hand, as a user would.
    complete = ~np.isnan(numeric).any(axis=1) & (strings != "NA").all(axis=1)
    train = np.asarray([i for i in train if complete[i]])
    test = np.asarray([i for i in test if complete[i]])
    classes = sorted(set(labels))
    y = np.asarray([classes.index(v) for v in labels])
    fit, _ = train_test_split(train, test_size=0.2, random_state=seed, stratify=y[train])
    scaler = StandardScaler().fit(numeric[fit])
    encoder = OneHotEncoder(handle_unknown="ignore").fit(strings[fit])

    def features(index):
        return np.concatenate(
            [scaler.transform(numeric[index]), encoder.transform(strings[index]).toarray()], 1
        ).astype("float32")

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((features(fit[:1]).shape[1],))
    x = keras.layers.Dense(64, activation="silu")(inputs)
    x = keras.layers.Dense(32, activation="silu")(x)
    model = keras.Model(inputs, keras.layers.Dense(len(classes), activation="softmax")(x))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(features(fit), y[fit], batch_size=32, epochs=epochs or 10, verbose=0)
    predicted = model.predict(features(test), verbose=0).argmax(-1)
    return float(np.mean(predicted == y[test]))


def _read(path, label):
    import csv

    rows = list(csv.reader(open(path, newline="")))
    header, body = rows[0], rows[1:]
    columns = [c for c in header if c != label]
    cells = {c: [r[header.index(c)] for r in body] for c in columns}
    return cells, np.asarray([r[header.index(label)] for r in body])


def _by_hand_same_cells(paths, label, seed, epochs):
    """The same CSV cells the CLI gets, prepared by hand as a user would with
    scikit-learn: missing numbers imputed with the training mean, standardized, strings
    one-hot encoded (a missing string is a category of its own)."""
    import keras
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    missing = {"", "NA"}
    train_cells, y_train = _read(paths["train"], label)
    test_cells, y_test = _read(paths["test"], label)

    def numeric(column):
        try:
            [float(v) for v in train_cells[column] if v not in missing]
            return True
        except ValueError:
            return False

    numbers = [c for c in train_cells if numeric(c)]
    strings = [c for c in train_cells if c not in numbers]

    def arrays(cells):
        x = np.array([[np.nan if v in missing else float(v) for v in cells[c]] for c in numbers]).T
        return x, np.array([cells[c] for c in strings]).T

    classes = sorted(set(y_train))
    y = np.asarray([classes.index(v) for v in y_train])
    yt = np.asarray([classes.index(v) for v in y_test])
    x_num, x_str = arrays(train_cells)
    fit, _ = train_test_split(np.arange(len(y)), test_size=0.2, random_state=seed, stratify=y)
    imputer = SimpleImputer().fit(x_num[fit])
    scaler = StandardScaler().fit(imputer.transform(x_num[fit]))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(x_str[fit])

    def features(num, text):
        return np.concatenate(
            [scaler.transform(imputer.transform(num)), encoder.transform(text).toarray()], 1
        ).astype("float32")

    keras.utils.set_random_seed(seed)
    train_x = features(x_num[fit], x_str[fit])
    inputs = keras.Input((train_x.shape[1],))
    h = keras.layers.Dense(64, activation="silu")(inputs)
    h = keras.layers.Dense(32, activation="silu")(h)
    model = keras.Model(inputs, keras.layers.Dense(len(classes), activation="softmax")(h))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    model.fit(train_x, y[fit], batch_size=32, epochs=epochs or 10, verbose=0)
    predicted = model.predict(features(*arrays(test_cells)), verbose=0).argmax(-1)
    return float(np.mean(predicted == yt))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tabular-accuracy.json")
    parser.add_argument("--quick", action="store_true", help="one seed, two tables")
    parser.add_argument("--epochs", type=int, default=0, help="0: the CLI's default")
    args = parser.parse_args(argv)
    seeds = (0,) if args.quick else (0, 1, 2)
    names = TABLES[:2] if args.quick else TABLES
    results = {}
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            cli_scores, hand_scores, same_scores = [], [], []
            for seed in seeds:
                paths, label, train, test = _table(name, directory, seed)
                cli_scores.append(_cli(paths, label, directory, seed, args.epochs))
                hand_scores.append(_by_hand(name, train, test, seed, args.epochs))
                same_scores.append(_by_hand_same_cells(paths, label, seed, args.epochs))
            results[name] = {
                "cli": float(np.mean(cli_scores)),
                "by_hand": float(np.mean(hand_scores)),
                "by_hand_same_cells": float(np.mean(same_scores)),
                "cli_runs": cli_scores,
                "by_hand_runs": hand_scores,
                "by_hand_same_cells_runs": same_scores,
            }
            r = results[name]
            print(
                f"{name:<14} CLI defaults {r['cli']:.3f}   by hand, complete rows "
                f"{r['by_hand']:.3f} ({100 * (r['cli'] - r['by_hand']):+.1f})   by hand, same "
                f"cells {r['by_hand_same_cells']:.3f} "
                f"({100 * (r['cli'] - r['by_hand_same_cells']):+.1f} points)",
                flush=True,
            )
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
