"""Messages and names shared by the readers (private)."""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

from keras_bigmodel.data.errors import ClassMismatchError, DataError
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN

_MAX_SHOWN = 8
MAX_CLASS_NAME = 200  # characters


def shown(values: Sequence, limit: int = _MAX_SHOWN) -> str:
    values = [str(v) for v in values]
    more = f", ... ({len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def shown_ends(values: Sequence, limit: int = 16) -> str:
    """Up to `limit` names: the first and last ones of a long list."""
    values = [str(v) for v in values]
    if len(values) <= limit:
        return ", ".join(values)
    half = limit // 2
    return (
        ", ".join(values[:half])
        + f", ... ({len(values) - limit} more), "
        + ", ".join(values[-half:])
    )


def did_you_mean(name: str, choices: Sequence[str]) -> str:
    """' (did you mean 'species'?)' for a close match (case-insensitive first), else ''."""
    folded = {c.casefold(): c for c in choices}
    if name.casefold() in folded:
        return f" (did you mean '{folded[name.casefold()]}'?)"
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def printable(text: str) -> str:
    """`text` with control characters and undecodable bytes shown as escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return "".join(
        c if unicodedata.category(c)[0] != "C" else c.encode("unicode_escape").decode("ascii")
        for c in text
    )


def check_class_name(name: str, where: str) -> str:
    """A class name as read (folder name, CSV value, npz entry): no control characters
    (NUL, newlines, escapes), no undecodable bytes, at most `MAX_CLASS_NAME` characters."""
    if len(name) > MAX_CLASS_NAME:
        raise DataError(
            f"{where}: class name {printable(name[:40])!r}... is {len(name)} characters; at "
            f"most {MAX_CLASS_NAME} are allowed"
        )
    bad = [c for c in name if unicodedata.category(c) in ("Cc", "Cs", "Cf", "Co", "Cn")]
    if bad or not name.strip():
        raise DataError(
            f"{where}: class name {printable(name)!r} "
            + (
                f"holds a control character ({printable(bad[0])}); rename it"
                if bad
                else "is empty; rename it"
            )
        )
    return name


def sorted_values(values) -> list[str]:
    unique = sorted(set(values))
    try:
        return sorted(unique, key=float)  # numbers in numeric order: 2 before 10
    except ValueError:
        return unique


def map_values(values: Sequence[str], names: list[str], what: str, where=None) -> np.ndarray:
    """Class indices of `values` in `names` (the model's classes)."""
    index = {n: i for i, n in enumerate(names)}
    out = np.empty(len(values), dtype="int64")
    for i, value in enumerate(values):
        if value not in index:
            at = f" ({where(i)})" if where else ""
            raise ClassMismatchError(
                f"{what} '{value}'{at} is not one of the model's classes: {shown(names, 20)}"
            )
        out[i] = index[value]
    return out


def known_names(class_names) -> dict[str, list[str]] | None:
    if class_names is None:
        return None
    if isinstance(class_names, Mapping):
        out = {str(k): [str(n) for n in v] for k, v in class_names.items()}
    elif isinstance(class_names, Sequence) and not isinstance(class_names, str):
        out = {DEFAULT_LABEL_COLUMN: [str(n) for n in class_names]}
    else:
        raise TypeError(
            f"`class_names` must be a list of names or a dict of them by task. "
            f"Received: {class_names!r}"
        )
    for task, names in out.items():
        if len(set(names)) != len(names):
            raise ValueError(f"`class_names` of '{task}' holds duplicates: {names}")
    return out


def names_for(known: dict | None, task: str, tasks: Sequence[str]) -> list[str] | None:
    """The model's class names for one of the data's tasks (one task: whatever its name)."""
    if known is None:
        return None
    if task in known:
        return known[task]
    if len(known) == 1 and len(tasks) == 1:
        return next(iter(known.values()))
    return None


def reason(error: Exception) -> str:
    text = " ".join(str(error).split()) or "unreadable"
    return f"{type(error).__name__}: {text}"
