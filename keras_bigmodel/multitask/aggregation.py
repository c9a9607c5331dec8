"""Gradient aggregation for multi-task learning, as pure functions on a gradient matrix.

Every method takes the tasks' gradients as a `(tasks, parameters)` matrix `G` (row
`k` is the gradient of task `k`'s loss) and returns one update direction `d`
(`(parameters,)`), to be used as the gradient of a descent step. All methods here
are *Gramian-weighted*: they compute task weights `w` from the `(tasks, tasks)`
Gramian `M = G G^T` (and, for some, the task losses), and return `d = w^T G`.
That is what makes the cheap variants possible: the weights can come from the
gradients of a shared representation (MGDA-UB), and the update is then one backward
pass of the weighted loss `sum_k w_k L_k`.

Everything is written with `keras.ops` (no SciPy, no cvxpy), so it runs on
TensorFlow, JAX and PyTorch, inside a compiled training step. The small
optimisation problems (MGDA's min-norm point, UPGrad's dual-cone projections,
CAGrad's inner problem, Nash-MTL's bargaining solution) are solved by accelerated
projected gradient (MGDA, UPGrad, CAGrad) or damped Newton (Nash-MTL) steps, until a
step changes the solution by less than a few units of the dtype's rounding error, or
after `max_iter` steps. The stopping test matters most on PyTorch, which runs the
loop step by step: a converged problem stops after tens of steps, not `max_iter`.

Methods (`METHODS`) and conventions:

| method | weights | reference |
| --- | --- | --- |
| `sum` | 1 (LibMTL's EW) | |
| `mean` | 1/K | TorchJD `Mean` |
| `rlw` | softmax of a standard normal draw | Lin et al. 2022, LibMTL `RLW` |
| `pcgrad` | projections of conflicting gradients, random order | Yu et al. 2020 |
| `cagrad` | 1/K + lambda w, divided by 1 + c^2 (`rescale=1`) | Liu et al. 2021 |
| `mgda` | min-norm point of the convex hull | Sener and Koltun 2018 |
| `imtl_g` | equal projections on unit gradients, sum 1 | Liu et al. 2021 |
| `nash_mtl` | `M alpha = 1/alpha` | Navon et al. 2022 |
| `aligned_mtl` | `sqrt(lambda_min) V S^-1/2 V^T` times 1/K | Senushkin et al. 2023 |
| `upgrad` | mean of the rows projected on the dual cone | Quinton and Rey 2024 |
| `gradnorm` | `K softmax(logits)` (learned, see `gradnorm_logits_gradient`) | Chen et al. 2018 |
| `famo` | `z_k / (c (L_k - min_k))`, `z = softmax(logits)` | Liu et al. 2023 |

Convention differences to the two reference libraries (tested):
- `aligned_mtl` follows TorchJD (preference vector 1/K); LibMTL sums the columns of
  the balance matrix (preference 1), so its direction is `K` times this one.
- `cagrad` follows LibMTL (`rescale=1`: divided by `1 + c^2`); TorchJD's `CAGrad`
  is `rescale=0`.
- `nash_mtl` returns the exact solution of `M alpha = 1/alpha`. LibMTL and TorchJD
  solve the same equation on `M / ||M||_F` with a few convex-concave steps, so their
  weights are `sqrt(||M||_F)` times these (up to their stopping tolerance), and they
  clip the update's norm (`max_norm`, use the optimizer's `clipnorm` here).
- `upgrad` regularises as TorchJD's default projector does (`M / trace(M) + 1e-4 I`).
- `mgda` solves the min-norm problem to convergence; TorchJD and LibMTL stop their
  Frank-Wolfe iterations early (`epsilon=1e-3` / 250 iterations).

Cost: `sum`, `mean`, `rlw` and `famo` need only the task losses, so a training step
needs one backward pass; every other method needs the gradient of each task
(one backward pass per task), unless its weights come from the gradients of a
shared representation (`MultiTaskModel(representation=...)`).
"""

from __future__ import annotations

import numpy as np
from keras import ops

__all__ = [
    "LOSS_ONLY_METHODS",
    "METHODS",
    "STATEFUL_METHODS",
    "aggregate",
    "aggregation_weights",
    "famo_logits_gradient",
    "gradnorm_logits_gradient",
]

METHODS = (
    "sum",
    "mean",
    "rlw",
    "pcgrad",
    "cagrad",
    "mgda",
    "imtl_g",
    "nash_mtl",
    "aligned_mtl",
    "upgrad",
    "gradnorm",
    "famo",
)
# Weights that depend on the losses only: one backward pass per training step.
LOSS_ONLY_METHODS = ("sum", "mean", "rlw", "famo")
# Methods with state kept between steps (GradNorm's and FAMO's logits).
STATEFUL_METHODS = ("gradnorm", "famo")

_OPTIONS = {
    "sum": (),
    "mean": (),
    "rlw": ("seed",),
    "pcgrad": ("seed",),
    "cagrad": ("c", "rescale", "max_iter"),
    "mgda": ("max_iter",),
    "imtl_g": (),
    "nash_mtl": ("max_iter",),
    "aligned_mtl": ("scale_mode",),
    "upgrad": ("norm_eps", "reg_eps", "max_iter"),
    "gradnorm": ("logits",),
    "famo": ("losses", "logits", "min_losses"),
}
_EPS = 1e-12
# Solvers stop when a step moves the solution by at most this many dtype epsilons.
_TOLERANCE = 4.0


# ------------------------------------------------------------------------ checks
def check_method(method) -> str:
    if not isinstance(method, str) or method.lower() not in METHODS:
        raise ValueError(f"`method` must be one of {list(METHODS)}. Received: method={method!r}")
    return method.lower()


def check_options(method: str, options: dict) -> dict:
    unknown = sorted(set(options) - set(_OPTIONS[method]))
    if unknown:
        raise ValueError(
            f"aggregate(method={method!r}) takes options {list(_OPTIONS[method])}; received "
            f"unknown options {unknown}"
        )
    if "c" in options and not (isinstance(options["c"], (int, float)) and options["c"] >= 0):
        raise ValueError(f"`c` must be a non-negative number. Received: c={options['c']!r}")
    if "rescale" in options and options["rescale"] not in (0, 1, 2):
        raise ValueError(f"`rescale` must be 0, 1 or 2. Received: rescale={options['rescale']!r}")
    if "max_iter" in options and not (
        isinstance(options["max_iter"], int) and options["max_iter"] > 0
    ):
        raise ValueError(
            f"`max_iter` must be a positive integer. Received: max_iter={options['max_iter']!r}"
        )
    if "scale_mode" in options and options["scale_mode"] not in ("min", "median", "rmse"):
        raise ValueError(
            "`scale_mode` must be 'min', 'median' or 'rmse'. "
            f"Received: scale_mode={options['scale_mode']!r}"
        )
    for key in ("norm_eps", "reg_eps"):
        if key in options and not (isinstance(options[key], (int, float)) and options[key] >= 0):
            raise ValueError(f"`{key}` must be a non-negative number. Received: {options[key]!r}")
    return options


def _matrix(gradients):
    g = ops.convert_to_tensor(gradients)
    if len(g.shape) != 2:
        raise ValueError(
            "`gradients` must be a (tasks, parameters) matrix. "
            f"Received: gradients with shape {tuple(g.shape)}"
        )
    if g.shape[0] is not None and g.shape[0] < 1:
        raise ValueError("`gradients` must have at least one task (row)")
    if "float" not in str(g.dtype):
        g = ops.cast(g, "float32")
    return g


# --------------------------------------------------------------------- helpers
def _eigh(m):
    m = 0.5 * (m + ops.transpose(m))
    return ops.eigh(m)


def _project_simplex(v):
    """Euclidean projection of each row of `v` on the probability simplex."""
    k = v.shape[-1]
    u = ops.flip(ops.sort(v, axis=-1), axis=-1)
    css = ops.cumsum(u, axis=-1) - 1.0
    idx = ops.cast(ops.arange(1, k + 1), v.dtype)
    cond = ops.cast(u - css / idx > 0, v.dtype)
    rho = ops.sum(cond, axis=-1, keepdims=True)  # number of positive entries
    theta = ops.take_along_axis(css, ops.cast(rho, "int32") - 1, axis=-1) / rho
    return ops.maximum(v - theta, 0.0)


def _until_converged(step, x0, state, max_iter):
    """Runs `x, state = step(x, state)` until `x` moves by at most `_TOLERANCE` dtype
    epsilons (its largest absolute change), or `max_iter` times. Returns the last `x`."""
    tol = _TOLERANCE * _dtype_eps(x0)
    inf = ops.full((), np.inf, dtype=x0.dtype)

    def cond(x, state, change):
        return change > tol

    def body(x, state, change):
        x_new, state = step(x, state)
        return x_new, state, ops.max(ops.abs(x_new - x))

    x, _, _ = ops.while_loop(cond, body, (x0, state, inf), maximum_iterations=max_iter)
    return x


def _fista_step(grad_fn, project, step):
    """One step of accelerated projected gradient with gradient-based adaptive restart:
    `(x, (y, t)) -> (x_new, (y_new, t_new))`. `step` may depend on `y` (a callable)."""

    def body(x, state):
        y, t = state
        size = step(y) if callable(step) else step
        x_new = project(y - size * grad_fn(y))
        t_new = 0.5 * (1.0 + ops.sqrt(1.0 + 4.0 * t * t))
        restart = ops.sum((y - x_new) * (x_new - x)) > 0
        t_new = ops.where(restart, ops.ones_like(t_new), t_new)
        momentum = ops.where(restart, ops.zeros_like(t), (t - 1.0) / t_new)
        return x_new, (x_new + momentum * (x_new - x), t_new)

    return body


def _fista(grad_fn, project, x0, step, iters):
    """Accelerated projected gradient, from `x0`, until converged or `iters` steps."""
    one = ops.ones((), dtype=x0.dtype)
    return _until_converged(_fista_step(grad_fn, project, step), x0, (x0, one), iters)


def _dtype_eps(x) -> float:
    import keras

    return float(np.finfo(keras.backend.standardize_dtype(x.dtype)).eps)


def _normalized(m):
    trace = ops.trace(m)
    return ops.where(trace > _EPS, m / ops.maximum(trace, _EPS), ops.zeros_like(m))


def _max_eig(m):
    values, _ = _eigh(m)
    return ops.maximum(ops.max(values), _EPS)


# --------------------------------------------------------------------- methods
def _mgda(m, max_iter=500):
    k = m.shape[0]
    a = _normalized(m)
    step = 1.0 / (2.0 * _max_eig(a))
    w0 = ops.ones((k,), dtype=m.dtype) / k
    return _fista(lambda w: 2.0 * ops.matmul(a, w), _project_simplex, w0, step, max_iter)


def _upgrad(m, norm_eps=1e-4, reg_eps=1e-4, max_iter=1000):
    k = m.shape[0]
    trace = ops.trace(m)
    a = ops.where(trace < norm_eps, ops.zeros_like(m), m / ops.maximum(trace, _EPS))
    a = a + reg_eps * ops.eye(k, dtype=m.dtype)
    u = ops.eye(k, dtype=m.dtype) / k  # rows: the preference vector's parts
    step = 1.0 / (2.0 * _max_eig(a))
    # min_v v^T A v s.t. v >= u, every row at once
    v = _fista(lambda v: 2.0 * ops.matmul(v, a), lambda v: ops.maximum(v, u), u, step, max_iter)
    return ops.sum(v, axis=0)


def _imtl_g(m):
    d = ops.sqrt(ops.maximum(ops.diagonal(m), 0.0))
    values, vectors = _eigh(m)
    eps = _dtype_eps(m)
    tol = ops.max(ops.abs(values)) * m.shape[0] * eps
    inverse = ops.where(ops.abs(values) > tol, 1.0 / ops.where(values == 0, 1.0, values), 0.0)
    pinv = ops.matmul(vectors * inverse[None, :], ops.transpose(vectors))
    v = ops.matmul(pinv, d)
    total = ops.sum(v)
    return ops.where(ops.abs(total) < 1e-12, ops.zeros_like(v), v / total)


def _aligned_mtl(m, scale_mode="min"):
    k = m.shape[0]
    values, vectors = _eigh(m)
    eps = _dtype_eps(m)
    tol = ops.max(values) * k * eps
    keep = values > tol
    if scale_mode == "min":
        scale = ops.min(ops.where(keep, values, ops.full_like(values, np.inf)))
    elif scale_mode == "rmse":
        scale = ops.sum(ops.where(keep, values, 0.0)) / ops.maximum(
            ops.sum(ops.cast(keep, values.dtype)), 1.0
        )
    else:  # median of the kept eigenvalues (ascending order; the kept are the largest)
        count = ops.sum(ops.cast(keep, "int32"))
        ordered = ops.sort(values)
        # torch.median returns the lower of the two middle values
        index = k - count + (count - 1) // 2
        scale = ops.take(ordered, ops.maximum(index, 0))
    inv_sqrt = ops.where(keep, 1.0 / ops.sqrt(ops.where(keep, values, 1.0)), 0.0)
    b = ops.sqrt(ops.maximum(scale, 0.0)) * ops.matmul(
        vectors * inv_sqrt[None, :], ops.transpose(vectors)
    )
    b = ops.where(ops.any(keep), b, ops.eye(k, dtype=m.dtype))
    return ops.matmul(b, ops.ones((k,), dtype=m.dtype) / k)


def _nash_mtl(m, max_iter=40):
    """The solution of `M alpha = 1/alpha`, alpha > 0: the minimiser of the strictly convex
    `0.5 alpha^T M alpha - sum log alpha`, by damped Newton steps on `M / ||M||_F`."""
    k = m.shape[0]
    norm = ops.sqrt(ops.maximum(ops.sum(m * m), _EPS))
    a = m / norm + 1e-10 * ops.eye(k, dtype=m.dtype)
    alpha0 = ops.ones((k,), dtype=m.dtype) / ops.sqrt(ops.maximum(ops.sum(a), _EPS))

    def newton(alpha, state):
        grad = ops.matmul(a, alpha) - 1.0 / alpha
        hess = a + ops.diag(1.0 / (alpha * alpha))
        delta = -ops.solve(hess, grad[:, None])[:, 0]
        ratio = ops.where(delta < 0, -alpha / ops.where(delta < 0, delta, -1.0), np.inf)
        step = ops.minimum(1.0, 0.95 * ops.min(ratio))
        return alpha + step * delta, state

    alpha = _until_converged(newton, alpha0, ops.zeros((), dtype=m.dtype), max_iter)
    return alpha / ops.sqrt(norm)


def _cagrad(m, c=0.5, rescale=1, max_iter=1000):
    k = m.shape[0]
    a = _normalized(m)
    trace = ops.trace(m)
    b = ops.ones((k,), dtype=m.dtype) / k
    g0_norm = ops.sqrt(ops.maximum(ops.sum(a) / (k * k), 0.0) + 1e-8)
    cc = c * g0_norm + 1e-8
    ab = ops.matmul(a, b)
    lam_max = _max_eig(a)

    def quotient(w):
        return ops.sqrt(ops.maximum(ops.sum(w * ops.matmul(a, w)), 0.0) + 1e-8)

    w = _fista(
        lambda w: ab + cc * ops.matmul(a, w) / quotient(w),
        _project_simplex,
        b,
        lambda w: 1.0 / (lam_max * (1.0 + cc / quotient(w))),
        max_iter,
    )
    gw_norm = ops.sqrt(ops.maximum(ops.sum(w * ops.matmul(a, w)), 0.0))
    weights = b + cc / (gw_norm + 1e-8) * w
    weights = ops.where(trace > _EPS, weights, b)
    if rescale == 1:
        weights = weights / (1.0 + c**2)
    elif rescale == 2:
        weights = weights / (1.0 + c)
    return weights


def _permutations(k, seed):
    """A random order of the tasks for each task (PCGrad), fixed by `seed`: an int gives
    NumPy permutations (fixed when traced), a `keras.random.SeedGenerator` fresh ones
    each call, None NumPy's global generator."""
    import keras

    if isinstance(seed, keras.random.SeedGenerator):
        rows = [keras.random.shuffle(ops.arange(k), seed=seed) for _ in range(k)]
        return ops.stack(rows)
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(k) for _ in range(k)])


def _pcgrad(m, seed=None):
    k = m.shape[0]
    perms = _permutations(k, seed)
    eye = ops.eye(k, dtype=m.dtype)
    total = ops.zeros((k,), dtype=m.dtype)
    for i in range(k):
        w = eye[i]
        for t in range(k):
            j = perms[i][t]
            if isinstance(j, (int, np.integer)) and int(j) == i:
                continue
            row = ops.take(m, j, axis=0)
            inner = ops.sum(row * w)
            diag = ops.take(row, j)
            hit = ops.logical_and(inner < 0, diag > 0)
            not_self = ops.not_equal(ops.cast(j, "int32"), i)
            shift = ops.where(
                ops.logical_and(hit, not_self), inner / ops.where(diag > 0, diag, 1.0), 0.0
            )
            w = w - shift * ops.one_hot(ops.cast(j, "int32"), k, dtype=m.dtype)
        total = total + w
    return total


def _rlw(m, seed=None):
    import keras

    k = m.shape[0]
    if isinstance(seed, keras.random.SeedGenerator):
        draw = keras.random.normal((k,), seed=seed, dtype=m.dtype)
    else:
        draw = ops.convert_to_tensor(np.random.default_rng(seed).standard_normal(k), dtype=m.dtype)
    return ops.softmax(draw)


def _logits(k, logits, dtype):
    if logits is None:
        return ops.zeros((k,), dtype=dtype)
    logits = ops.cast(ops.convert_to_tensor(logits), dtype)
    if tuple(logits.shape) != (k,):
        raise ValueError(
            f"`logits` must have one entry per task ({k}). Received shape {tuple(logits.shape)}"
        )
    return logits


def _losses(k, losses, name, dtype):
    losses = ops.cast(ops.convert_to_tensor(losses), dtype)
    if tuple(losses.shape) != (k,):
        raise ValueError(
            f"`{name}` must have one entry per task ({k}). Received shape {tuple(losses.shape)}"
        )
    return losses


def _famo(k, dtype, losses, logits=None, min_losses=0.0):
    z = ops.softmax(_logits(k, logits, dtype))
    d = _losses(k, losses, "losses", dtype) - ops.cast(min_losses, dtype) + 1e-8
    c = ops.sum(z / d)
    return z / (c * d)


def _weights_from_gramian(m, method, options, k, dtype):
    if method == "sum":
        return ops.ones((k,), dtype=dtype)
    if method == "mean":
        return ops.ones((k,), dtype=dtype) / k
    if method == "rlw":
        return _rlw(m if m is not None else ops.zeros((k, k), dtype), **options)
    if method == "famo":
        return _famo(k, dtype, **options)
    if method == "gradnorm":
        return k * ops.softmax(_logits(k, options.get("logits"), dtype))
    solver = {
        "pcgrad": _pcgrad,
        "cagrad": _cagrad,
        "mgda": _mgda,
        "imtl_g": _imtl_g,
        "nash_mtl": _nash_mtl,
        "aligned_mtl": _aligned_mtl,
        "upgrad": _upgrad,
    }[method]
    return solver(m, **options)


def aggregation_weights(gradients, method: str = "pcgrad", **options):
    """The task weights `w` of a method, such that `aggregate(...) == w @ gradients`.

    Args:
        gradients: The tasks' gradients, a `(tasks, parameters)` matrix (any
            backend's tensor or a NumPy array). For the representation variants,
            the gradients with respect to a shared representation.
        method: One of `METHODS`.
        **options: The method's options (see `aggregate`).

    Returns:
        A `(tasks,)` tensor.

    Raises:
        ValueError: For an unknown method or option, or a gradient matrix that is
            not 2-D.

    Example:

    ```python
    import numpy as np
    from keras_bigmodel.multitask import aggregation_weights

    g = np.array([[1.0, 0.0], [0.0, 2.0]])
    aggregation_weights(g, "mgda")        # ~[0.8, 0.2]: the min-norm point
    ```
    """
    method = check_method(method)
    options = check_options(method, dict(options))
    if method == "famo" and options.get("losses") is None:
        raise ValueError("aggregate(method='famo') needs `losses`, the tasks' current losses")
    g = _matrix(gradients)
    k = g.shape[0]
    m = (
        None
        if method in ("sum", "mean", "famo", "gradnorm", "rlw")
        else ops.matmul(g, ops.transpose(g))
    )
    return _weights_from_gramian(m, method, options, k, g.dtype)


def aggregate(gradients, method: str = "pcgrad", **options):
    """Combines the tasks' gradients into one update direction.

    Args:
        gradients: The tasks' gradients, a `(tasks, parameters)` matrix.
        method: One of `METHODS` (see the module's table): `"sum"`, `"mean"`,
            `"rlw"`, `"pcgrad"`, `"cagrad"`, `"mgda"`, `"imtl_g"`,
            `"nash_mtl"`, `"aligned_mtl"`, `"upgrad"`, `"gradnorm"`, `"famo"`.
        **options: The method's options:
            `seed` (`rlw`, `pcgrad`: an int for a fixed draw, a
            `keras.random.SeedGenerator` for a fresh one each call);
            `c` (0.5), `rescale` (1) and `max_iter` (1000) for `cagrad`;
            `max_iter` for `mgda` (500), `nash_mtl` (40 Newton steps) and
            `upgrad` (1000); `norm_eps`, `reg_eps` (1e-4 each) for `upgrad`;
            `scale_mode` (`"min"`, `"median"`, `"rmse"`) for `aligned_mtl`;
            `logits` for `gradnorm` (its learned weights `K softmax(logits)`)
            and `famo`; `losses` (required) and `min_losses` (0) for `famo`.

    Returns:
        The direction, a `(parameters,)` tensor of the backend.

    Raises:
        ValueError: For an unknown method or option, a bad option value, or a
            gradient matrix that is not 2-D.

    Example:

    ```python
    import numpy as np
    import keras_bigmodel as kbm

    g = np.array([[1.0, 1.0], [-1.0, 0.5]])          # conflicting gradients
    d = kbm.multitask.aggregate(g, method="pcgrad", seed=0)
    float(np.dot(np.asarray(d), g[0])) >= 0          # no task's loss goes up
    ```
    """
    g = _matrix(gradients)
    w = aggregation_weights(g, method, **options)
    return ops.matmul(ops.cast(w, g.dtype), g)


# --------------------------------------------------------------- state updates
def gradnorm_logits_gradient(gradients, losses, initial_losses, logits=None, alpha: float = 1.5):
    """The gradient of GradNorm's loss with respect to its weight logits.

    GradNorm (Chen et al., 2018) as LibMTL writes it: weights `w = K softmax(logits)`,
    task gradient norms `G_k = w_k ||g_k||`, target `t_k = mean(G) r_k^alpha` (held
    constant) with `r_k = (L_k / L_k(0)) / mean_j(L_j / L_j(0))`, and loss
    `sum_k |G_k - t_k|`.

    Args:
        gradients: `(tasks, parameters)` gradients of the (unweighted) task losses
            on the shared parameters.
        losses: The tasks' current losses `(tasks,)`.
        initial_losses: The tasks' losses at the start of training.
        logits: The current logits (default zeros: equal weights).
        alpha: GradNorm's asymmetry (1.5 in the paper's default).

    Returns:
        A `(tasks,)` tensor; descend along it to update the logits.
    """
    g = _matrix(gradients)
    k = g.shape[0]
    logits = _logits(k, logits, g.dtype)
    s = ops.softmax(logits)
    w = k * s
    norms = ops.sqrt(ops.sum(g * g, axis=1))
    big_g = w * norms
    ratio = _losses(k, losses, "losses", g.dtype) / _losses(
        k, initial_losses, "initial_losses", g.dtype
    )
    r = ratio / ops.mean(ratio)
    target = ops.mean(big_g) * r**alpha
    dw = ops.sign(big_g - target) * norms
    return k * s * (dw - ops.sum(dw * s))


def famo_logits_gradient(previous_losses, losses, logits=None, min_losses=0.0):
    """The gradient FAMO (Liu et al., 2023) descends on its logits after a step.

    With `delta_k = log(L_k(before) - min_k) - log(L_k(after) - min_k)` (the log
    decrease of each task's loss), the gradient is that of `softmax(logits) . delta`.

    Args:
        previous_losses: The tasks' losses before the step `(tasks,)`.
        losses: The tasks' losses after it.
        logits: The current logits (default zeros).
        min_losses: The tasks' minimal losses (0 by default).

    Returns:
        A `(tasks,)` tensor.
    """
    previous = ops.convert_to_tensor(previous_losses)
    dtype = previous.dtype if "float" in str(previous.dtype) else "float32"
    k = previous.shape[0]
    z = ops.softmax(_logits(k, logits, dtype))
    mins = ops.cast(min_losses, dtype)
    delta = ops.log(_losses(k, previous, "previous_losses", dtype) - mins + 1e-8) - ops.log(
        _losses(k, losses, "losses", dtype) - mins + 1e-8
    )
    return z * (delta - ops.sum(z * delta))
