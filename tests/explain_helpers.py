"""Helpers shared by the explain tests (not a test module): tiny presets, inputs for
them, NumPy-initialised weights, and small models with a known answer."""

import functools

import keras
import numpy as np

import zoo

__all__ = [
    "ZEROS",
    "build_tiny",
    "explained_output",
    "feed_for",
    "inputs_for",
    "numpy_init",
    "tiny_overrides",
]

# Test models start from zeros and get NumPy weights (`numpy_init`): the same on every
# backend, and no random kernel for JAX to compile per weight shape.
ZEROS = {"kernel_initializer": "zeros"}


def numpy_init(model, seed=0):
    """Glorot-uniform kernels and small biases from a NumPy generator."""
    rng = np.random.default_rng(seed)
    weights = []
    for w in model.get_weights():
        if w.ndim == 1:
            weights.append(rng.uniform(-0.1, 0.1, w.shape).astype("float32"))
        else:
            fan_in, fan_out = np.prod(w.shape[:-1]), w.shape[-1]
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            weights.append(rng.uniform(-limit, limit, w.shape).astype("float32"))
    model.set_weights(weights)
    return model


def tiny_overrides(name: str) -> dict:
    """Small versions of a preset's config: shapes of a few steps or pixels, few units.
    Derived from the registered config, so a new preset is covered without editing this."""
    overrides = {}
    for key, value in zoo.describe(name)["config"].items():
        if key.endswith("shape") and isinstance(value, (tuple, list)):
            overrides[key] = {3: (8, 8, 1), 2: (5, 3), 1: (6,)}.get(len(value), value)
        elif ("units" in key or "filters" in key or key.endswith("_dim")) and not isinstance(
            value, bool
        ):
            if isinstance(value, int) and value > 4:
                overrides[key] = 4
            elif (
                isinstance(value, (tuple, list))
                and value
                and all(isinstance(u, int) for u in value)
            ):
                overrides[key] = tuple(min(u, 4) for u in value)
    return overrides


@functools.cache
def build_tiny(name: str, seed: int = 0, **extra) -> keras.Model:
    """The tiny preset, built once per process and shared by the explain tests (the
    functions under test never change a model; on JAX this saves a build and the
    compiled explanations of identical calls)."""
    keras.utils.set_random_seed(seed)
    try:
        return zoo.build(name, **{**tiny_overrides(name), **extra})
    except (ValueError, TypeError):  # an override the preset refuses: its defaults then
        return zoo.build(name, **extra)


def inputs_for(model: keras.Model, batch: int = 2, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    arrays = []
    for tensor in model.inputs:
        shape = (batch,) + tuple(5 if d is None else d for d in tensor.shape[1:])
        if "int" in str(tensor.dtype):
            arrays.append(rng.integers(1, 4, size=shape).astype(str(tensor.dtype)))
        else:
            arrays.append(rng.uniform(size=shape).astype("float32"))
    return arrays


def explained_output(model: keras.Model):
    output = model.output
    if isinstance(output, dict):
        return min(output)
    if isinstance(output, (list, tuple)) and len(output) > 1:
        return 0
    return None


def feed_for(model, arrays):
    if isinstance(model.input, dict):
        return dict(zip(sorted(model.input), arrays))
    return arrays if len(arrays) > 1 else arrays[0]
