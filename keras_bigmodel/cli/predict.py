"""`predict MODEL --data PATH --out predictions.csv`: one row per example with its
id, the predicted class by name, its probability and every class's probability (and
the true class when the data is labelled), per task for a multi-task model. A CSV's
`--id-column` is the id (and the first column's name). Cells that a spreadsheet would
run as formulas are neutralised (`keras_bigmodel.fileio.spreadsheet_safe`)."""

from __future__ import annotations

import numpy as np

from keras_bigmodel import fileio
from keras_bigmodel.cli._common import (
    CommandError,
    class_names_for,
    load_checked,
    predict,
    say,
)

__all__ = ["PROBABILITY_FORMAT", "run_predict"]

PROBABILITY_FORMAT = "{:.7g}"  # float32 precision
_PREVIEW = 5


def _columns(task: str, names: list[str], several: bool, labelled: bool, binary: bool):
    prefix = f"{task}." if several else ""
    head = ([f"{prefix}true"] if labelled and not binary else []) + (
        [] if binary else [f"{prefix}predicted", f"{prefix}probability"]
    )
    return head + [f"{prefix}p[{n}]" for n in names]


def run_predict(args, out) -> None:
    """Checks that the model takes the data, predicts, and writes the CSV."""
    if not args.out.lower().endswith(".csv"):
        raise CommandError(f"--out must end in .csv. Received: {args.out}")
    loaded, view, dataset = load_checked(args, out, require_labels=False)
    outputs = predict(loaded, view, dataset, args.batch_size, out)
    names = class_names_for(loaded, dataset, view)
    several = len(outputs) > 1
    binary = view.target == "binary"
    header = [dataset.info.get("id_column") or "id"]
    for task in outputs:
        labelled = dataset.labelled and task in dataset.labels
        header += _columns(task, names[task], several, labelled, binary)
    columns = []
    for task, probabilities in outputs.items():
        task_names = names[task]
        if dataset.labelled and task in dataset.labels and not binary:
            true = dataset.sparse_labels()[task]
            columns.append([task_names[i] if i >= 0 else "" for i in true])  # -1: masked
        if not binary:
            best = probabilities.argmax(-1)
            columns.append([task_names[i] for i in best])
            columns.append([PROBABILITY_FORMAT.format(p) for p in probabilities.max(-1)])
        for j in range(probabilities.shape[-1]):
            columns.append([PROBABILITY_FORMAT.format(p) for p in probabilities[:, j]])
    rows = [[dataset.ids[i], *(c[i] for c in columns)] for i in range(len(dataset))]
    # Every cell neutralised for spreadsheets (a file or class name starting with '='
    # stays text) and written even when a file name is not valid UTF-8.
    fileio.write_csv(args.out, header, rows)
    say(out, f"predicted {len(dataset):,} examples -> {args.out}")
    shown = [header] + rows[:_PREVIEW]
    keep = [i for i, h in enumerate(header) if binary or not h.split(".")[-1].startswith("p[")]
    widths = [max(len(str(r[i])) for r in shown) for i in keep]
    for r in shown:
        say(out, "  " + "  ".join(f"{r[i]!s:<{w}}" for i, w in zip(keep, widths)))
    if len(rows) > _PREVIEW:
        more = len(rows) - _PREVIEW
        say(
            out,
            f"  ... ({more:,} more row{'s' if more > 1 else ''}; class probabilities in the file)",
        )
    if dataset.labelled and not binary:
        hits = []
        for t, p in outputs.items():
            if t in dataset.labels:
                true = dataset.sparse_labels()[t]
                known = true >= 0  # masked labels are left out
                hits.append(float(np.mean(true[known] == p.argmax(-1)[known])))
        if hits:
            say(
                out,
                "accuracy on these labels: "
                + ", ".join(
                    f"{h:.4f}" if not several else f"{t} {h:.4f}" for t, h in zip(outputs, hits)
                ),
            )
