"""Accuracy of `train tabular` with its defaults on CSV files as users have them, against
the same network trained on rows standardized by hand, on the same test rows.

Tables (tests/tables.py, generated offline):

- `penguins`: the palmer-penguins-like CSV as it ships (344 rows, string columns
  `island` and `sex`, `NA` cells: two rows without any measurement, nine more without
  a sex, unscaled columns);
- `wine`: scikit-learn's wine as a CSV as shipped (no missing value), with two string
  columns derived from it;
- `wine-5%`: the same with 5% of the numeric cells left empty.

For each seed the rows are split 75/25, stratified, into a training and a test CSV; then

- **CLI**: `keras-bigmodel train tabular --data train.csv --label-column LABEL --seed S`
  with every other option at its default (the model standardizes, imputes and encodes
  the raw rows itself; it trains on 80% of the training rows and validates on 20%), and
  `keras-bigmodel predict` on the test CSV, scored row by row;
- **by hand, the issue's recipe** (`numeric`): the string columns and the rows with a
  missing value dropped by hand, the numeric columns standardized with the training
  mean and standard deviation (scikit-learn's `StandardScaler`);
- **by hand, strings one-hot** (`onehot`): the same complete rows, strings one-hot
  encoded as well (`OneHotEncoder`);
- **by hand, same cells** (`imputed`): every row, missing numbers imputed with the
  training mean (`SimpleImputer`), standardized, strings one-hot (a missing string is a
  category of its own).

Every reference trains the CLI's network (`Dense 64, Dense 32`, SiLU, softmax) with the
CLI's training defaults (Adam 1e-2, 10 epochs, batches of 32, the same seed) on the
*same* training rows the CLI trains on (its 80%, by `Dataset.split`; the complete ones
for `numeric` and `onehot`). The complete-row references cannot score a test row with a
missing value, so they are compared with the CLI on the complete test rows; `imputed`
is compared with the CLI on all test rows. Each comparison is paired (the same split
and seed), and reported as mean and standard deviation over the seeds.

    python -m benchmarks.tabular_accuracy [--tables penguins,wine] [--seeds 10]
        [--out tabular-accuracy.json] [--quick] [--cli-args "--epochs 30"]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shlex
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))
TABLES = ("penguins", "wine", "wine-5%")
MISSING_CELLS = {"", "NA"}
EPOCHS, BATCH, LEARNING_RATE, VALIDATION = 10, 32, 0.01, 0.2  # the CLI's defaults


def _read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def _table(name, directory, seed):
    """Writes the table, splits it 75/25 (stratified by `seed`): `(paths, label)`."""
    import tables
    from sklearn.model_selection import train_test_split

    full = os.path.join(directory, f"{name}.csv")
    if name == "penguins":
        tables.penguins_csv(full, seed=0)
        label = "species"
    else:
        tables.sklearn_csv(full, "wine", seed=0, missing=0.05 if name == "wine-5%" else 0.0)
        label = "target"
    header, body = _read(full)
    labels = [r[header.index(label)] for r in body]
    train, test = train_test_split(
        np.arange(len(body)), test_size=0.25, random_state=seed, stratify=labels
    )
    paths = {}
    for part, index in (("train", train), ("test", test)):
        paths[part] = os.path.join(directory, f"{name}-{seed}-{part}.csv")
        with open(paths[part], "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(body[i] for i in index)
    return paths, label


def _cli(paths, label, directory, seed, extra):
    """Per test row: whether the CLI's model predicts it right."""
    import keras_bigmodel_cli as cli

    out = os.path.join(directory, f"model-{seed}")
    predictions = os.path.join(directory, f"predictions-{seed}.csv")
    train = ["train", "tabular", "--data", paths["train"], "--label-column", label]
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main([*train, "--seed", str(seed), *extra, "--out", out]) == 0
        assert cli.main(["predict", out, "--data", paths["test"], "--out", predictions]) == 0
    header, rows = _read(predictions)
    _, test = _read(paths["test"])
    right = np.zeros(len(test), bool)
    for row in rows:  # ids are "line N" of the test CSV
        line = int(row[0].split()[-1])
        right[line - 2] = row[header.index("true")] == row[header.index("predicted")]
    assert len(rows) == len(test)
    return right


def _fit_rows(paths, label, seed):
    """The training CSV's rows (0-based) that the CLI trains on: its `Dataset.split`."""
    from keras_bigmodel import data

    fit, _ = data.load(paths["train"], label_columns=label).split(VALIDATION, seed=seed)
    return np.sort([int(i.split()[-1]) - 2 for i in fit.ids])


def _mlp(train_x, train_y, classes, seed):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((train_x.shape[1],))
    h = keras.layers.Dense(64, activation="silu")(inputs)
    h = keras.layers.Dense(32, activation="silu")(h)
    model = keras.Model(inputs, keras.layers.Dense(classes, activation="softmax")(h))
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE), loss="sparse_categorical_crossentropy"
    )
    model.fit(train_x, train_y, batch_size=BATCH, epochs=EPOCHS, shuffle=True, verbose=0)
    return model


def _references(paths, label, seed):
    """Per test row, whether each by-hand reference predicts it right (NaN where a
    complete-row reference cannot: the row has a missing value)."""
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    header, train_rows = _read(paths["train"])
    _, test_rows = _read(paths["test"])
    features = [c for c in header if c != label]

    def is_number(column):
        j = header.index(column)
        try:
            [float(r[j]) for r in train_rows if r[j] not in MISSING_CELLS]
            return True
        except ValueError:
            return False

    numbers = [c for c in features if is_number(c)]
    strings = [c for c in features if c not in numbers]

    def arrays(rows):
        num = np.array(
            [
                [np.nan if r[header.index(c)] in MISSING_CELLS else float(r[header.index(c)])]
                for r in rows
                for c in numbers
            ]
        ).reshape(len(rows), len(numbers))
        text = np.array([[r[header.index(c)] for c in strings] for r in rows]).reshape(
            len(rows), len(strings)
        )
        complete = ~np.isnan(num).any(1) & ~np.isin(text, list(MISSING_CELLS)).any(1)
        return num, text, complete

    classes = sorted({r[header.index(label)] for r in train_rows})
    y = np.array([classes.index(r[header.index(label)]) for r in train_rows])
    y_test = np.array([classes.index(r[header.index(label)]) for r in test_rows])
    num, text, complete = arrays(train_rows)
    num_t, text_t, complete_t = arrays(test_rows)
    fit = _fit_rows(paths, label, seed)
    out = {}

    full = fit[complete[fit]]  # the CLI's training rows that are complete
    scaler = StandardScaler().fit(num[full])
    encoder = OneHotEncoder(handle_unknown="ignore").fit(text[full])
    for name, with_strings in (("numeric", False), ("onehot", True)):

        def features_of(n, t, with_strings=with_strings):
            parts = [scaler.transform(n)]
            if with_strings:
                parts.append(encoder.transform(t).toarray())
            return np.concatenate(parts, 1).astype("float32")

        model = _mlp(features_of(num[full], text[full]), y[full], len(classes), seed)
        right = np.full(len(test_rows), np.nan)
        predicted = model.predict(features_of(num_t[complete_t], text_t[complete_t]), verbose=0)
        right[complete_t] = predicted.argmax(-1) == y_test[complete_t]
        out[name] = right

    imputer = SimpleImputer().fit(num[fit])
    scaler = StandardScaler().fit(imputer.transform(num[fit]))
    encoder = OneHotEncoder(handle_unknown="ignore").fit(text[fit])

    def imputed(n, t):
        return np.concatenate(
            [scaler.transform(imputer.transform(n)), encoder.transform(t).toarray()], 1
        ).astype("float32")

    model = _mlp(imputed(num[fit], text[fit]), y[fit], len(classes), seed)
    out["imputed"] = (model.predict(imputed(num_t, text_t), verbose=0).argmax(-1) == y_test) * 1.0
    return out, complete_t


def _stats(values):
    values = np.asarray(values, float)
    return {
        "mean": float(values.mean()),
        "sd": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tabular-accuracy.json")
    parser.add_argument("--tables", default=",".join(TABLES), help="comma-separated")
    parser.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1")
    parser.add_argument("--quick", action="store_true", help="penguins, seeds 0, 1, 2")
    parser.add_argument(
        "--cli-args", default="", help='extra options of `train`, e.g. "--epochs 30"'
    )
    args = parser.parse_args(argv)
    names = ["penguins"] if args.quick else args.tables.split(",")
    seeds = range(3 if args.quick else args.seeds)
    extra = shlex.split(args.cli_args)
    results = {"seeds": list(seeds), "cli_args": extra}
    start = time.time()
    with tempfile.TemporaryDirectory() as directory:
        for name in names:
            runs = {k: [] for k in ("cli_all", "cli_complete", "numeric", "onehot", "imputed")}
            test_rows = []
            for seed in seeds:
                paths, label = _table(name, directory, seed)
                cli = _cli(paths, label, directory, seed, extra)
                refs, complete = _references(paths, label, seed)
                runs["cli_all"].append(float(cli.mean()))
                runs["cli_complete"].append(float(cli[complete].mean()))
                for k in ("numeric", "onehot"):
                    runs[k].append(float(np.nanmean(refs[k])))
                runs["imputed"].append(float(refs["imputed"].mean()))
                test_rows.append([len(cli), int(complete.sum())])
            diffs = {
                "cli_complete-numeric": np.subtract(runs["cli_complete"], runs["numeric"]),
                "cli_complete-onehot": np.subtract(runs["cli_complete"], runs["onehot"]),
                "cli_all-imputed": np.subtract(runs["cli_all"], runs["imputed"]),
            }
            r = results[name] = {
                "test_rows": test_rows,
                "runs": runs,
                **{k: _stats(v) for k, v in runs.items()},
                "differences": {k: _stats(100 * v) for k, v in diffs.items()},
            }
            shown = "  ".join(f"{k} {r[k]['mean']:.3f}±{r[k]['sd']:.3f}" for k in runs)
            gaps = "  ".join(
                f"{k} {d['mean']:+.1f}±{d['sd']:.1f}" for k, d in r["differences"].items()
            )
            print(f"{name:<9} {shown}\n{'':<9} points: {gaps}", flush=True)
    results["seconds"] = round(time.time() - start, 1)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main()
