"""Task weighting layers (uncertainty, dynamic) and the Dynamic Weight Average callback."""

from __future__ import annotations

import math
from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel import validation as v
from keras_bigmodel.layers._experts import check_tasks

__all__ = ["DynamicWeightAveraging", "DynamicWeighting", "TaskWeighting", "UncertaintyWeighting"]


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
        from keras_bigmodel.multitask.losses import TaskLoss

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
