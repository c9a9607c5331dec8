"""Quantus 0.6.0 is the reference where its definition is the metric's: on the same model,
inputs, attributions and settings, `deletion` equals `PixelFlipping`, a patch-wise
deletion equals `RegionPerturbation`, `road`'s imputed inputs and scores equal `ROAD`'s
(noisy linear imputation without noise), `randomisation` equals `MPRT` given the same
new weights, and `pointing_game` equals `PointingGame`, all within 1e-5 (largest
differences measured: curves 1.2e-7, AUC 2.4e-7, ROAD 6e-8, MPRT 1e-8; no pointing-game
hit differs). PyTorch pass only (`torch_only`: deselected, and counted in the summary
line, on the other backends).

How Quantus sees the model: a Keras model on the torch backend is a `torch.nn.Module`,
but it is also a `tf.keras.Model` (TensorFlow >= 2.16 has Keras 3 as `tf.keras`), and
Quantus's `get_wrapped_model` checks that first, so the model goes to Quantus's Keras
wrapper (`TensorFlowModel`: `model.predict`, `get_weights`, `clone_model`), which runs
it on torch here. Its PyTorch wrapper would refuse the channels-last layout ("Channel
first order expected for a torch model") and could not randomise a Keras layer (it
calls `reset_parameters`, which Keras layers lack); `test_quantus_wraps_...` pins this.
Every Quantus call is told `channel_first=False`; Quantus moves the channel axis first
internally, so its `explain_func` receives channels-first inputs (`_explain` turns them
back) and its segmentation masks must be given channels-first `(N, 1, H, W)`.

Conventions that differ, each tested below by converting one into the other:
- Quantus normalises attributions (`normalise=True`: divided by their largest absolute
  value) and MPRT takes `abs=True` by default; here `normalise=False` everywhere, and
  `abs` as our metric does (none for the curves, `absolute=True` for randomisation).
- Curves: `PixelFlipping` holds the score after each step only; ours starts with the
  unperturbed input (fraction 0). Its AUC is `np.trapz(dx=1)` over those points; ours
  is the trapezoid over the removed fraction: `Quantus = steps * ours - (s_0 + s_1) / 2`.
  `RegionPerturbation` holds the drop `s_0 - s_k`.
- Units: Quantus ranks the values of the channels-first input (one per channel); a unit
  here is a pixel, all channels together. Single-channel images make the two the same.
- Steps: ROAD removes `int(H * W * p / 100)` pixels (floor) at percentage `p`; ours
  `round(fraction * units)`; the fraction `floor(...) / units` gives Quantus's count.
- Ties: Quantus orders with `np.argsort` (quicksort, not stable); ours by position. The
  maps here have no ties. The pointing game with tied maxima: Quantus counts a hit if
  any tied maximum lies in the region (a constant map always hits); ours looks at the
  first maximum in row-major order.
- Scores: Quantus's `softmax=True` (its default for the curves) scores probabilities,
  like our `logits=False`; its `softmax=False` removes the final softmax, like ours
  `logits=True`. ROAD reports accuracy (argmax equals the label); for two classes that
  is "the label's probability exceeds 1/2", read off our scores.
- MPRT: Quantus permutes each weight array (`np.random.permutation` after
  `np.random.seed(seed + 1)`, for each layer) of a `clone_model` copy; ours redraws
  from a normal with each variable's mean and standard deviation (`redraw=` takes
  Quantus's permutation). Keras 3's `clone_model` re-initialises every layer, so Quantus
  randomises the model the initialisers would give, not the model given, unless they
  coincide (seeded initialisers, as in `model` below); a model whose weights were set
  after building (zero initialisers) is all zeros to Quantus: every similarity is NaN.
"""

import warnings

import keras
import numpy as np
import pytest
from explain_helpers import ZEROS, numpy_init

import keras_bigmodel as kbm

M = kbm.explain.metrics
RNG = np.random.default_rng(0)
pytestmark = [pytest.mark.torch_only]
TOL = {"atol": 1e-5, "rtol": 1e-5}
SIZE = 8  # 8x8 single-channel images: 64 units
OFF = {"normalise": False, "disable_warnings": True}


@pytest.fixture(scope="module")
def quantus():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import quantus
    return quantus


def _seeded(seed):
    """Seeded initialisers: `clone_model` (what Quantus randomises) reproduces the
    weights, so Quantus's MPRT starts from the model given."""
    return {
        "kernel_initializer": keras.initializers.GlorotUniform(seed=seed),
        "bias_initializer": keras.initializers.RandomUniform(-0.1, 0.1, seed=seed + 100),
    }


def _network(layer_options):
    image = keras.Input((SIZE, SIZE, 1), name="image")
    h = keras.layers.Conv2D(
        4, 3, padding="same", activation="relu", name="conv", **layer_options(1)
    )
    h = keras.layers.Flatten()(h(image))
    h = keras.layers.Dense(6, activation="tanh", name="hidden", **layer_options(2))(h)
    out = keras.layers.Dense(2, activation="softmax", name="out", **layer_options(3))(h)
    return keras.Model(image, out)


@pytest.fixture(scope="module")
def model():
    """Conv2D(relu) -> Dense(tanh) -> Dense(2, softmax) on 8x8x1 images."""
    return _network(_seeded)


@pytest.fixture(scope="module")
def data(model):
    """Images, each one's predicted class, and attributions without ties."""
    x = RNG.uniform(size=(4, SIZE, SIZE, 1)).astype("float32")
    y = model.predict(x, verbose=0).argmax(-1)
    maps = RNG.uniform(size=(4, SIZE, SIZE)).astype("float32")  # no ties, nor among sums
    return x, y, maps


def _explain(model, inputs, targets, **_):
    """Quantus's explain_func: our |gradient|, given channels-first or -last inputs."""
    inputs = np.asarray(inputs)
    if inputs.shape[1] == 1 and inputs.shape[-1] != 1:  # Quantus's (N, 1, H, W)
        inputs = np.moveaxis(inputs, 1, -1)
    maps = kbm.explain.attributions(model, inputs, np.asarray(targets), "saliency")
    return maps[..., 0]


def test_quantus_wraps_our_model_with_its_keras_wrapper(quantus, model):
    import torch
    from quantus.helpers.model.pytorch_model import PyTorchModel
    from quantus.helpers.utils import get_wrapped_model

    assert isinstance(model, torch.nn.Module) and isinstance(model, keras.Model)
    wrapped = get_wrapped_model(model, channel_first=False, softmax=True)
    assert type(wrapped).__name__ == "TensorFlowModel"  # Keras 3 is tf.keras: checked first
    x = np.zeros((1, SIZE, SIZE, 1), "float32")
    np.testing.assert_allclose(wrapped.predict(x), model.predict(x, verbose=0), **TOL)
    with pytest.raises(ValueError, match="Channel first order expected for a torch model"):
        PyTorchModel(model, channel_first=False).shape_input(x, x.shape, channel_first=False)


def test_deletion_and_insertion_equal_pixel_flipping(quantus, model, data, monkeypatch):
    x, y, maps = data
    steps = 8  # 8 pixels a step: Quantus's features_in_step
    flipping = quantus.PixelFlipping(features_in_step=8, perturb_baseline=0.0, **OFF)
    theirs = np.asarray(flipping(model, x, y, a_batch=maps, channel_first=False))
    ours = M.deletion(model, x, y, maps, steps=steps)
    np.testing.assert_allclose(ours["scores"][:, 1:], theirs, **TOL)  # theirs: no s_0
    # Quantus's AUC calls np.trapz, which NumPy 2.4 removed (np.trapezoid is the same rule)
    monkeypatch.setattr(np, "trapz", np.trapezoid, raising=False)
    auc = quantus.PixelFlipping(
        features_in_step=8, perturb_baseline=0.0, return_auc_per_sample=True, **OFF
    )(model, x, y, a_batch=maps, channel_first=False)
    s = ours["scores"]
    np.testing.assert_allclose(steps * ours["auc"] - (s[:, 0] + s[:, 1]) / 2, auc, **TOL)

    # logits: Quantus's softmax=False drops the final softmax, as logits=True does here
    theirs = flipping(model, x, y, a_batch=maps, channel_first=False, softmax=False)
    ours = M.deletion(model, x, y, maps, steps=steps, logits=True)
    np.testing.assert_allclose(ours["scores"][:, 1:], theirs, **TOL)

    # Quantus has no insertion: it is pixel flipping started from the baseline (black)
    # image, each step putting the original values back.
    original = x.reshape(len(x), -1)  # channels-first flattening = this one for 1 channel

    def restore(arr, indices, **_):
        out = arr.copy()
        rows = np.arange(len(arr))[:, None]
        out[rows, indices] = original[rows, indices]
        return out

    inserting = quantus.PixelFlipping(features_in_step=8, perturb_func=restore, **OFF)
    theirs = inserting(model, np.zeros_like(x), y, a_batch=maps, channel_first=False)
    ours = M.insertion(model, x, y, maps, steps=steps)
    np.testing.assert_allclose(ours["scores"][:, 1:], np.asarray(theirs), **TOL)


def test_deletion_of_patches_equals_region_perturbation(quantus, model, data):
    """RegionPerturbation ranks 2x2 patches by their summed attribution and blacks them
    out one by one: deletion of a map that is constant on each patch (its sum), one
    patch a step, is the same curve; Quantus reports the drop from the start."""
    x, y, maps = data
    patch = 2
    sums = maps.reshape(len(maps), 4, patch, 4, patch).sum(axis=(2, 4))
    blocks = np.repeat(np.repeat(sums, patch, axis=1), patch, axis=2)
    regions = quantus.RegionPerturbation(
        patch_size=patch, regions_evaluation=16, perturb_baseline=0.0, **OFF
    )
    theirs = np.asarray(regions(model, x, y, a_batch=maps, channel_first=False))
    s = M.deletion(model, x, y, blocks, steps=16)["scores"]
    np.testing.assert_allclose(s[:, :1] - s[:, 1:], theirs, **TOL)


def test_road_imputes_and_scores_as_quantus_without_noise(quantus, model, data):
    from quantus.functions.perturb_func import noisy_linear_imputation

    x, y, maps = data
    percentages = [15, 50]  # 9.6 -> Quantus removes 9 pixels (floor), round() would be 10
    fractions = [int(SIZE * SIZE * p / 100) / (SIZE * SIZE) for p in percentages]
    ours = M.road(model, x, y, maps, fractions=fractions, noise=0.0)
    # Quantus's imputation of the same top pixels, on the channels-first image
    order = np.argsort(-maps.reshape(len(maps), -1), axis=1)
    imputed = [
        noisy_linear_imputation(np.moveaxis(x[i], -1, 0), order[i, : round(f * 64)], noise=0.0)
        for i in range(len(x))
        for f in fractions
    ]
    imputed = np.moveaxis(np.stack(imputed), 1, -1).astype("float32")
    probabilities = model.predict(imputed, verbose=0)[np.arange(len(imputed)), np.repeat(y, 2)]
    np.testing.assert_allclose(ours["scores"].reshape(-1), probabilities, **TOL)
    # ROAD itself reports accuracy per percentage; two classes: the label's p > 1/2
    road = quantus.ROAD(percentages=percentages, noise=0.0, **OFF)
    theirs = road(model, x, y, a_batch=maps, channel_first=False)
    np.testing.assert_allclose(list(theirs.values()), (ours["scores"] > 0.5).mean(axis=0))
    assert list(theirs) == percentages


def _quantus_permutation(seed):
    """Quantus's Keras wrapper: each layer's weights permuted along their first axis
    after `np.random.seed(seed + 1)`."""

    def redraw(values, rng):
        np.random.seed(seed + 1)
        return [np.random.permutation(w) for w in values]

    return redraw


def test_randomisation_equals_mprt_given_the_same_new_weights(quantus, model, data):
    x, y, _ = data
    clone = keras.models.clone_model(model)  # what Quantus randomises: here the same weights
    for theirs, ours in zip(clone.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(theirs, ours)
    maps = _explain(model, x, y)
    mprt = quantus.MPRT(layer_order="top_down", seed=42, abs=True, **OFF)
    theirs = mprt(model, x, y, a_batch=maps, channel_first=False, explain_func=_explain)
    ours = M.randomisation(model, x, y, "saliency", redraw=_quantus_permutation(42))
    assert list(theirs) == ["original"] + ours["layers"] == ["original", "out", "hidden", "conv"]
    np.testing.assert_allclose(theirs["original"], 1.0, **TOL)  # the maps given vs its own
    expected = np.array([theirs[name] for name in ours["layers"]])
    np.testing.assert_allclose(ours["similarity"], expected, **TOL)
    assert ours["mean"][-1] < 0.5  # saliency depends on the weights
    with pytest.raises(ValueError, match=r"`redraw` must return one array per weight of layer"):
        M.randomisation(model, x, y, "saliency", redraw=lambda values, rng: values[:1])
    with pytest.raises(TypeError, match=r"`redraw` must be None or a function"):
        M.randomisation(model, x, y, "saliency", redraw=42)


def test_mprt_randomises_a_fresh_clone_not_the_weights_given(quantus, data):
    """The documented difference: weights set after building (zero initialisers, as
    in every explain test model) do not survive Quantus's `clone_model`, so its MPRT
    explains a model of zero kernels, whose gradient is zero, and stops at its check
    that maps are not all zero. Ours randomises the model given."""
    x, y, _ = data
    model = numpy_init(_network(lambda seed: ZEROS))
    assert not np.any(keras.models.clone_model(model).get_layer("conv").get_weights()[0])
    maps = _explain(model, x, y)
    assert np.all(maps.reshape(len(maps), -1).std(axis=1) > 0)  # the model's maps are not
    mprt = quantus.MPRT(layer_order="top_down", seed=42, abs=True, **OFF)
    with pytest.raises(AssertionError, match="attribution vector are all equal to zero"):
        mprt(model, x, y, a_batch=maps, channel_first=False, explain_func=_explain)
    ours = M.randomisation(model, x, y, "saliency", redraw=_quantus_permutation(42))
    assert np.isfinite(ours["similarity"]).all() and ours["mean"][-1] < 0.9


def test_pointing_game_equals_quantus(quantus, model, data):
    x, y, maps = data
    regions = np.zeros(maps.shape, bool)
    regions[:, :4, :4] = True  # the top-left quarter
    regions[1] = maps[1] >= np.median(maps[1])  # any shape of region
    game = quantus.PointingGame(**OFF)

    def theirs(a):  # Quantus takes masks channels-first: (N, 1, H, W)
        return np.asarray(
            game(model, x, y, a_batch=a, s_batch=regions[:, None], channel_first=False)
        )

    ours = M.pointing_game(maps, regions)
    np.testing.assert_array_equal(ours["hits"], theirs(maps).astype(bool))
    assert 0 < ours["hit_rate"] < 1  # some hits, some misses: a real comparison

    # Tied maxima: Quantus hits when any of them lies in the region, ours takes the
    # first in row-major order. (Quantus refuses constant maps outright.)
    tied = maps / 2
    tied[:, 0, 0] = tied[:, 6, 6] = 1.0  # two maxima: (0, 0) outside, (6, 6) inside
    regions[:] = False
    regions[:, 5:, 5:] = True
    assert theirs(tied).tolist() == [1.0] * 4
    assert not M.pointing_game(tied, regions)["hits"].any()
    # conversion: break the ties towards the region, and ours is Quantus's
    np.testing.assert_array_equal(
        M.pointing_game(tied + 1e-3 * regions, regions)["hits"], theirs(tied) == 1
    )
