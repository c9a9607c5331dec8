"""Explanations on every backend (the documents' trend 3.3: interpretability).

Gradient methods (saliency, SmoothGrad, integrated gradients, Grad-CAM, Grad-CAM++)
use the backend's own autodiff (`tf.GradientTape`, `jax.grad`, `torch.autograd`)
behind one small function, and explain the logits: the final softmax or sigmoid is
replaced by the identity for the explanation (as tf-keras-vis's `ReplaceToLinear`
does) without touching the model. They work on functional, Sequential and nested
models, on dict and list outputs (`output=`), on several inputs (one map per input,
keyed by input name) and on images `(H, W, C)`, sequences `(time, features)` and
vectors. `attention_scores` reads an `AttentionLayer`'s weights. `explain` picks a
method for a model and writes a readable PNG; the `save_*` functions draw maps
computed elsewhere. `synthetic` holds two tasks with a known right explanation.

Modules: `methods` (saliency, SmoothGrad, integrated gradients), `attribution` (input
x gradient, GradientSHAP, DeepLIFT, occlusion), `cam` (Grad-CAM, Grad-CAM++, LayerCAM,
Score-CAM), `attention`, `metrics` (deletion, insertion, ROAD, infidelity,
max-sensitivity, randomisation, pointing game), `compare` (ranks the methods by the
metrics), `figures`, `api` (`explain`), `synthetic`; the
backend-specific gradient is in `_gradients` and the model replay in `_model`.
"""

from keras_bigmodel.explain import metrics, synthetic
from keras_bigmodel.explain.api import METHODS, explain, pick_method
from keras_bigmodel.explain.attention import attention_layers, attention_scores
from keras_bigmodel.explain.attribution import (
    deeplift,
    gradient_shap,
    input_x_gradient,
    occlusion,
)
from keras_bigmodel.explain.cam import (
    CAM_METHODS,
    conv_layers,
    gradcam,
    gradcam_plus_plus,
    layercam,
    scorecam,
)
from keras_bigmodel.explain.compare import (
    ATTRIBUTION_METHODS,
    METRICS,
    applicable_methods,
    attributions,
    compare,
    save_metric_curves,
)
from keras_bigmodel.explain.figures import (
    METHOD_LABELS,
    save_attention_plot,
    save_feature_bars,
    save_heatmap,
    save_sequence_map,
)
from keras_bigmodel.explain.methods import (
    attribution_map,
    class_scores,
    integrated_gradients,
    saliency,
    smoothgrad,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "CAM_METHODS",
    "METHODS",
    "METHOD_LABELS",
    "METRICS",
    "applicable_methods",
    "attention_layers",
    "attention_scores",
    "attribution_map",
    "attributions",
    "class_scores",
    "compare",
    "conv_layers",
    "deeplift",
    "explain",
    "gradcam",
    "gradcam_plus_plus",
    "gradient_shap",
    "input_x_gradient",
    "integrated_gradients",
    "layercam",
    "metrics",
    "occlusion",
    "pick_method",
    "saliency",
    "save_attention_plot",
    "save_feature_bars",
    "save_heatmap",
    "save_metric_curves",
    "save_sequence_map",
    "scorecam",
    "smoothgrad",
    "synthetic",
]
