"""CSV files: a header row naming the columns, label column(s), feature columns of
numbers or strings, missing values allowed.

The reader is linear in its input (one pass of `csv.reader`, the duplicate-column
check with a `Counter`), and refuses a file larger than a quarter of `memory_limit`
(its cells as Python strings take several times the bytes) before reading it.

Columns: `label_columns` are labels (class names are their values; a multi-task CSV
may leave a task's label empty on some rows: that label is masked, `-1`, as
`keras_bigmodel.multitask.TaskLoss(mask_value=-1)` expects), `id_column` identifies
rows, `drop_columns` are left out, and every other column (or `feature_columns`) is a
feature: numeric when every present cell is a number, else categorical. With a trained
model's `schema`, each column is read the way the model was trained. Features are
encoded as `keras_bigmodel.data.tabular.encode_rows` does (NaN for a missing number, 0
for a missing or unknown category); `missing="drop"` drops such rows instead and
`"error"` refuses them.
"""

from __future__ import annotations

import collections
import csv
import io
import os

import numpy as np

from keras_bigmodel.data import safety, tabular
from keras_bigmodel.data._text import (
    check_class_name,
    did_you_mean,
    map_values,
    names_for,
    printable,
    shown,
    shown_ends,
    sorted_values,
)
from keras_bigmodel.data.arrays import DEFAULT_ARRAY_LIMIT
from keras_bigmodel.data.dataset import UNNAMED, Dataset, _ArrayFeatures
from keras_bigmodel.data.errors import DataError
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN, LoadOptions
from keras_bigmodel.data.readers import Reader, register_reader

__all__ = ["MASKED", "CsvReader", "header_of"]

MASKED = -1  # a task's missing label in a multi-task CSV
_BYTES_PER_CELL_BYTE = 4


def _unknown(path: str, what: str, name: str, header: list[str]) -> DataError:
    return DataError(
        f"{path}: unknown {what} '{printable(name)}'{did_you_mean(name, header)}; the columns "
        f"are: {shown_ends(header)}"
    )


def _read_rows(path: str, options: LoadOptions) -> list[list[str]]:
    limit = options.memory_limit or DEFAULT_ARRAY_LIMIT
    with safety.open_data_file(path) as raw:
        size = os.fstat(raw.fileno()).st_size
        if size * _BYTES_PER_CELL_BYTE > limit:
            raise DataError(
                f"{printable(path)} is {size:,} bytes; its cells would need about "
                f"{size * _BYTES_PER_CELL_BYTE:,} bytes, over the memory limit of {limit:,} "
                f"(memory_limit); refused before reading it"
            )
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            head = text.read(64 * 1024)
            try:
                dialect = csv.Sniffer().sniff(head, delimiters=",;\t")
            except csv.Error:
                dialect = csv.excel
            text.seek(0)
            return list(csv.reader(text, dialect))
        except UnicodeDecodeError as e:
            raise DataError(f"{printable(path)} is not UTF-8 text ({e})") from None
        except csv.Error as e:
            raise DataError(f"{printable(path)} is not valid CSV ({e})") from None


def header_of(path: str, max_bytes: int = 1 << 22) -> list[str] | None:
    """The column names of a CSV (its first row, at most `max_bytes` read), or None
    if it cannot be read as one."""
    try:
        with safety.open_data_file(path) as raw:
            head = raw.read(max_bytes).decode("utf-8-sig", errors="replace")
    except DataError:
        return None
    first = head.splitlines()[0] if head else ""
    try:
        dialect = csv.Sniffer().sniff(head[: 64 * 1024], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = list(csv.reader([first], dialect))
    return [c.strip() for c in rows[0]] if rows else None


class CsvReader(Reader):
    """`.csv`, `.tsv`, `.txt` tables (see the module docstring)."""

    format = "csv"
    kind = "table"
    extensions = (".csv", ".tsv", ".txt")

    def read(self, path: str, options: LoadOptions, known) -> Dataset:
        rows = _read_rows(path, options)
        where = printable(path)
        rows = [r for r in rows if any(cell.strip() for cell in r)]
        if not rows:
            raise DataError(f"{where} is empty; a CSV needs a header row naming its columns")
        header = [c.strip() for c in rows[0]]
        body = rows[1:]
        if not body:
            raise DataError(f"{where} has a header row but no data rows")
        counts = collections.Counter(header)
        duplicates = sorted(c for c, n in counts.items() if n > 1)
        if duplicates or "" in counts:
            problem = (
                f"duplicate column names {shown(duplicates)}" if duplicates else "an empty name"
            )
            raise DataError(
                f"{where}: column names must be unique and non-empty; the header has {problem}"
            )
        width = len(header)
        for number, row in enumerate(body, start=2):
            if len(row) != width:
                raise DataError(
                    f"{where} line {number} has {len(row)} fields; the header has {width}"
                )
        present = set(header)
        label_columns = options.label_columns
        if label_columns is None:
            label_columns = [DEFAULT_LABEL_COLUMN] if DEFAULT_LABEL_COLUMN in present else []
        else:
            label_columns = list(label_columns)
            missing = [c for c in label_columns if c not in present]
            if missing and options.missing_labels == "unlabelled":
                label_columns = []
            elif missing:
                raise _unknown(where, "label column", missing[0], header)
        for name in (options.id_column, *options.drop_columns):
            if name is not None and name not in present:
                what = "id column" if name == options.id_column else "column to drop"
                raise _unknown(where, what, name, header)
        for name in options.categorical_columns:
            if name not in present:
                raise _unknown(where, "categorical column", name, header)
        schema = list(options.schema) if options.schema is not None else None
        if options.feature_columns is not None:
            feature_columns = list(options.feature_columns)
        elif schema is not None:
            feature_columns = [c["name"] for c in schema]
        else:
            skip = set(label_columns) | set(options.drop_columns) | {options.id_column}
            feature_columns = [c for c in header if c not in skip]
        absent = [c for c in feature_columns if c not in present]
        if absent:
            if options.feature_columns is not None and schema is None:
                raise _unknown(where, "feature column", absent[0], header)
            raise DataError(
                f"{where} lacks the feature column(s) {shown(absent)} the model was trained "
                f"on{did_you_mean(absent[0], header)}; its columns are: {shown_ends(header)}"
            )
        clash = [c for c in label_columns if c in feature_columns]
        if clash:
            raise DataError(f"{where}: {clash} cannot be both a label and a feature column")
        if not feature_columns:
            raise DataError(f"{where} has no feature columns besides the labels {label_columns}")
        stray = [c for c in options.categorical_columns if c not in feature_columns]
        if stray:
            raise DataError(
                f"{where}: categorical column '{printable(stray[0])}' is not a feature column "
                f"(a label, the id or dropped); the feature columns are: "
                f"{shown_ends(feature_columns)}"
            )
        position = {c: i for i, c in enumerate(header)}

        # Columns' kinds (or the model's), then the encoded matrix.
        by_name = {c["name"]: c for c in schema} if schema is not None else {}
        specs, missing_counts = [], {}
        for column in feature_columns:
            j = position[column]
            cells = [row[j].strip() for row in body]
            missing_counts[column] = sum(1 for c in cells if c in tabular.MISSING_TOKENS)
            if column in by_name:
                spec = dict(by_name[column])
                if column in options.categorical_columns and spec["kind"] == "numeric":
                    raise DataError(
                        f"{where}: categorical column '{printable(column)}' is numeric in the "
                        f"model's schema; a trained model reads its columns as it was trained"
                    )
            else:
                spec = _infer(column, cells, column in options.categorical_columns, where)
            spec["missing"] = missing_counts[column]
            specs.append(spec)
        matrix = np.empty((len(body), len(specs)), dtype="float32")
        for k, spec in enumerate(specs):
            j = position[spec["name"]]
            matrix[:, k] = tabular.encode_column(
                spec, [row[j] for row in body], where=lambda i: f"line {i + 2} of {where}"
            )
        unknown = {}
        for k, spec in enumerate(specs):
            if spec["kind"] == "categorical":
                lost = int((matrix[:, k] == 0).sum()) - spec["missing"]
            elif spec["kind"] == "integer_categorical":
                listed = np.isin(matrix[:, k], np.asarray(spec["vocabulary"], "float32"))
                lost = int((~listed & ~np.isnan(matrix[:, k])).sum())
            else:
                lost = 0
            if lost:
                unknown[spec["name"]] = lost
        gaps = _gaps(matrix, specs)
        keep = np.arange(len(body))
        dropped = 0
        if gaps.any():
            if options.missing == "error":
                i, k = map(int, np.argwhere(gaps)[0])
                raise DataError(
                    f"missing value in features: column '{printable(specs[k]['name'])}', line "
                    f"{i + 2} of {where} ({int(gaps.any(axis=1).sum())} rows have one); impute "
                    f"them with --missing impute (missing='impute') or drop the rows with "
                    f"--missing drop"
                )
            if options.missing == "drop":
                keep = np.flatnonzero(~gaps.any(axis=1))
                dropped = len(body) - len(keep)
                if not len(keep):
                    raise DataError(f"every row of {where} has a missing feature value")

        labels, class_names, names_from, masked = {}, {}, {}, {}
        label_cells = {c: [body[i][position[c]].strip() for i in keep] for c in label_columns}
        if label_columns:
            empty = {
                c: np.asarray([v in tabular.MISSING_TOKENS for v in cells])
                for c, cells in label_cells.items()
            }
            none_left = np.logical_and.reduce(list(empty.values()))
            several = len(label_columns) > 1
            if options.missing == "drop" or (
                several and none_left.any() and options.missing != "error"
            ):
                if several:
                    rows_kept = ~none_left
                else:
                    rows_kept = ~empty[label_columns[0]]
                if not rows_kept.all():
                    dropped += int((~rows_kept).sum())
                    keep = keep[rows_kept]
                    label_cells = {
                        c: [v for v, k in zip(cells, rows_kept) if k]
                        for c, cells in label_cells.items()
                    }
                    empty = {c: e[rows_kept] for c, e in empty.items()}
            for column in label_columns:
                cells = label_cells[column]
                blank = empty[column]
                if blank.any() and (not several or options.missing == "error"):
                    i = int(keep[int(np.flatnonzero(blank)[0])])
                    raise DataError(
                        f"missing label: column '{printable(column)}', line {i + 2} of {where}"
                        + ("" if several else "; drop such rows with --missing drop")
                    )
                values = [c for c, b in zip(cells, blank) if not b]
                lines = [int(i) + 2 for i, b in zip(keep, blank) if not b]
                model_names = names_for(known, column, label_columns)
                if model_names is not None:
                    names = model_names
                    indices = map_values(
                        values,
                        names,
                        f"label in column '{printable(column)}':",
                        where=lambda i, lines=lines: f"line {lines[i]}",
                    )
                else:
                    names = [
                        check_class_name(n, f"{where} column '{printable(column)}'")
                        for n in sorted_values(values)
                    ]
                    lookup = {c: i for i, c in enumerate(names)}
                    indices = np.asarray([lookup[c] for c in values], dtype="int64")
                y = np.full(len(cells), MASKED, dtype="int64")
                y[~blank] = indices
                labels[column] = y
                class_names[column] = list(names)
                names_from[column] = "values"
                if blank.any():
                    masked[column] = int(blank.sum())
        if options.id_column is not None:
            j = position[options.id_column]
            ids = [printable(body[i][j]) for i in keep]
        else:
            ids = [f"line {i + 2}" for i in keep]
        info = {
            "feature_columns": list(feature_columns),
            "label_columns": list(label_columns),
            "columns": header,
            "schema": [
                {k: v for k, v in s.items() if k in ("name", "kind", "vocabulary")} for s in specs
            ],
            "missing_values": {k: v for k, v in missing_counts.items() if v},
            "unknown_categories": unknown,
            "dropped_rows": dropped,
            "masked_labels": masked,
        }
        if options.id_column is not None:
            info["id_column"] = options.id_column
        return Dataset(
            path,
            "csv",
            _ArrayFeatures({UNNAMED: matrix[keep]}),
            labels or None,
            class_names or None,
            ids,
            info=info,
            names_from=names_from,
        )


def _gaps(matrix: np.ndarray, specs) -> np.ndarray:
    """Where a feature is missing (NaN number, index 0 category)."""
    categorical = np.asarray([s["kind"] == "categorical" for s in specs])
    return np.isnan(matrix) | ((matrix == 0) & categorical[None, :])


def _infer(column: str, cells: list[str], categorical: bool = False, where: str = "") -> dict:
    """A column's kind from its cells: numeric, string categorical, or (declared
    `categorical`, holding numbers) integer-coded categorical with its sorted codes."""
    present = [c for c in cells if c not in tabular.MISSING_TOKENS]
    numeric = True
    for cell in present:
        try:
            float(cell)
        except ValueError:
            numeric = False
            break
    if numeric and categorical:
        codes = set()
        for i, cell in enumerate(cells):
            if cell in tabular.MISSING_TOKENS:
                continue
            value = float(cell)
            if not (value.is_integer() and abs(value) <= tabular.MAX_INTEGER_CODE):
                raise DataError(
                    f"{where}: categorical column '{printable(column)}' holds "
                    f"'{printable(cell[:40])}' (line {i + 2}); a numeric categorical column "
                    f"must hold integer codes within +-{tabular.MAX_INTEGER_CODE:,}"
                )
            codes.add(int(value))
        if len(codes) > tabular.MAX_VOCABULARY:
            raise DataError(
                f"column '{printable(column)}' holds {len(codes):,} distinct codes; at most "
                f"{tabular.MAX_VOCABULARY:,} categories are allowed"
            )
        return {"name": column, "kind": "integer_categorical", "vocabulary": sorted(codes)}
    if numeric:
        return {"name": column, "kind": "numeric"}
    vocabulary = sorted_values(present)
    if len(vocabulary) > tabular.MAX_VOCABULARY:
        raise DataError(
            f"column '{printable(column)}' holds {len(vocabulary):,} distinct strings; at most "
            f"{tabular.MAX_VOCABULARY:,} categories are allowed (drop it with --drop-columns)"
        )
    return {"name": column, "kind": "categorical", "vocabulary": vocabulary}


register_reader(CsvReader())
