"""Per-task losses and metrics that leave out missing (partial) labels."""

from __future__ import annotations

from collections.abc import Mapping

import keras
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.multitask.weighting import TaskWeighting, _shared_key

__all__ = ["REDUCTIONS", "MaskedMetric", "TaskLoss", "label_present", "masked_crossentropy"]

REDUCTIONS = ("sum_over_batch_size", "mean", "mean_with_sample_weight", "sum", "none")


# ------------------------------------------------------------------ partial labels
def _check_mask_value(mask_value):
    return v.check_number("mask_value", mask_value, allow_none=True)


def label_present(y_true, mask_value: float | None = None):
    """Which samples have a label: `(batch,)` booleans, False where any entry of the
    sample's label is NaN or equals `mask_value`.

    Args:
        y_true: Labels `(batch, ...)`: class indices, one-hot rows or targets.
        mask_value: Optional number that also marks a missing label (e.g. `-1`
            for integer class labels, which cannot hold NaN).

    Returns:
        A boolean tensor of shape `(batch,)`.

    Example:

    ```python
    import numpy as np
    from keras_bigmodel.multitask import label_present

    label_present(np.array([[0.0, 1.0], [np.nan, np.nan]]))   # [True, False]
    label_present(np.array([3, -1, 0]), mask_value=-1)         # [True, False, True]
    ```
    """
    y_true = ops.convert_to_tensor(y_true)
    missing = ops.isnan(ops.cast(y_true, "float32"))
    if mask_value is not None:
        missing = ops.logical_or(missing, ops.equal(ops.cast(y_true, "float32"), mask_value))
    if len(missing.shape) > 1:
        missing = ops.any(missing, axis=tuple(range(1, len(missing.shape))))
    return ops.logical_not(missing)


def _expand_to(x, rank: int):
    """`x` (batch, ...) with trailing axes added up to `rank`."""
    while len(x.shape) < rank:
        x = ops.expand_dims(x, -1)
    return x


def _clean_labels(y_true, present):
    """Missing labels replaced by zeros, so that no loss or gradient sees a NaN."""
    keep = _expand_to(present, len(y_true.shape))
    return ops.where(keep, y_true, ops.zeros_like(y_true))


# --------------------------------------------------------------------------- losses
def _per_sample(loss):
    """A function `(y_true, y_pred) -> unreduced values` for a Keras loss identifier."""
    if isinstance(loss, keras.losses.Loss):
        return loss.call
    return loss


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class TaskLoss(keras.losses.Loss):
    """One task's loss: partial labels left out, optionally weighted by a layer.

    Computes the wrapped loss per sample, leaves out the samples whose label is
    missing (any entry NaN, or equal to `mask_value`), reduces over the labelled
    ones, records the unweighted value in `weighting` (if any) and returns
    `weighting.combine(task, loss)`. With `reduction="sum_over_batch_size"` (the
    default, as in Keras) the reduced loss is
    `sum_i m_i w_i l_i / sum_i m_i` for labels present `m_i` and sample weights
    `w_i`: the mean over the labelled samples, exactly what the loss would be if
    the unlabelled samples were dropped. A batch with no label for the task gives
    0 (no gradient).

    Args:
        loss: The task's loss: a name (`"mse"`, `"categorical_crossentropy"`,
            ...), a function `(y_true, y_pred) -> per-sample values`, or a
            `keras.losses.Loss` instance (its `call` gives the per-sample values).
        task: The task's name; required with `weighting`.
        weighting: Optional `TaskWeighting` layer of the model (e.g.
            `UncertaintyWeighting`, `DynamicWeighting`).
        mask_value: Optional number marking missing labels besides NaN (e.g.
            `-1` for integer labels).
        reduction: `"sum_over_batch_size"` (default) or `"mean"` (the mean over
            labelled entries), `"mean_with_sample_weight"` (divided by the sum of
            sample weights of labelled samples), `"sum"` or `"none"`.
        name: Optional name; defaults to `"{task}_loss"`, or the loss's name.

    Raises:
        ValueError: For an unknown loss, reduction or task, or `weighting`
            without `task`.

    Example:

    ```python
    import numpy as np
    from keras_bigmodel.multitask import TaskLoss

    loss = TaskLoss("mse")
    y_true = np.array([[1.0], [np.nan], [3.0]])       # the second label is missing
    y_pred = np.array([[0.0], [100.0], [1.0]])
    float(loss(y_true, y_pred))                       # (1 + 4) / 2 = 2.5
    ```
    """

    def __init__(
        self,
        loss,
        task: str | None = None,
        weighting: TaskWeighting | None = None,
        mask_value: float | None = None,
        reduction: str | None = "sum_over_batch_size",
        name: str | None = None,
        dtype=None,
    ):
        if reduction is None:
            reduction = "none"
        reduction = v.check_choice("reduction", reduction, REDUCTIONS)
        if weighting is not None and not isinstance(weighting, TaskWeighting):
            raise TypeError(
                "`weighting` must be a TaskWeighting layer (UncertaintyWeighting, "
                f"DynamicWeighting) or None. Received: weighting={weighting!r}"
            )
        if weighting is not None:
            if task is None:
                raise ValueError("`task` must name the task of the loss when `weighting` is given")
            weighting.task_index(task)
        if task is not None:
            task = v.check_name("task", task)
        try:
            resolved = keras.losses.get(loss)
        except (ValueError, TypeError):
            resolved = None
        if resolved is None or not callable(resolved):
            raise ValueError(
                "`loss` must be a Keras loss name, a loss function or a keras.losses.Loss. "
                f"Received: loss={loss!r}"
            )
        if name is None:
            name = f"{task}_loss" if task else getattr(resolved, "name", None)
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.loss = resolved
        self.task = task
        self.weighting = weighting
        self.mask_value = _check_mask_value(mask_value)

    def __call__(self, y_true, y_pred, sample_weight=None):
        in_mask = _compat.get_keras_mask(y_pred)
        with keras.name_scope(self.name):
            y_pred = keras.tree.map_structure(
                lambda x: ops.convert_to_tensor(x, dtype=self.dtype), y_pred
            )
            y_true = ops.convert_to_tensor(y_true)
            present = label_present(y_true, self.mask_value)
            y_true = ops.cast(_clean_labels(y_true, present), self.dtype)
            values = ops.convert_to_tensor(self.call(y_true, y_pred), dtype=self.dtype)
            loss = self._reduce(values, present, sample_weight, in_mask)
            if self.weighting is not None:
                self._check_bound()
                self.weighting.record(self.task, loss)
                loss = self.weighting.combine(self.task, loss)
            return loss

    def call(self, y_true, y_pred):
        return _per_sample(self.loss)(y_true, y_pred)

    def _check_bound(self):
        if not self.weighting._in_model:
            raise ValueError(
                f"TaskLoss '{self.name}': its weighting layer '{self.weighting.name}' is not "
                "part of a model, so its task weights would never be trained or saved. Call "
                "the weighting layer on the model's outputs and compile with "
                "weighting.losses(...); a compiled model reloaded from a .keras file is bound "
                "already"
            )

    def _reduce(self, values, present, sample_weight, in_mask):
        rank = max(len(values.shape), 1)
        values = _expand_to(values, 1)
        labelled = ops.cast(_expand_to(present, rank), self.dtype)
        labelled = ops.broadcast_to(labelled, ops.shape(values))
        if in_mask is not None:
            mask = ops.cast(in_mask, self.dtype)
            if len(mask.shape) == len(values.shape):
                labelled = labelled * mask
        weights = labelled
        if sample_weight is not None:
            sw = ops.convert_to_tensor(sample_weight, dtype=self.dtype)
            if len(sw.shape) > len(values.shape):
                sw = ops.reshape(sw, ops.shape(values))
            weights = weights * ops.broadcast_to(_expand_to(sw, rank), ops.shape(values))
        weighted = ops.where(weights != 0, values * weights, ops.zeros_like(values))
        if self.reduction == "none":
            return weighted
        total = ops.sum(weighted)
        if self.reduction == "sum":
            return total
        divisor = weights if self.reduction == "mean_with_sample_weight" else labelled
        return ops.divide_no_nan(total, ops.sum(divisor))

    def get_config(self):
        return {
            "loss": keras.saving.serialize_keras_object(self.loss),
            "task": self.task,
            "weighting": (
                None
                if self.weighting is None
                else keras.saving.serialize_keras_object(self.weighting)
            ),
            "mask_value": self.mask_value,
            "reduction": self.reduction,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.saving.deserialize_keras_object(config["loss"])
        weighting = config.get("weighting")
        if weighting is not None:
            # While a .keras file loads, the model's own weighting layer was deserialized
            # first and recorded itself: the reloaded losses read the reloaded weights.
            name = weighting.get("config", {}).get("name") if isinstance(weighting, dict) else None
            found = _compat.shared_object(_shared_key(name)) if name else None
            config["weighting"] = found or keras.saving.deserialize_keras_object(weighting)
        return cls(**config)


# -------------------------------------------------------------------------- metrics
_AMBIGUOUS_METRICS = ("accuracy", "acc", "crossentropy", "ce")


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MaskedMetric(keras.metrics.Metric):
    """A metric that leaves out samples whose label is missing.

    Samples whose label has a NaN entry, or an entry equal to `mask_value`, get
    sample weight 0 (their labels are replaced by zeros first, so no NaN reaches
    the metric); the others keep their sample weight. The result is the wrapped
    metric over the labelled samples only.

    Args:
        metric: A `keras.metrics.Metric` instance, or the name of a Keras metric
            function (e.g. `"categorical_accuracy"`, `"sparse_categorical_accuracy"`,
            `"binary_accuracy"`, `"mae"`). `"accuracy"` is refused: Keras picks its
            meaning from the shapes at compile time, which a wrapper cannot do.
        mask_value: Optional number marking missing labels besides NaN.
        name: Optional name; defaults to the wrapped metric's name.
        dtype: Optional dtype of the metric's variables.

    Raises:
        ValueError: For an unknown or ambiguous metric.

    Example:

    ```python
    import numpy as np
    from keras_bigmodel.multitask import MaskedMetric

    metric = MaskedMetric("sparse_categorical_accuracy", mask_value=-1)
    metric.update_state(np.array([0, -1, 1]), np.array([[0.9, 0.1], [0.9, 0.1], [0.8, 0.2]]))
    float(metric.result())      # 0.5: the second sample has no label
    ```
    """

    def __init__(self, metric, mask_value: float | None = None, name=None, dtype=None):
        inner = self._resolve(metric)
        super().__init__(name=name or inner.name, dtype=dtype)
        self.metric = inner
        self.mask_value = _check_mask_value(mask_value)

    @staticmethod
    def _resolve(metric):
        if isinstance(metric, keras.metrics.Metric):
            return metric
        if isinstance(metric, str) and metric.lower() in _AMBIGUOUS_METRICS:
            raise ValueError(
                f"`metric` must name one metric; {metric!r} depends on the label format. Use "
                "'categorical_accuracy' (one-hot labels), 'sparse_categorical_accuracy' "
                "(class indices) or 'binary_accuracy'. Received: metric=" + repr(metric)
            )
        if isinstance(metric, Mapping):
            return keras.metrics.deserialize(metric)
        try:
            resolved = keras.metrics.get(metric)
        except (ValueError, TypeError):
            resolved = None
        if isinstance(resolved, keras.metrics.Metric):
            return resolved
        if not callable(resolved):
            raise ValueError(
                "`metric` must be a keras.metrics.Metric or the name of a Keras metric. "
                f"Received: metric={metric!r}"
            )
        name = metric if isinstance(metric, str) else getattr(resolved, "__name__", None)
        return keras.metrics.MeanMetricWrapper(resolved, name=name)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.convert_to_tensor(y_true)
        present = label_present(y_true, self.mask_value)
        y_true = _clean_labels(y_true, present)
        weight = ops.cast(present, "float32")
        if sample_weight is not None:
            sample_weight = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
            weight = weight * ops.reshape(sample_weight, ops.shape(weight))
        return self.metric.update_state(y_true, y_pred, sample_weight=weight)

    def result(self):
        return self.metric.result()

    def reset_state(self):
        self.metric.reset_state()

    def get_config(self):
        return {
            "metric": keras.metrics.serialize(self.metric),
            "mask_value": self.mask_value,
            "name": self.name,
            "dtype": self.dtype,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["metric"] = keras.metrics.deserialize(config["metric"])
        return cls(**config)


# -------------------------------------------------- the presets' default loss
@keras.saving.register_keras_serializable(package="keras_bigmodel")
def masked_crossentropy(y_true, y_pred):
    """Cross-entropy per sample that leaves out missing (NaN) labels.

    Takes one-hot rows or class indices (told apart by shape). A sample whose label
    has a NaN gets 0; the others are scaled by `batch / labelled`, so Keras's mean
    over the batch (`"sum_over_batch_size"`) is the mean over the labelled samples,
    as `TaskLoss` computes it. The multi-task presets (`mmoe`, `ple`) compile with it
    (saved as `"keras_bigmodel>masked_crossentropy"`), so a NaN in one task's labels does
    not turn the loss into NaN.

    Args:
        y_true: `(batch, classes)` one-hot labels or `(batch,)` / `(batch, 1)`
            class indices; NaN marks a missing label.
        y_pred: `(batch, classes)` probabilities.

    Returns:
        `(batch,)` per-sample losses.

    Example:

    ```python
    import numpy as np
    from keras_bigmodel.multitask.losses import masked_crossentropy

    y = np.array([[1.0, 0.0], [np.nan, np.nan]])
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    np.asarray(masked_crossentropy(y, p))          # [2 log 2, 0]
    ```
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.convert_to_tensor(y_true)
    present = label_present(y_true)
    y_true = _clean_labels(ops.cast(y_true, y_pred.dtype), present)
    one_hot = len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] == y_pred.shape[-1]
    if one_hot and y_pred.shape[-1] != 1:
        values = keras.losses.categorical_crossentropy(y_true, y_pred)
    else:
        values = keras.losses.sparse_categorical_crossentropy(y_true, y_pred)
    labelled = ops.cast(present, values.dtype)
    batch = ops.cast(ops.shape(values)[0], values.dtype)
    scale = ops.divide_no_nan(batch, ops.sum(labelled))
    return ops.where(present, values * scale, ops.zeros_like(values))
