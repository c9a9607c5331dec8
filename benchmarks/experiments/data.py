"""Synthetic data sets of the experiments, each drawn from a seeded NumPy generator."""

from __future__ import annotations

import numpy as np

__all__ = ["mmoe_synthetic", "sine_parameters", "two_modalities", "two_tasks"]


def sine_parameters(m: int = 10, seed: int = 2018) -> tuple[np.ndarray, np.ndarray]:
    """The `alpha_i`, `beta_i` (i = 1..m) of the MMoE benchmark: standard normal draws,
    fixed for every run (they set the shape of both tasks' sine terms)."""
    rng = np.random.default_rng(seed)
    return rng.normal(size=m), rng.normal(size=m)


def mmoe_synthetic(
    n: int,
    correlation: float,
    rng: np.random.Generator,
    d: int = 100,
    c: float = 1.0,
    m: int = 10,
    noise: float = 0.1,
    u: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Two regression tasks whose correlation is controlled (Ma et al. 2018, sec. 4.1).

    `u1`, `u2` are orthogonal unit vectors in R^d; `w1 = c u1`,
    `w2 = c (p u1 + sqrt(1 - p^2) u2)`; for `x ~ N(0, I_d)`,
    `y_k = w_k.x + sum_i sin(alpha_i w_k.x + beta_i) + eps_k`, `eps_k ~ N(0, noise^2)`
    (the paper's N(0, 0.01) is `noise=0.1`).

    Returns:
        `(x, {"y1": (n, 1), "y2": (n, 1)}, (u1, u2))`; pass `u` back to draw more data
        (a test set) from the same tasks.
    """
    if u is None:
        basis, _ = np.linalg.qr(rng.normal(size=(d, 2)))
        u = (basis[:, 0], basis[:, 1])
    u1, u2 = u
    w1 = c * u1
    w2 = c * (correlation * u1 + np.sqrt(1.0 - correlation**2) * u2)
    alpha, beta = sine_parameters(m)
    x = rng.normal(size=(n, d))
    targets = {}
    for name, w in (("y1", w1), ("y2", w2)):
        s = x @ w
        y = s + np.sin(np.outer(s, alpha) + beta).sum(axis=1) + rng.normal(scale=noise, size=n)
        targets[name] = y[:, None].astype("float32")
    return x.astype("float32"), targets, u


def two_modalities(
    n: int,
    rng: np.random.Generator,
    prototypes: dict,
    noise: dict,
    classes: int = 4,
):
    """Two vector modalities of one class label: `x_m = prototype_m[y] + N(0, noise_m^2)`;
    a modality whose `prototypes[m]` is None is pure N(0, 1) noise, independent of y.

    Returns:
        `({"a": (n, d_a), "b": (n, d_b)}, labels (n,))`.
    """
    y = rng.integers(0, classes, size=n)
    features = {}
    for name, proto in prototypes.items():
        if proto is None:
            features[name] = rng.normal(size=(n, noise[name])).astype("float32")
        else:
            scatter = rng.normal(scale=noise[name], size=(n, proto.shape[1]))
            features[name] = (proto[y] + scatter).astype("float32")
    return features, y


def two_tasks(n: int, rng: np.random.Generator, mixing: np.ndarray, heads: dict):
    """Two classification tasks read from one latent code: `z = tanh(x M)`,
    `y_k = argmax(z H_k)`, `x ~ N(0, I)`.

    Returns:
        `(x, {task: labels (n,)})`.
    """
    x = rng.normal(size=(n, mixing.shape[0])).astype("float32")
    z = np.tanh(x @ mixing)
    return x, {task: np.argmax(z @ h, axis=1) for task, h in heads.items()}
