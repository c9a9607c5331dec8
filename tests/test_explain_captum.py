"""captum is the reference on PyTorch, where a Keras model is a `torch.nn.Module`:
input x gradient, occlusion, GradientSHAP, LayerCAM (from captum's layer activation
and layer gradient), infidelity and max-sensitivity equal captum's on the same model,
inputs and noise (within 1e-5); DeepLIFT equals captum's `DeepLift` on the same network
written in PyTorch (captum's rules hook `torch.nn` activation modules, which a Keras
layer's activation is not). PyTorch pass only (`torch_only`: deselected, and counted in
the summary line, on the other backends)."""

import keras
import numpy as np
import pytest
from explain_helpers import ZEROS, numpy_init

import keras_bigmodel as kbm

E = kbm.explain
RNG = np.random.default_rng(0)
pytestmark = [
    pytest.mark.torch_only,
    pytest.mark.filterwarnings("ignore:Input Tensor 0 did not already require gradients"),
    pytest.mark.filterwarnings("ignore:Setting forward, backward hooks and attributes"),
]
TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(scope="module")
def model():
    """Conv2D(relu, same) -> Flatten -> Dense(3): linear logits (what captum's targets
    index) over a nonlinear network."""
    image = keras.Input((6, 6, 2), name="image")
    conv = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="conv", **ZEROS)
    out = keras.layers.Dense(3, name="out", **ZEROS)(keras.layers.Flatten()(conv(image)))
    return numpy_init(keras.Model(image, out))


def _tensor(x):
    import torch

    return torch.tensor(x)


def test_input_x_gradient_and_occlusion_equal_captum(model):
    from captum.attr import InputXGradient, Occlusion

    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    classes = [0, 2]
    theirs = InputXGradient(model).attribute(_tensor(x).requires_grad_(), target=classes)
    np.testing.assert_allclose(E.input_x_gradient(model, x, classes), theirs.detach(), **TOL)
    # overlapping windows cut at the edges: (6 - 4) / 3 -> 2 positions per axis
    theirs = Occlusion(model).attribute(
        _tensor(x), sliding_window_shapes=(4, 4, 2), strides=(3, 3, 1), target=classes
    )
    ours = E.occlusion(model, x, classes, window=(4, 4, 2), stride=(3, 3, 1))
    np.testing.assert_allclose(ours, theirs, **TOL)
    theirs = Occlusion(model).attribute(
        _tensor(x), sliding_window_shapes=(1, 2, 1), baselines=0.5, target=classes
    )  # captum's default stride: 1 along every axis
    ours = E.occlusion(model, x, classes, window=(1, 2, 1), stride=1, baseline=0.5)
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_gradient_shap_equals_captum_where_it_is_deterministic():
    """With one baseline, no noise and logits linear in the input, every draw gives the
    same value, so the two estimators must agree exactly."""
    from captum.attr import GradientShap

    image = keras.Input((6, 6, 2))
    out = keras.layers.Dense(3, **ZEROS)(keras.layers.Flatten()(image))
    linear = numpy_init(keras.Model(image, out))
    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    baseline = RNG.uniform(size=(1, 6, 6, 2)).astype("float32")
    theirs = GradientShap(linear).attribute(
        _tensor(x).requires_grad_(), baselines=_tensor(baseline), n_samples=4, target=[1, 2]
    )
    ours = E.gradient_shap(linear, x, [1, 2], baselines=baseline, samples=4)
    np.testing.assert_allclose(ours, theirs.detach(), **TOL)


def test_layercam_equals_its_formula_on_captums_layer_activation_and_gradient(model):
    from captum.attr import LayerActivation, LayerGradientXActivation

    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    classes = [0, 1]
    conv = model.get_layer("conv")
    activation = LayerActivation(model, conv).attribute(_tensor(x)).detach().numpy()
    gradient = LayerGradientXActivation(model, conv, multiply_by_inputs=False).attribute(
        _tensor(x), target=classes
    )
    cam = np.maximum((activation * np.maximum(gradient.detach().numpy(), 0)).sum(-1), 0)
    expected = kbm.explain._model.normalize(cam)  # same resolution: no resizing
    np.testing.assert_allclose(E.layercam(model, x, classes), expected, **TOL)


def test_infidelity_and_max_sensitivity_equal_captum_given_the_same_noise(model):
    import torch
    from captum.attr import InputXGradient
    from captum.metrics import infidelity, sensitivity_max

    x = RNG.uniform(size=(2, 6, 6, 2)).astype("float32")
    classes = [0, 2]
    attributions = E.input_x_gradient(model, x, classes)
    noise = RNG.normal(0.0, 0.1, (2, 4, 6, 6, 2)).astype("float32")
    flat = torch.tensor(noise.reshape((-1, 6, 6, 2)))  # captum: each example's draws together

    def perturb(inputs):
        return flat, inputs - flat

    for normalize in (False, True):
        theirs = infidelity(
            model,
            perturb,
            _tensor(x),
            _tensor(attributions),
            target=classes,
            n_perturb_samples=4,
            normalize=normalize,
        )
        ours = E.metrics.infidelity(
            model, x, classes, attributions, noise=noise, normalize=normalize
        )
        np.testing.assert_allclose(ours, theirs, **TOL)

    uniform = RNG.uniform(-0.02, 0.02, (2, 4, 6, 6, 2)).astype("float32")
    moved = torch.tensor(uniform.reshape((-1, 6, 6, 2)))
    theirs = sensitivity_max(
        InputXGradient(model).attribute,
        _tensor(x),
        perturb_func=lambda inputs: inputs + moved,
        n_perturb_samples=4,
        target=classes,
    )
    ours = E.metrics.max_sensitivity(model, x, classes, "input_x_gradient", noise=uniform)
    np.testing.assert_allclose(ours, theirs, **TOL)


def test_deeplift_equals_captum_on_the_same_network_in_pytorch():
    import torch
    from captum.attr import DeepLift

    rows = keras.Input((5,))
    dense = [keras.layers.Dense(n, **ZEROS) for n in (6, 4, 4, 3)]
    h = keras.layers.Activation("relu")(dense[0](rows))
    h = keras.layers.Dense(4, activation="tanh", **ZEROS)(h)
    h = keras.layers.Activation("sigmoid")(dense[2](h))
    model = numpy_init(keras.Model(rows, keras.layers.Dense(3, activation="softmax")(h)))
    kernels = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    modules = [torch.nn.Linear(*layer.kernel.shape) for layer in kernels]
    with torch.no_grad():
        for module, layer in zip(modules, kernels):
            module.weight.copy_(torch.tensor(keras.ops.convert_to_numpy(layer.kernel).T))
            module.bias.copy_(torch.tensor(keras.ops.convert_to_numpy(layer.bias)))
    a, b, c, d = modules
    network = torch.nn.Sequential(a, torch.nn.ReLU(), b, torch.nn.Tanh(), c, torch.nn.Sigmoid(), d)
    x = RNG.normal(size=(3, 5)).astype("float32")
    baseline = (0.3 * RNG.normal(size=(1, 5))).astype("float32")
    theirs = DeepLift(network).attribute(_tensor(x), baselines=_tensor(baseline), target=[0, 1, 2])
    ours = E.deeplift(model, x, [0, 1, 2], baseline=baseline[0])
    np.testing.assert_allclose(ours, theirs.detach(), **TOL)
