"""Every zoo preset is explained on every backend: saliency, integrated gradients (with
completeness) and, where the preset has a convolution, Grad-CAM. The cases come from the
registry (`zoo.list_presets()`), built small."""

import keras
import numpy as np
import pytest
from explain_helpers import build_tiny, explained_output, feed_for, inputs_for

import keras_bigmodel as kbm
import zoo

E = kbm.explain


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
