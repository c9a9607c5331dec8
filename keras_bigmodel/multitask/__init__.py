"""Training several tasks at once: learned and dynamic task weights, partial labels.

Keras 3 losses cannot own variables, and `compile(loss_weights=...)` takes numbers
that are fixed when the training step is traced. Task weights that are learned or
changed during training therefore live in a **weighting layer** that the model
tracks (it sits on the model's outputs and passes them through unchanged), and the
per-task losses, `TaskLoss`, read that layer's variables:

```python
weighting = UncertaintyWeighting(["depth", "segmentation"])
outputs = weighting(heads)                       # identity; the model now owns it
model = keras.Model(inputs, outputs)
model.compile("adam", loss=weighting.losses({"depth": "mse",
                                              "segmentation": "categorical_crossentropy"}))
```

Because the variables are the model's, they train (or are assigned by a callback)
on every backend (on JAX they travel in the stateless training state like any other
weight), they are saved in the `.keras` file, and the compiled losses find the same
layer again when the file is reloaded (Keras's shared-object mechanism: the layer is
serialized once in the model and referenced from the compile config).

The formulas, for task losses `L_k`:

- **Uncertainty weighting** (Kendall, Gal and Cipolla, CVPR 2018), one learned
  `s_k = log(sigma_k^2)` per task:
  `L = sum_k 0.5 * exp(-s_k) * L_k + 0.5 * s_k` (their eq. 7 with `s = log sigma^2`,
  the form LibMTL uses); a task whose loss stays large gets a larger `sigma_k`, so
  a smaller weight, and the `0.5 s_k` term stops `sigma` from growing without end.
- **Dynamic weights**: `L = sum_k lambda_k * L_k` with `lambda_k` non-trainable
  variables that anything may assign between steps without recompiling, e.g. the
  `DynamicWeightAveraging` callback (Liu, Johns and Davison, CVPR 2019):
  `lambda_k(t) = K exp(r_k(t-1) / T) / sum_i exp(r_i(t-1) / T)`, with
  `r_k(t-1) = L_k(t-1) / L_k(t-2)` the ratio of the task's last two epoch losses,
  `T` a temperature (2 in the paper), and `lambda_k = 1` for the first two epochs.
- **Partial labels**: a sample whose label for task `k` is missing (any entry NaN,
  or equal to `mask_value`) is left out of that task's loss and metrics: with
  labelled-sample indicator `m_i` and sample weights `w_i`,
  `L_k = sum_i m_i w_i l_k(y_i, p_i) / sum_i m_i` (Keras's own rule for masked
  outputs), which equals the loss over the labelled samples alone; `MaskedMetric`
  passes `m_i w_i` to the metric as its sample weight.

The expert layers' gate statistics are logged by `GateWeightLogger`.

Gradient methods (PCGrad, CAGrad, MGDA, Nash-MTL, UPGrad, FAMO, ...) act on the
tasks' gradients instead of their losses: `aggregate(gradients, method=...)` is the
pure function on a `(tasks, parameters)` matrix, and `MultiTaskModel` wraps a model
so that `compile`/`fit` train it with a `GradientAggregator` on every backend.

The package's modules: `weighting` (task weighting layers and the DWA callback),
`losses` (partial labels: `TaskLoss`, `MaskedMetric`), `callbacks`
(`GateWeightLogger`), `aggregation` (the gradient methods as functions), `training`
(`GradientAggregator`, `MultiTaskModel`).
"""

from keras_bigmodel.multitask.aggregation import (
    METHODS,
    aggregate,
    aggregation_weights,
    famo_logits_gradient,
    gradnorm_logits_gradient,
)
from keras_bigmodel.multitask.callbacks import GateWeightLogger
from keras_bigmodel.multitask.losses import (
    REDUCTIONS,
    MaskedMetric,
    TaskLoss,
    label_present,
    masked_crossentropy,
)
from keras_bigmodel.multitask.training import GradientAggregator, MultiTaskModel
from keras_bigmodel.multitask.weighting import (
    DynamicWeightAveraging,
    DynamicWeighting,
    TaskWeighting,
    UncertaintyWeighting,
)

__all__ = [
    "METHODS",
    "REDUCTIONS",
    "DynamicWeightAveraging",
    "DynamicWeighting",
    "GateWeightLogger",
    "GradientAggregator",
    "MaskedMetric",
    "MultiTaskModel",
    "TaskLoss",
    "TaskWeighting",
    "UncertaintyWeighting",
    "aggregate",
    "aggregation_weights",
    "famo_logits_gradient",
    "gradnorm_logits_gradient",
    "label_present",
    "masked_crossentropy",
]
