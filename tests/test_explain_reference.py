"""tf-keras-vis is the reference on TensorFlow: the package's saliency, Grad-CAM,
Grad-CAM++ and Score-CAM equal tf-keras-vis's on the same model and inputs (within 1e-5;
both normalize the same way), on one- and two-input models, a multi-output head, a
sequence model and a Sequential model."""

import warnings

import keras
import numpy as np
import pytest
from explain_helpers import build_tiny, inputs_for

import keras_bigmodel as kbm

E = kbm.explain
pytestmark = pytest.mark.tensorflow_only  # tf-keras-vis is built on TensorFlow


def _linearize(model):
    """tf-keras-vis's ReplaceToLinear, reaching the Dense inside this package's TaskHead
    (and the heads of a MultiTaskHead)."""
    last = model.layers[-1]
    heads = list(last.heads.values()) if hasattr(last, "heads") else [last]
    for head in heads:
        getattr(head, "output_dense", head).activation = keras.activations.linear


def _vis(cls, model, score, seed, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam

        explainer = {
            "saliency": Saliency,
            "gradcam": Gradcam,
            "gradcam++": GradcamPlusPlus,
            "scorecam": Scorecam,
        }[cls](model, model_modifier=_linearize, clone=True)
        return explainer(score, seed, **kwargs)


def _score(classes):
    from tf_keras_vis.utils.scores import CategoricalScore

    return CategoricalScore(list(classes))


@pytest.mark.parametrize("name", ["cnn", "crossmodal"])
def test_maps_equal_tf_keras_vis(name):
    model = build_tiny(name)
    arrays = inputs_for(model, batch=3)
    feed = dict(zip(sorted(model.input), arrays)) if isinstance(model.input, dict) else arrays[0]
    seed = arrays if len(arrays) > 1 else arrays[0]
    classes = [1, 3, 9]
    ours = E.saliency(model, feed, classes)
    ours = ours if isinstance(ours, dict) else {"image": ours}
    # tf-keras-vis reduces the last axis unless keepdims: the channels of an image, but
    # the features of a sequence, whose (time, features) map this package keeps
    for keepdims, rank in ((False, 4), (True, 3)):
        theirs = _vis("saliency", model, _score(classes), seed, keepdims=keepdims)
        theirs = theirs if isinstance(theirs, list) else [theirs]
        for array, reference in zip(arrays, theirs):
            if array.ndim == rank:
                key = "image" if rank == 4 else "sequence"
                np.testing.assert_allclose(ours[key], reference, atol=1e-5, err_msg=key)
    layer = E.conv_layers(model)[-1].name
    several = len(arrays) > 1
    # tf-keras-vis resizes a CAM to every input and fails on the sequence input of a
    # two-input model: there, its CAM at the layer's resolution is resized and
    # normalized the way it does it for one input.
    for method in ("gradcam", "gradcam++") + (() if several else ("scorecam",)):
        kwargs = {"max_N": -1} if method == "scorecam" else {}
        if several:
            kwargs.update(expand_cam=False, normalize_cam=False)
        theirs = _vis(
            method,
            model,
            _score(classes),
            seed,
            penultimate_layer=layer,
            seek_penultimate_conv_layer=False,
            **kwargs,
        )
        if several:
            theirs = _expand_like_tf_keras_vis(theirs, arrays[0].shape)
        ours = E.gradcam(model, feed, classes, method=method)
        ours = ours["image"] if isinstance(ours, dict) else ours
        np.testing.assert_allclose(ours, theirs, atol=1e-5, err_msg=method)


def _expand_like_tf_keras_vis(cam, shape):
    from scipy.ndimage import zoom
    from tf_keras_vis.utils import normalize, zoom_factor

    return normalize(zoom(np.asarray(cam), zoom_factor(cam.shape, shape), order=1))


def test_head_sequence_and_sequential_models_equal_tf_keras_vis():
    multitask = build_tiny("multitask")
    (x,) = inputs_for(multitask, batch=3)
    head = keras.Model(multitask.input, multitask.output["task2"])  # tf-keras-vis: one output
    theirs = _vis("saliency", head, _score([0, 1, 4]), x, keepdims=True)
    ours = E.saliency(multitask, x, [0, 1, 4], output="task2")
    np.testing.assert_allclose(ours, theirs, atol=1e-5)

    rnn = build_tiny("rnn")
    (s,) = inputs_for(rnn, batch=3)
    theirs = _vis("saliency", rnn, _score([2, 2, 7]), s, keepdims=True)
    np.testing.assert_allclose(E.saliency(rnn, s, [2, 2, 7]), theirs, atol=1e-5)

    sequential = keras.Sequential([keras.Input((8, 8, 1)), *build_tiny("cnn").layers[1:]])
    (image,) = inputs_for(sequential, batch=3)
    functional = keras.Model(sequential.inputs, sequential.outputs)  # tf-keras-vis needs one
    theirs = _vis(
        "gradcam",
        functional,
        _score([0, 5, 9]),
        image,
        penultimate_layer="conv",
        seek_penultimate_conv_layer=False,
    )
    np.testing.assert_allclose(E.gradcam(sequential, image, [0, 5, 9]), theirs, atol=1e-5)
