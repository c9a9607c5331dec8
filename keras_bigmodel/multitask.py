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
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.layers._experts import ExpertLayer, check_tasks

__all__ = [
    "REDUCTIONS",
    "DynamicWeightAveraging",
    "DynamicWeighting",
    "GateWeightLogger",
    "MaskedMetric",
    "TaskLoss",
    "TaskWeighting",
    "UncertaintyWeighting",
    "label_present",
]

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


# ---------------------------------------------------------------- weighting layers
def _shared_key(name: str) -> str:
    return f"keras_bigmodel.multitask.TaskWeighting:{name}"


class TaskWeighting(keras.layers.Layer):
    """Base of the weighting layers: passes task outputs through, holds task weights.

    Subclasses create their per-task variables in `build()` and implement
    `combine(task, loss)`, the task's term of the total loss. The layer also keeps,
    as Keras metrics named `"{task}_unweighted_loss"`, the mean unweighted loss of
    each task (which `TaskLoss` records), so training logs show the raw task losses
    next to Keras's weighted `"{output}_loss"` entries.

    Call it on the model's outputs (a dict keyed by task, or one tensor for a single
    task); it returns them unchanged, and the model then tracks its variables.
    """

    def __init__(self, tasks, **kwargs):
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.tasks = check_tasks(tasks)
        self._in_model = False
        self.supports_masking = True
        self.loss_trackers = {
            task: keras.metrics.Mean(name=f"{task}_unweighted_loss") for task in self.tasks
        }

    def task_index(self, task: str) -> int:
        if task not in self.tasks:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' weighs tasks {list(self.tasks)}. "
                f"Received: task={task!r}"
            )
        return self.tasks.index(task)

    def build(self, input_shape=None):
        self.build_weights()
        self.built = True

    def build_weights(self) -> None:
        """Creates the per-task variables."""

    def _check_structure(self, structure):
        if isinstance(structure, Mapping) and sorted(structure) != sorted(self.tasks):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' weighs tasks {sorted(self.tasks)} "
                f"but was called on outputs {sorted(structure)}"
            )

    def call(self, inputs):
        self._check_structure(inputs)
        if isinstance(inputs, Mapping):
            return dict(inputs)
        return inputs

    def compute_output_spec(self, inputs):
        self._check_structure(inputs)
        # Called on symbolic tensors: the layer is part of a model's graph, so its
        # variables are the model's (a copy made by deserializing a loss alone is not).
        self._in_model = True
        return keras.tree.map_structure(
            lambda t: keras.KerasTensor(t.shape, dtype=t.dtype, sparse=t.sparse), inputs
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    # --------------------------------------------------------------- weighting
    def combine(self, task: str, loss):
        """The task's term of the total loss, given its (reduced) loss."""
        raise NotImplementedError

    def task_weights(self) -> dict[str, float]:
        """The current multiplier of each task's loss."""
        raise NotImplementedError

    def record(self, task: str, loss) -> None:
        """Adds a batch's unweighted loss of `task` to its running mean."""
        if len(loss.shape) == 0:
            self.loss_trackers[task].update_state(loss)

    def losses(self, losses, mask_value: float | None = None, reduction="sum_over_batch_size"):
        """`{task: TaskLoss(loss, task, weighting=self, mask_value=...)}`, to compile with.

        Args:
            losses: One loss for every task, or a dict `{task: loss}` (names,
                functions or `keras.losses.Loss` instances).
            mask_value: Optional number marking missing labels (NaN always does).
            reduction: The reduction of each task's loss.

        Returns:
            A dict of `TaskLoss`, keyed by task.
        """
        if not isinstance(losses, Mapping):
            losses = dict.fromkeys(self.tasks, losses)
        unknown = sorted(set(losses) - set(self.tasks))
        missing = sorted(set(self.tasks) - set(losses))
        if unknown or missing:
            raise ValueError(
                f"`losses` must give one loss per task of {type(self).__name__} "
                f"'{self.name}' {list(self.tasks)} (missing: {missing}, unknown: {unknown})"
            )
        return {
            task: TaskLoss(
                losses[task], task=task, weighting=self, mask_value=mask_value, reduction=reduction
            )
            for task in self.tasks
        }

    def get_config(self):
        config = super().get_config()
        config["tasks"] = list(self.tasks)
        return config

    @classmethod
    def from_config(cls, config):
        layer = cls(**config)
        # Keras's own shared-object ids do not survive nested configs in Keras 3.15 (the
        # first occurrence is copied before it is marked as shared), so the layer makes
        # itself findable by name for the losses deserialized later in the same load.
        _compat.record_shared_object(_shared_key(layer.name), layer)
        return layer


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class UncertaintyWeighting(TaskWeighting):
    """Learned task weights from homoscedastic uncertainty (Kendall et al., 2018).

    Holds one trainable log-variance `s_k = log(sigma_k^2)` per task; the task's
    term of the loss is `0.5 * exp(-s_k) * L_k + 0.5 * s_k`, so tasks with noisier
    (larger) losses are weighted down, and the weights are learned by the same
    optimizer as the rest of the model, on every backend.

    Args:
        tasks: The task names (a list, or a dict keyed by task).
        initial_log_variance: Starting value of every `s_k`. Defaults to 0
            (weight 0.5 each).
        **kwargs: Base layer arguments (`name`, `trainable`).

    Call arguments:
        inputs: The model's outputs, a dict keyed by task (or one tensor for one
            task); returned unchanged.

    Returns:
        The inputs, unchanged.

    Raises:
        ValueError: For an empty or repeated task list, or a non-finite
            `initial_log_variance`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead
    from keras_bigmodel.multitask import UncertaintyWeighting

    inputs = keras.Input(shape=(16,))
    trunk = keras.layers.Dense(32, activation="relu")(inputs)
    heads = MultiTaskHead({"depth": 1, "label": {"units": 3, "activation": "softmax"}})(trunk)
    weighting = UncertaintyWeighting(["depth", "label"])
    model = keras.Model(inputs, weighting(heads))
    model.compile("adam", loss=weighting.losses(
        {"depth": "mse", "label": "categorical_crossentropy"}))
    ```

    Reference:
        Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
        Losses for Scene Geometry and Semantics", CVPR 2018.
    """

    def __init__(self, tasks, initial_log_variance: float = 0.0, **kwargs):
        super().__init__(tasks, **kwargs)
        self.initial_log_variance = v.check_number("initial_log_variance", initial_log_variance)

    def build_weights(self):
        self.log_variance = self.add_weight(
            name="log_variance",
            shape=(len(self.tasks),),
            initializer=keras.initializers.Constant(self.initial_log_variance),
            dtype="float32",
        )

    def combine(self, task, loss):
        s = ops.cast(self.log_variance[self.task_index(task)], loss.dtype)
        return 0.5 * ops.exp(-s) * loss + 0.5 * s

    def task_weights(self):
        s = ops.convert_to_numpy(self.log_variance)
        return {t: float(0.5 * np.exp(-s[i])) for i, t in enumerate(self.tasks)}

    def get_config(self):
        config = super().get_config()
        config["initial_log_variance"] = self.initial_log_variance
        return config


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class DynamicWeighting(TaskWeighting):
    """Task weights that can change during training without recompiling.

    Holds one non-trainable weight `lambda_k` per task; the task's term of the
    loss is `lambda_k * L_k`. Assign new weights at any time with
    `set_task_weights(...)` (the `DynamicWeightAveraging` callback does so every
    epoch); the compiled training step reads the variables, so it sees the new
    values at once, on every backend.

    Args:
        tasks: The task names (a list, or a dict keyed by task).
        initial_weights: Optional dict `{task: weight}` (non-negative numbers) of
            starting weights; tasks left out start at 1.
        **kwargs: Base layer arguments (`name`, `trainable`).

    Call arguments:
        inputs: The model's outputs, a dict keyed by task (or one tensor for one
            task); returned unchanged.

    Returns:
        The inputs, unchanged.

    Raises:
        ValueError: For unknown tasks or negative or non-finite weights.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead
    from keras_bigmodel.multitask import DynamicWeightAveraging, DynamicWeighting

    inputs = keras.Input(shape=(16,))
    heads = MultiTaskHead({"a": 1, "b": 1})(keras.layers.Dense(32, "relu")(inputs))
    weighting = DynamicWeighting(["a", "b"])
    model = keras.Model(inputs, weighting(heads))
    model.compile("adam", loss=weighting.losses("mse"))
    # model.fit(x, y, epochs=10, callbacks=[DynamicWeightAveraging(weighting)])
    ```
    """

    def __init__(self, tasks, initial_weights: Mapping[str, float] | None = None, **kwargs):
        super().__init__(tasks, **kwargs)
        self.initial_weights = self._check_weights("initial_weights", initial_weights or {})

    def _check_weights(self, name: str, weights) -> dict[str, float]:
        if not isinstance(weights, Mapping) or not set(weights) <= set(self.tasks):
            raise ValueError(
                f"`{name}` must be a dict keyed by tasks among {list(self.tasks)}. "
                f"Received: {name}={weights!r}"
            )
        return {t: v.check_number(f"{name}['{t}']", w, minimum=0.0) for t, w in weights.items()}

    def build_weights(self):
        values = [self.initial_weights.get(t, 1.0) for t in self.tasks]
        self.task_weight = self.add_weight(
            name="task_weight",
            shape=(len(self.tasks),),
            initializer=keras.initializers.Constant(values),
            dtype="float32",
            trainable=False,
        )

    def combine(self, task, loss):
        return ops.cast(self.task_weight[self.task_index(task)], loss.dtype) * loss

    def task_weights(self):
        w = ops.convert_to_numpy(self.task_weight)
        return {t: float(w[i]) for i, t in enumerate(self.tasks)}

    def set_task_weights(self, weights: Mapping[str, float]) -> None:
        """Assigns new weights (a dict `{task: weight}`; tasks left out keep theirs)."""
        weights = self._check_weights("weights", weights)
        if not self.built:
            self.build()
        current = self.task_weights()
        current.update(weights)
        self.task_weight.assign(np.array([current[t] for t in self.tasks], dtype="float32"))

    def get_config(self):
        config = super().get_config()
        config["initial_weights"] = dict(self.initial_weights) or None
        return config


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


# ------------------------------------------------------------------------ callbacks
def _weighting_layers(model, kind=TaskWeighting) -> list:
    return [layer for layer in _compat.all_layers(model) if isinstance(layer, kind)]


class DynamicWeightAveraging(keras.callbacks.Callback):
    """Dynamic Weight Average (Liu et al., 2019): re-weights tasks every epoch.

    After each epoch `t` the weights of a `DynamicWeighting` layer become
    `lambda_k = K * softmax_k(r / temperature)`, `r_k = L_k(t) / L_k(t-1)`, where
    `L_k` is task `k`'s mean unweighted training loss over the epoch (as the layer's
    `"{task}_unweighted_loss"` metric records it) and `K` the number of tasks; a task
    whose loss falls more slowly gets a larger weight. The weights stay as they are
    until two epochs have been seen. The weights of each epoch are added to the
    logs as `"{task}_weight"`.

    Args:
        weighting: The model's `DynamicWeighting` layer; if None, the model's only
            `DynamicWeighting` layer.
        temperature: Positive number; larger values give more even weights.
            Defaults to 2, as in the paper.

    Raises:
        ValueError: If the model has no (or more than one) `DynamicWeighting`
            layer and none is given, or the logs lack a task's unweighted loss.

    Example:

    ```python
    # model compiled with loss=weighting.losses(...), weighting a DynamicWeighting
    model.fit(x, y, epochs=20, callbacks=[DynamicWeightAveraging(weighting)])
    ```

    Reference:
        Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
        CVPR 2019.
    """

    def __init__(self, weighting: DynamicWeighting | None = None, temperature: float = 2.0):
        super().__init__()
        if weighting is not None and not isinstance(weighting, DynamicWeighting):
            raise TypeError(
                f"`weighting` must be a DynamicWeighting layer. Received: weighting={weighting!r}"
            )
        self.weighting = weighting
        self.temperature = v.check_number(
            "temperature", temperature, minimum=0.0, min_inclusive=False
        )
        self.history: list[dict[str, float]] = []

    def _layer(self) -> DynamicWeighting:
        if self.weighting is None:
            found = _weighting_layers(self.model, DynamicWeighting)
            if len(found) != 1:
                raise ValueError(
                    "DynamicWeightAveraging needs `weighting=` when the model does not hold "
                    f"exactly one DynamicWeighting layer; it holds {len(found)}"
                )
            self.weighting = found[0]
        return self.weighting

    def on_train_begin(self, logs=None):
        self.history = []

    def on_epoch_end(self, epoch, logs=None):
        layer = self._layer()
        logs = logs if logs is not None else {}
        losses = {}
        for task in layer.tasks:
            key = layer.loss_trackers[task].name
            if key not in logs:
                raise ValueError(
                    f"DynamicWeightAveraging found no '{key}' in the epoch's logs: compile the "
                    f"model with loss=weighting.losses(...) so that each task's loss is recorded"
                )
            losses[task] = float(logs[key])
        for task, weight in layer.task_weights().items():
            logs[f"{task}_weight"] = weight
        self.history.append(losses)
        if len(self.history) < 2:
            return
        previous, last = self.history[-2], self.history[-1]
        ratios = [last[t] / previous[t] if previous[t] > 0 else 1.0 for t in layer.tasks]
        top = max(r / self.temperature for r in ratios)
        exps = [math.exp(r / self.temperature - top) for r in ratios]
        scale = len(layer.tasks) / sum(exps)
        layer.set_task_weights({t: e * scale for t, e in zip(layer.tasks, exps)})


class GateWeightLogger(keras.callbacks.Callback):
    """Logs the mean gate weights of the expert layers every epoch.

    For every `MixtureOfExperts` or `ProgressiveLayeredExtraction` layer of the
    model built with `gate_metrics=True`, adds `"{layer}/{task}/{expert}"`: the
    mean weight the task's gate gave the expert over the epoch's training steps, to
    the epoch's logs (and so to `History`, `CSVLogger`, TensorBoard). The layers
    keep the statistics in non-trainable weights, updated inside the training
    step, so this works on every backend (a Keras metric updated inside a layer
    does not survive JAX's stateless training step).

    Raises:
        ValueError: If the model has no expert layer with `gate_metrics=True`.

    Example:

    ```python
    history = model.fit(x, y, epochs=5, callbacks=[GateWeightLogger()])
    history.history["mmoe/task1/expert_0"]
    ```
    """

    def _layers(self) -> list:
        layers = [
            layer
            for layer in _compat.all_layers(self.model)
            if isinstance(layer, ExpertLayer) and layer.gate_metrics
        ]
        if not layers:
            raise ValueError(
                "GateWeightLogger needs an expert layer (MixtureOfExperts, "
                "ProgressiveLayeredExtraction) built with gate_metrics=True in the model"
            )
        return layers

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self._layers():
            layer.reset_gate_usage()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for layer in self._layers():
            for task, experts in layer.gate_usage().items():
                for expert, weight in experts.items():
                    logs[f"{layer.name}/{task}/{expert}"] = weight
