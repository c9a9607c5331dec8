"""Every zoo preset is explained on every backend: saliency, integrated gradients (with
completeness) and, where the preset has a convolution, Grad-CAM. The cases come from the
registry (`zoo.list_presets()`), built small."""

import functools

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo

E = kbm.explain


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


@pytest.mark.parametrize("name", zoo.list_presets())
def test_every_preset_is_explained(name):
    model = build_tiny(name)
    arrays = inputs_for(model)
    feed = feed_for(model, arrays)
    output = explained_output(model)
    tensor = model.output[output] if output is not None else keras.tree.flatten(model.output)[0]
    classes = tensor.shape[-1]
    class_index = [1 % classes, (classes - 1)]
    names = sorted(model.input) if isinstance(model.input, dict) else [t.name for t in model.inputs]
    floats = [
        (n, a) for n, a in zip(names, arrays) if a.dtype.kind == "f"
    ]  # token inputs carry no gradient

    maps = E.saliency(model, feed, class_index, output=output)
    maps = maps if isinstance(maps, dict) else {floats[0][0]: maps}
    assert set(maps) == {n for n, _ in floats}
    for n, a in floats:
        expected = a.shape[:3] if a.ndim == 4 else a.shape
        assert maps[n].shape == expected and maps[n].dtype == np.float32
        assert np.all((maps[n] >= 0) & (maps[n] <= 1))
    assert max(m.max() for m in maps.values()) == pytest.approx(1.0, abs=1e-4)

    # batch_size=2: one path point per pass, the shapes of the saliency call above (on JAX
    # its compiled program is reused)
    attributions = E.integrated_gradients(
        model, feed, class_index, output=output, steps=32, batch_size=2
    )
    attributions = attributions if isinstance(attributions, dict) else {floats[0][0]: attributions}
    total = sum(a.reshape(len(a), -1).sum(axis=1) for a in attributions.values())
    baseline = [np.zeros_like(a) if a.dtype.kind == "f" else a for a in arrays]
    gap = E.class_scores(model, feed, class_index, output=output) - E.class_scores(
        model, feed_for(model, baseline), class_index, output=output
    )
    # completeness, within 1% of the largest change explained (ReLU kinks limit the
    # quadrature to about that with 32 points)
    np.testing.assert_allclose(total, gap, atol=0.01 * np.abs(gap).max() + 1e-6)

    if E.conv_layers(model):
        for method in ("gradcam", "gradcam++"):
            cam = E.gradcam(model, feed, class_index, output=output, method=method)
            cam = cam if isinstance(cam, dict) else {floats[0][0]: cam}
            for n, c in cam.items():
                a = dict(floats)[n]
                assert c.shape == a.shape[:3] and np.all((c >= 0) & (c <= 1))
