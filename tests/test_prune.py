"""kbm.compress.prune / PruningCallback / strip_pruning / sparsity_report: masks that
follow the schedule, exact zeros after stripping, 2:4 and channel structure, and a
reload in the middle of pruning that resumes it, on every backend."""

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.compress.pruning import PrunedLayer, _mask


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 6, 6, 1)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, size=n), 3)
    return x, y


def _model():
    keras.utils.set_random_seed(0)
    return zoo.build("cnn", input_shape=(6, 6, 1), filters=4, dense_units=16, num_classes=3)


def _fit(model, x, y, epochs=1):
    # Graph mode / jit, without XLA (whose compilation would dominate these tiny fits).
    model.compile(optimizer="adam", loss="categorical_crossentropy", jit_compile=False)
    model.fit(
        x, y, epochs=epochs, batch_size=16, verbose=0, callbacks=[kbm.compress.PruningCallback()]
    )


def test_masks_follow_the_polynomial_schedule_and_stripping_leaves_exact_zeros(tmp_path):
    x, y = _data()
    model = _model()
    pruned = kbm.compress.prune(model, sparsity=0.75, end_step=4, frequency=2)
    assert [type(layer).__name__ for layer in pruned.layers[1:]] == [
        "PrunedLayer",
        "MaxPooling2D",
        "Flatten",
        "PrunedLayer",
        "PrunedLayer",
    ]
    assert model.get_layer("dense").__class__ is keras.layers.Dense  # the input is untouched
    layer = pruned.get_layer("dense")
    # The schedule: 0.75 * (1 - (1 - t / 4)^3), updated at steps 0, 2 and 4.
    assert layer.target_sparsity(0, 4) == 0.0
    assert layer.target_sparsity(2, 4) == pytest.approx(0.75 * (1 - 0.5**3))
    assert layer.target_sparsity(9, 4) == pytest.approx(0.75)
    _fit(pruned, x, y, epochs=2)  # 8 steps
    report = kbm.compress.sparsity_report(pruned)
    for name in ("conv", "dense", "predictions"):
        assert report["layers"][name]["sparsity"] == pytest.approx(0.75, abs=0.01), name
    kernel = keras.ops.convert_to_numpy(layer.layer.kernel)
    mask = keras.ops.convert_to_numpy(layer.masks[0])
    plain = kbm.compress.strip_pruning(pruned)
    assert not any(isinstance(la, PrunedLayer) for la in plain.layers)
    stripped = keras.ops.convert_to_numpy(plain.get_layer("dense").kernel)
    np.testing.assert_array_equal(stripped[mask == 0], 0.0)
    np.testing.assert_array_equal(stripped[mask == 1], kernel[mask == 1])
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6)
    assert kbm.compress.sparsity_report(plain)["layers"]["dense"]["zeros"] == int((mask == 0).sum())
    # The zeros compress: gzip saves more than 40% of the weights' bytes (the file of
    # this tiny model is mostly its config).
    dense = kbm.compress.size_report(model)
    sparse = kbm.compress.size_report(plain)
    saved = dense["gzip_bytes"] - sparse["gzip_bytes"]
    assert saved > 0.4 * dense["float32_bytes"], (sparse, dense)
    with pytest.raises(ValueError, match="has no PrunedLayer; nothing to strip"):
        kbm.compress.strip_pruning(plain)


def test_pruned_weights_get_no_say_in_the_outputs():
    x, _ = _data(4)
    pruned = kbm.compress.prune(_model(), sparsity=0.5)
    layer = pruned.get_layer("predictions")
    mask = np.ones(layer.masks[0].shape, "float32")
    mask[::2] = 0.0
    layer.masks[0].assign(mask)
    before = pruned.predict(x, verbose=0)
    kernel = keras.ops.convert_to_numpy(layer.layer.kernel)
    layer.layer.kernel.assign(np.where(mask == 0, 1e3, kernel))  # only masked weights change
    np.testing.assert_allclose(pruned.predict(x, verbose=0), before, atol=1e-6)


def test_reload_in_the_middle_of_pruning_keeps_masks_and_resumes_the_schedule(tmp_path):
    x, y = _data()
    # 2:4 from step 2 on; end_step unset: 2/3 of the first fit's 4 steps.
    pruned = kbm.compress.prune(_model(), structure="2:4", begin_step=2, frequency=1)
    _fit(pruned, x, y)
    path = kbm.save_model(pruned, tmp_path / "pruning.keras")
    restored = kbm.load_model(path)  # the hardened loader: PrunedLayer is registered
    layer, again = pruned.get_layer("dense"), restored.get_layer("dense")
    assert isinstance(again, PrunedLayer) and again.structure == "2:4"
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(again.masks[0]), keras.ops.convert_to_numpy(layer.masks[0])
    )
    assert int(keras.ops.convert_to_numpy(again.pruning_step)) == 4
    assert int(keras.ops.convert_to_numpy(again.resolved_end_step)) == 3
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), pruned.predict(x, verbose=0), atol=1e-6
    )
    _fit(restored, x, y)  # resumes at step 4
    assert int(keras.ops.convert_to_numpy(again.pruning_step)) == 8
    plain = kbm.compress.strip_pruning(restored)
    for name in ("dense", "predictions"):
        kernel = keras.ops.convert_to_numpy(plain.get_layer(name).kernel)
        rows = kernel.shape[0] - kernel.shape[0] % 4
        groups = kernel[:rows].reshape(-1, 4, kernel.shape[1])  # 4 consecutive inputs
        np.testing.assert_array_equal((groups != 0).sum(axis=1), 2)  # every group, output


def test_mask_structures_against_numpy():
    rng = np.random.default_rng(0)
    weights = np.abs(rng.normal(size=(9, 6))).astype("float32")
    mask = _mask(weights, 0.5, "channel")
    norms = np.sqrt((weights**2).sum(axis=0))
    np.testing.assert_array_equal(mask.min(axis=0) == 0, norms < np.sort(norms)[3])
    two_four = _mask(weights, 0.5, "2:4")
    assert two_four[8].tolist() == [1.0] * 6  # a last group of 1 input keeps it
    flat = _mask(weights, 0.3, None)
    assert int((flat == 0).sum()) == round(0.3 * 54)
    assert weights[flat == 0].max() <= weights[flat == 1].min()


def test_channel_pruning_keeps_the_output_layer():
    pruned = kbm.compress.prune(_model(), sparsity=0.5, structure="channel")
    assert not isinstance(pruned.get_layer("predictions"), PrunedLayer)
    assert isinstance(pruned.get_layer("dense"), PrunedLayer)


@pytest.mark.backend_independent
def test_prune_errors():
    model = _model()
    with pytest.raises(ValueError, match=r"`sparsity` must be a number in \[0, 1\)"):
        kbm.compress.prune(model, sparsity=1.0)
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        kbm.compress.prune(model, schedule="cubic")
    with pytest.raises(ValueError, match="`structure` must be one of"):
        kbm.compress.prune(model, structure="1:4")
    with pytest.raises(ValueError, match="`end_step` must be None or an integer above"):
        kbm.compress.prune(model, begin_step=5, end_step=5)
    with pytest.raises(ValueError, match=r"`layers` names \['nope'\]"):
        kbm.compress.prune(model, layers=["nope"])
    with pytest.raises(ValueError, match="already pruned"):
        kbm.compress.prune(kbm.compress.prune(model))

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    sub = Sub()
    sub(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="needs a functional or Sequential model"):
        kbm.compress.prune(sub)
    callback = kbm.compress.PruningCallback()
    callback.set_model(model)
    with pytest.raises(ValueError, match="has no PrunedLayer"):
        callback.on_train_begin()
