"""Tables as users have them, generated offline (tests and benchmarks use them).

`penguins_csv` writes a table shaped like the palmer penguins CSV as it ships: 344
rows, the species as label, the string columns `island` and `sex`, four unscaled
measurements (body mass ~4000 next to bill depth ~17), the year, and `NA` for the
missing values (two rows without any measurement, eleven without a sex), with
per-species means and spreads close to the real ones. `sklearn_csv` writes one of
scikit-learn's bundled datasets (wine, breast_cancer, iris) the same way: raw numeric
columns, two string columns derived from them, and injected missing values.
"""

from __future__ import annotations

import csv

import numpy as np

__all__ = ["PENGUIN_COLUMNS", "penguins_csv", "sklearn_csv"]

PENGUIN_COLUMNS = [
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
]
# species: (count, islands and their shares, means, standard deviations) of
# bill length, bill depth, flipper length, body mass.
_SPECIES = {
    "Adelie": (
        152,
        {"Biscoe": 44, "Dream": 56, "Torgersen": 52},
        (38.8, 18.3, 190.0, 3700.0),
        (2.66, 1.22, 6.5, 459.0),
    ),
    "Chinstrap": (68, {"Dream": 68}, (48.8, 18.4, 195.8, 3733.0), (3.34, 1.14, 7.1, 384.0)),
    "Gentoo": (124, {"Biscoe": 124}, (47.5, 15.0, 217.2, 5076.0), (3.08, 0.98, 6.5, 504.0)),
}


def penguins_csv(path, seed: int = 0) -> str:
    """Writes the penguins-like CSV (see the module docstring); returns its path."""
    rng = np.random.default_rng(seed)
    rows = []
    for species, (count, islands, means, sds) in _SPECIES.items():
        where = [i for i, k in islands.items() for _ in range(k)]
        for n in range(count):
            male = n % 2 == 0
            shift = 0.55 if male else -0.55  # males are larger
            values = [m + s * (rng.normal() + shift) for m, s in zip(means, sds)]
            rows.append(
                [
                    species,
                    where[n],
                    f"{values[0]:.1f}",
                    f"{values[1]:.1f}",
                    f"{values[2]:.0f}",
                    f"{values[3]:.0f}",
                    "male" if male else "female",
                    str(2007 + n % 3),
                ]
            )
    order = rng.permutation(len(rows))
    rows = [rows[i] for i in order]
    for i in (3, 271):  # no measurement at all, as in the real file
        rows[i][2:7] = ["NA"] * 5
    for i in rng.choice([i for i in range(len(rows)) if i not in (3, 271)], 9, replace=False):
        rows[i][6] = "NA"
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(PENGUIN_COLUMNS)
        writer.writerows(rows)
    return str(path)


def sklearn_csv(path, name: str, seed: int = 0, missing: float = 0.05, rows=None) -> str:
    """scikit-learn's bundled `name` dataset as a CSV as users have them: raw numeric
    columns (with a `missing` fraction of cells left empty), two string columns
    (`size`: low/mid/high terciles of the first column; `batch`: a random lot code),
    and the class name in `target`. `rows` picks some rows (default all)."""
    from sklearn import datasets

    bunch = getattr(datasets, f"load_{name}")()
    x, y = bunch.data, bunch.target
    names = [str(n) for n in bunch.target_names]
    rng = np.random.default_rng(seed)
    terciles = np.quantile(x[:, 0], [1 / 3, 2 / 3])
    size = np.where(x[:, 0] < terciles[0], "low", np.where(x[:, 0] < terciles[1], "mid", "high"))
    lots = rng.choice(["A-1", "B-2", "C-3"], size=len(x))
    holes = rng.uniform(size=x.shape) < missing
    columns = [f"f{j}_{n.replace(' ', '_')}" for j, n in enumerate(bunch.feature_names)]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*columns, "size", "batch", "target"])
        for i in range(len(x)) if rows is None else rows:
            cells = ["" if holes[i, j] else f"{x[i, j]:.6g}" for j in range(x.shape[1])]
            writer.writerow([*cells, size[i], lots[i], names[y[i]]])
    return str(path)
