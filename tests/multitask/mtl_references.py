"""Independent NumPy/SciPy references for the gradient aggregation methods.

Written from the papers and from LibMTL's (median-research-group/LibMTL) and TorchJD's
formulas, in float64, with exact solvers where the libraries use iterative ones:
active-set enumeration for the min-norm and dual-cone QPs, SciPy's SLSQP at a tight
tolerance for CAGrad (LibMTL's own solver, tighter), `scipy.optimize.root` for
Nash-MTL's `M alpha = 1 / alpha`.
"""

import itertools

import numpy as np
from scipy import optimize


def pcgrad_libmtl(g, perms):
    """LibMTL's PCGrad: each task's gradient projected off the tasks it conflicts with,
    in the order `perms[i]` (LibMTL shuffles; the task itself is skipped as in TorchJD)."""
    pc = g.copy()
    for i in range(len(g)):
        for j in perms[i]:
            if j == i:
                continue
            inner = pc[i] @ g[j]
            if inner < 0:
                pc[i] -= inner * g[j] / (g[j] @ g[j])
    return pc.sum(0)


def min_norm_weights(m):
    """argmin_{w in simplex} w^T M w by enumerating supports and solving the KKT system."""
    k = len(m)
    best, best_val = None, np.inf
    for size in range(1, k + 1):
        for support in itertools.combinations(range(k), size):
            s = list(support)
            a = np.zeros((size + 1, size + 1))
            a[:size, :size] = 2 * m[np.ix_(s, s)]
            a[:size, size] = -1
            a[size, :size] = 1
            rhs = np.zeros(size + 1)
            rhs[size] = 1
            sol = np.linalg.lstsq(a, rhs, rcond=None)[0]
            w = np.zeros(k)
            w[s] = sol[:size]
            if w.min() < -1e-12 or abs(w.sum() - 1) > 1e-9:
                continue
            val = w @ m @ w
            if val < best_val - 1e-15:
                best, best_val = w, val
    return best


def mgda(g):
    return min_norm_weights(g @ g.T) @ g


def dual_cone_weights(u, m):
    """argmin_v v^T M v s.t. v >= u (M positive definite): enumerate the free set."""
    k = len(m)
    for size in range(k + 1):
        for free in itertools.combinations(range(k), size):
            f = np.zeros(k, bool)
            f[list(free)] = True
            v = u.copy()
            if size:
                v[f] = np.linalg.solve(m[np.ix_(f, f)], -m[np.ix_(f, ~f)] @ u[~f])
            grad = m @ v
            if np.all(v[f] >= u[f] - 1e-12) and np.all(grad[~f] >= -1e-12):
                return v
    raise AssertionError("no KKT point")


def upgrad_torchjd(g, norm_eps=1e-4, reg_eps=1e-4):
    """TorchJD's UPGrad: rows of diag(1/K) projected on the dual cone of the (trace-
    normalised, regularised) Gramian, summed."""
    m = g @ g.T
    tr = np.trace(m)
    m = np.zeros_like(m) if tr < norm_eps else m / tr
    m = m + reg_eps * np.eye(len(m))
    k = len(m)
    w = sum(dual_cone_weights(np.eye(k)[i] / k, m) for i in range(k))
    return w @ g


def imtl_g_libmtl(g):
    """LibMTL's IMTL-G: alpha from D = g_1 - g_j and U = u_1 - u_j (unit gradients)."""
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    d = g[0:1] - g[1:]
    u = unit[0:1] - unit[1:]
    alpha = g[0] @ u.T @ np.linalg.inv(d @ u.T)
    alpha = np.concatenate([[1 - alpha.sum()], alpha])
    return alpha @ g


def aligned_mtl_libmtl(g):
    """LibMTL's Aligned-MTL (balance matrix B, columns summed: preference vector 1)."""
    m = g @ g.T
    lam, v = np.linalg.eigh(m)
    tol = lam.max() * max(m.shape) * np.finfo(np.float32).eps
    rank = int((lam > tol).sum())
    order = np.argsort(lam)[::-1]
    lam, v = lam[order][:rank], v[:, order][:, :rank]
    b = np.sqrt(lam[-1]) * (v @ np.diag(1 / np.sqrt(lam)) @ v.T)
    return b.sum(0) @ g


def cagrad_libmtl(g, calpha=0.5, rescale=1):
    """LibMTL's CAGrad objective, solved by SLSQP from the same start, tighter."""
    k = len(g)
    gg = g @ g.T
    g0_norm = np.sqrt(gg.mean() + 1e-8)
    x0 = np.ones(k) / k
    c = calpha * g0_norm + 1e-8

    def objective(x):
        return x @ gg @ x0 + c * np.sqrt(x @ gg @ x + 1e-8)

    res = optimize.minimize(
        objective,
        x0,
        bounds=[(0, 1)] * k,
        constraints=({"type": "eq", "fun": lambda x: 1 - x.sum()},),
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = res.x
    gw = w @ g
    lmbda = c / (np.linalg.norm(gw) + 1e-8)
    out = g.mean(0) + lmbda * gw
    return out / {0: 1.0, 1: 1 + calpha**2, 2: 1 + calpha}[rescale]


def nash_alpha(m, scale=1.0):
    """The positive solution of (M / scale) alpha = 1 / alpha."""
    a = m / scale
    sol = optimize.root(
        lambda x: a @ np.exp(x) - np.exp(-x), np.zeros(len(m)), method="hybr", tol=1e-12
    )
    assert np.max(np.abs(a @ np.exp(sol.x) - np.exp(-sol.x))) < 1e-9, sol.message
    return np.exp(sol.x)


def nash_mtl(g):
    return nash_alpha(g @ g.T) @ g


def gradnorm_logits_gradient(logits, g, losses, initial, alpha=1.5, h=1e-6):
    """Central differences of GradNorm's loss with its target frozen at `logits`."""
    k = len(g)

    def weights(x):
        e = np.exp(x - x.max())
        return k * e / e.sum()

    norms = np.linalg.norm(g, axis=1)
    r = (losses / initial) / np.mean(losses / initial)
    target = np.mean(weights(logits) * norms) * r**alpha

    def loss(x):
        return np.abs(weights(x) * norms - target).sum()

    grad = np.zeros(k)
    for i in range(k):
        e = np.zeros(k)
        e[i] = h
        grad[i] = (loss(logits + e) - loss(logits - e)) / (2 * h)
    return grad


def famo_direction(g, losses, logits, min_losses=0.0):
    """LibMTL's FAMO backward: the gradient of sum_k z_k log(L_k - min_k) / c."""
    z = np.exp(logits) / np.exp(logits).sum()
    d = losses - min_losses + 1e-8
    c = (z / d).sum()
    return (z / (c * d)) @ g


def famo_logits_gradient(prev, curr, logits, min_losses=0.0, h=1e-6):
    """Central differences of softmax(logits) . delta (LibMTL's FAMO update)."""
    delta = np.log(prev - min_losses + 1e-8) - np.log(curr - min_losses + 1e-8)

    def f(x):
        z = np.exp(x - x.max())
        return (z / z.sum()) @ delta

    out = np.zeros(len(logits))
    for i in range(len(logits)):
        e = np.zeros(len(logits))
        e[i] = h
        out[i] = (f(logits + e) - f(logits - e)) / (2 * h)
    return out
