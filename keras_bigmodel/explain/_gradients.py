"""The one backend-specific piece of `kbm.explain`: gradients with the backend's autodiff.

Everything else in the package is written with `keras.ops` and NumPy. This module asks
TensorFlow (`tf.GradientTape`), JAX (`jax.value_and_grad`) or PyTorch
(`torch.autograd.grad`) for the gradient of a per-example score with respect to some
input tensors, and hands back NumPy arrays.

On JAX a call is compiled as one XLA program (eager JAX compiles op by op, and a
recurrent layer's scan anew on every call). The compiled function is kept per model
and computation (`cache=(model, key)`), with the model's weights passed in as
arguments through `keras.StatelessScope`, so a second call with inputs of the same
shapes reuses it and still sees weights changed in between (by training, say).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

__all__ = ["evaluate", "value_and_gradients"]

# model -> {computation key: jitted function}, JAX only.
_JAX_CACHE: weakref.WeakKeyDictionary[Any, dict] = weakref.WeakKeyDictionary()


def value_and_gradients(
    fn: Callable, leaves: Sequence[np.ndarray], args: tuple = (), cache: tuple | None = None
):
    """Scores, auxiliary outputs and d(sum of scores)/d(leaf) for every leaf.

    Each example's score depends only on that example's inputs (the model runs in
    inference mode), so the gradient of the sum is every example's own gradient.

    Args:
        fn: `fn(leaves, *args) -> (scores, aux)`, with `leaves` a list of backend
            tensors, `scores` of shape `(batch,)` and `aux` any structure of tensors.
        leaves: Float arrays to differentiate with respect to.
        args: Further arguments of `fn` (arrays, lists of arrays or None), passed as
            tensors and not differentiated.
        cache: `(model, key)`: on JAX, reuse the compiled `fn` for this model and key.

    Returns:
        `(scores, aux, gradients)` as NumPy: `scores` `(batch,)`, `aux` with the
        structure `fn` returned, `gradients` a list with one array per leaf (zeros
        for a leaf the score does not depend on).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        scores, aux, grads = _tensorflow(fn, leaves, args)
    elif backend == "jax":
        scores, aux, grads = _jax(fn, leaves, args, cache)
    elif backend == "torch":
        scores, aux, grads = _torch(fn, leaves, args)
    else:  # pragma: no cover - Keras 3 has no other backend with autodiff
        raise NotImplementedError(
            f"kbm.explain computes gradients on TensorFlow, JAX and PyTorch; this process "
            f"runs Keras on {backend!r}"
        )
    numpy = keras.tree.map_structure(_to_numpy, (scores, aux))
    grads = [
        np.zeros(np.shape(leaf), "float32") if g is None else _to_numpy(g)
        for leaf, g in zip(leaves, grads)
    ]
    return numpy[0], numpy[1], grads


def evaluate(
    fn: Callable, arrays: Sequence[np.ndarray], args: tuple = (), cache: tuple | None = None
):
    """`fn(tensors, *args)` as NumPy, for forward passes with no gradient (compiled on
    JAX, see the module docstring; eager elsewhere)."""
    if keras.backend.backend() == "jax":
        import jax

        jitted = _cached(cache, lambda: _stateless(fn, cache), jax.jit)
        outputs = jitted(*_jax_arguments(cache, arrays, args))
    else:
        outputs = fn(_tensors(arrays), *_tensor_args(args))
    return keras.tree.map_structure(_to_numpy, outputs)


def _to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype="float32")


def _tensors(arrays):
    return [keras.ops.convert_to_tensor(a) for a in arrays]


def _tensor_args(args):
    return (
        keras.tree.map_structure(
            lambda a: None if a is None else keras.ops.convert_to_tensor(a), args, none_is_leaf=True
        )
        if args
        else ()
    )


def _tensorflow(fn, leaves, args):
    import tensorflow as tf

    leaves = [tf.convert_to_tensor(leaf) for leaf in leaves]
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for leaf in leaves:
            tape.watch(leaf)
        scores, aux = fn(leaves, *_tensor_args(args))
        total = tf.reduce_sum(tf.cast(scores, "float32"))
    grads = tape.gradient(total, leaves, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return scores, aux, grads


def _torch(fn, leaves, args):
    import torch

    with torch.enable_grad():
        leaves = [
            keras.ops.convert_to_tensor(leaf).detach().requires_grad_(True) for leaf in leaves
        ]
        scores, aux = fn(leaves, *_tensor_args(args))
        grads = torch.autograd.grad(scores.float().sum(), leaves, allow_unused=True)
    return scores, aux, grads


# ---------------------------------------------------------------------------- JAX
def _stateless(fn, cache):
    """`fn` with the model's weights as a leading argument (identity without a cache)."""
    if cache is None:
        return lambda values, *rest: fn(*rest)
    variables = list(cache[0].variables)

    def stateless(values, *rest):
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*rest)

    return stateless


def _jax_arguments(cache, arrays, args):
    import jax.numpy as jnp

    values = [] if cache is None else [v.value for v in cache[0].variables]
    arrays = [jnp.asarray(a) for a in arrays]
    args = (
        keras.tree.map_structure(
            lambda a: None if a is None else jnp.asarray(a), args, none_is_leaf=True
        )
        if args
        else ()
    )
    return (values, arrays, *args)


def _cached(cache, make: Callable, transform: Callable):
    if cache is None:
        return transform(make())
    model, key = cache
    table = _JAX_CACHE.setdefault(model, {})
    if key not in table:
        table[key] = transform(make())
    return table[key]


def _jax(fn, leaves, args, cache):
    import jax
    import jax.numpy as jnp

    def make():
        inner = _stateless(fn, cache)

        def total(values, ls, *rest):
            scores, aux = inner(values, ls, *rest)
            return jnp.sum(scores.astype("float32")), (scores, aux)

        return total

    jitted = _cached(cache, make, lambda f: jax.jit(jax.value_and_grad(f, argnums=1, has_aux=True)))
    (_, (scores, aux)), grads = jitted(*_jax_arguments(cache, leaves, args))
    return scores, aux, grads
