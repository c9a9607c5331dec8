"""Multi-gate Mixture-of-Experts (MMoE): shared experts, one softmax gate per task.

This module also holds what the expert layers share (`_ExpertLayer`): expert
networks as stacks of `Dense` layers, softmax gates with a temperature, and the
gate-usage statistics that `keras_bigmodel.multitask.GateWeightLogger` writes into a
training run's logs. `ProgressiveLayeredExtraction` builds on the same base.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_bigmodel import validation as v
from keras_bigmodel.layers.base import CompositeLayer
from keras_bigmodel.layers.multi_task_head import check_task_name

__all__ = ["MixtureOfExperts", "check_tasks"]


def check_tasks(tasks: Any) -> tuple[str, ...]:
    """Task names from a list of names or a dict keyed by task (e.g. the `tasks` of a
    `MultiTaskHead`), each checked as `MultiTaskHead` checks its task names."""
    if isinstance(tasks, Mapping):
        tasks = list(tasks)
    if isinstance(tasks, str) or not isinstance(tasks, Sequence) or not tasks:
        raise ValueError(
            "`tasks` must be a non-empty list of task names (or a dict keyed by task name, "
            f"such as a MultiTaskHead's `tasks`). Received: tasks={tasks!r}"
        )
    names = tuple(check_task_name(name, tasks) for name in tasks)
    if len(set(names)) != len(names):
        raise ValueError(f"`tasks` must not repeat a task name. Received: tasks={list(tasks)!r}")
    return names


def _mix(gate, stacked):
    """`sum_i gate_i * expert_i`: gate `(..., n)`, stacked experts `(..., n, units)`;
    a batched matmul, so the `(..., n, units)` product is never materialized."""
    return ops.squeeze(ops.matmul(ops.expand_dims(gate, -2), stacked), axis=-2)


class _ExpertLayer(CompositeLayer):
    """What MMoE and PLE share: expert stacks, tempered softmax gates, gate statistics.

    Subclasses build their experts with `self.expert_stack(name, input_shape)`, their
    gates with `self.gate(name, n, input_shape)`, list the experts each task's gate
    weighs in `gate_expert_names(task)`, and call `self.track_gates(gates, mask,
    training)` with their final gates. Not registered: it is not a layer on its own.
    """

    def __init__(
        self,
        tasks,
        expert_units=(16,),
        expert_activation="relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
        gate_metrics: bool = False,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(
            dense_options=True,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
        self.tasks = check_tasks(tasks)
        self.expert_units = v.check_int_tuple("expert_units", expert_units)
        if not self.expert_units:
            raise ValueError(
                "`expert_units` must hold at least one layer size (the last is the size of "
                f"each expert's output). Received: expert_units={expert_units!r}"
            )
        self.expert_activation = v.check_activation("expert_activation", expert_activation)
        self.dropout = v.check_rate("dropout", dropout)
        self.gate_temperature = v.check_number(
            "gate_temperature", gate_temperature, minimum=0.0, min_inclusive=False
        )
        self.gate_metrics = v.check_bool("gate_metrics", gate_metrics)
        self.use_bias = v.check_bool("use_bias", use_bias)
        self.seed = v.check_seed("seed", seed)
        self.supports_masking = True

    # ------------------------------------------------------------------ pieces
    @property
    def output_units(self) -> int:
        """The size of each task's output (the experts' last layer)."""
        return self.expert_units[-1]

    def gate_expert_names(self, task: str) -> list[str]:
        """The experts the final gate of `task` weighs, in gate order."""
        raise NotImplementedError

    def expert_stack(self, name: str, input_shape: tuple) -> list:
        """The Dense layers of one expert, built on `input_shape`."""
        layers = []
        shape = tuple(input_shape)
        for j, width in enumerate(self.expert_units):
            dense = self.dense(width, f"{name}_layer_{j}", activation=self.expert_activation)
            dense.build(shape)
            layers.append(dense)
            shape = shape[:-1] + (width,)
        return layers

    def run_expert(self, layers: list, x, training=None):
        for dense in layers:
            x = dense(x)
            if self.dropout:
                x = self.expert_dropout(x, training=training)
        return x

    def gate(self, name: str, n: int, input_shape: tuple) -> keras.layers.Dense:
        """A linear gate giving `n` logits, built on `input_shape`."""
        dense = self.dense(n, name)
        dense.build(tuple(input_shape))
        return dense

    def gate_weights(self, gate: keras.layers.Dense, x):
        """`softmax(gate(x) / temperature)`, computed in float32, in the compute dtype."""
        logits = ops.cast(gate(x), "float32")
        if self.gate_temperature != 1.0:
            logits = logits / self.gate_temperature
        return ops.cast(ops.softmax(logits, axis=-1), self.compute_dtype)

    def build_common(self, input_shape) -> tuple:
        shape = tuple(input_shape)
        v.check_rank(self, shape, 2)
        v.known_dim(self, shape, -1)
        if self.dropout:
            self.expert_dropout = self.dropout_layer(self.dropout, "expert_dropout", self.seed)
        if self.gate_metrics:
            n = len(self.gate_expert_names(self.tasks[0]))
            self.gate_weight_sum = self.add_weight(
                name="gate_weight_sum",
                shape=(len(self.tasks), n),
                initializer="zeros",
                dtype="float32",
                trainable=False,
            )
            self.gate_weight_count = self.add_weight(
                name="gate_weight_count",
                shape=(),
                initializer="zeros",
                dtype="float32",
                trainable=False,
            )
        return shape

    # -------------------------------------------------------------- statistics
    def track_gates(self, gates: dict, mask, training) -> None:
        """Adds the training batch's gate weights to the running sums (masked steps
        excluded), when `gate_metrics=True`."""
        if not (self.gate_metrics and training):
            return
        stacked = ops.stack([ops.cast(gates[t], "float32") for t in self.tasks], axis=0)
        # stacked: (tasks, batch, ..., n); every axis but the first and the last is summed.
        if mask is not None:
            weight = ops.cast(mask, "float32")
            stacked = stacked * ops.expand_dims(ops.expand_dims(weight, 0), -1)
            count = ops.sum(weight)
        else:
            count = ops.cast(ops.prod(ops.shape(stacked)[1:-1]), "float32")
        axes = tuple(range(1, len(stacked.shape) - 1))
        self.gate_weight_sum.assign_add(ops.sum(stacked, axis=axes))
        self.gate_weight_count.assign_add(count)

    def gate_usage(self) -> dict:
        """The mean gate weight of each expert, per task, over the training steps (and
        unmasked positions) since the last `reset_gate_usage()`: `{task: {expert:
        weight}}`. Needs `gate_metrics=True`."""
        if not self.gate_metrics:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' keeps gate statistics only with "
                "gate_metrics=True"
            )
        if not self.built:
            return {}
        sums = ops.convert_to_numpy(self.gate_weight_sum)
        count = float(ops.convert_to_numpy(self.gate_weight_count))
        return {
            task: {
                expert: float(sums[i, j] / count) if count else 0.0
                for j, expert in enumerate(self.gate_expert_names(task))
            }
            for i, task in enumerate(self.tasks)
        }

    def reset_gate_usage(self) -> None:
        """Starts the gate statistics afresh (e.g. at the start of each epoch)."""
        if self.gate_metrics and self.built:
            self.gate_weight_sum.assign(ops.zeros(self.gate_weight_sum.shape))
            self.gate_weight_count.assign(0.0)

    # ----------------------------------------------------------------- outputs
    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return {task: mask for task in self.tasks}

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        v.check_rank(self, shape, 2)
        return {task: shape[:-1] + (self.output_units,) for task in self.tasks}

    def compute_output_spec(self, inputs, mask=None, training=None, return_gate_weights=False):
        shape = tuple(inputs.shape)
        outputs = {
            task: keras.KerasTensor(s, dtype=self.compute_dtype)
            for task, s in self.compute_output_shape(shape).items()
        }
        if not return_gate_weights:
            return outputs
        gates = {
            task: keras.KerasTensor(
                shape[:-1] + (len(self.gate_expert_names(task)),), dtype=self.compute_dtype
            )
            for task in self.tasks
        }
        return outputs, gates

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "tasks": list(self.tasks),
                "expert_units": list(self.expert_units),
                "expert_activation": keras.activations.serialize(self.expert_activation),
                "dropout": self.dropout,
                "gate_temperature": self.gate_temperature,
                "gate_metrics": self.gate_metrics,
                "use_bias": self.use_bias,
                "seed": self.seed,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MixtureOfExperts(_ExpertLayer):
    """Multi-gate Mixture-of-Experts: shared experts, one softmax gate per task.

    Each of the `num_experts` experts `f_i` is a small network (a stack of
    `Dense(expert_units[j], expert_activation)` layers) that sees the whole
    input. Each task `k` has its own linear gate, and its output is the mixture

        g^k(x) = softmax(W_gk x / temperature)          (num_experts weights)
        f^k(x) = sum_i g^k(x)_i f_i(x)

    as in Ma et al. (2018), eq. 5-6. The layer returns `{task: f^k(x)}`; feed each
    task's output to its own head (a `TaskHead`, or a `MultiTaskHead` per task;
    the paper's "towers"). With `temperature > 1` the gates are softer (closer to
    an average of the experts); with `temperature < 1` sharper.

    Inputs may be `(batch, features)` or have more axes, e.g. `(batch, time,
    features)`: experts and gates then act on each position, and a Keras mask is
    passed on to every task's output (masked positions are left out of the gate
    statistics).

    Args:
        tasks: The task names: a list, or a dict keyed by task name (such as the
            `tasks` of the `MultiTaskHead` that follows).
        num_experts: Positive integer, the number of shared experts. Defaults to 4.
        expert_units: Sizes of each expert's `Dense` layers; the last is the size
            of every task's output. Defaults to `(16,)`.
        expert_activation: Activation of the expert layers. Defaults to `"relu"`.
        dropout: Float in [0, 1), dropout after each expert layer in training.
        gate_temperature: Positive number dividing the gate logits. Defaults to 1.
        gate_metrics: If `True`, the layer keeps the running mean of each gate's
            weights over the training steps (non-trainable weights
            `gate_weight_sum`, `gate_weight_count`); `gate_usage()` reads it and
            `keras_bigmodel.multitask.GateWeightLogger` writes it into the training
            logs every epoch. Defaults to `False`.
        use_bias: Whether the experts and gates have biases.
        kernel_initializer: Initializer of the kernels.
        bias_initializer: Initializer of the biases.
        kernel_regularizer: Optional regularizer of the kernels.
        bias_regularizer: Optional regularizer of the biases.
        kernel_constraint: Optional constraint on the kernels.
        bias_constraint: Optional constraint on the biases.
        seed: Optional integer seed of the dropout.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: Tensor of shape `(batch, ..., features)`.
        mask: Optional Keras mask of shape `(batch, ...)`.
        training: Whether dropout and the gate statistics are active.
        return_gate_weights: If `True`, also return the gate weights.

    Returns:
        A dict `{task: tensor (batch, ..., expert_units[-1])}`; with
        `return_gate_weights=True` the tuple `(outputs, gates)`, `gates` a dict
        `{task: tensor (batch, ..., num_experts)}` whose rows sum to 1.

    Raises:
        ValueError: If an argument is out of range, or the input has rank < 2 or
            an unknown last dimension.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MixtureOfExperts, MultiTaskHead

    tasks = {"ctr": {"units": 1, "activation": "sigmoid"},
             "rating": {"units": 5, "activation": "softmax"}}
    features = keras.Input(shape=(32,))
    experts = MixtureOfExperts(tasks, num_experts=8, expert_units=(16,))(features)
    outputs = {task: MultiTaskHead({task: spec}, name=f"tower_{task}")(experts[task])[task]
               for task, spec in tasks.items()}
    model = keras.Model(features, outputs)
    ```

    Reference:
        Ma, Zhao, Yi, Chen, Hong and Chi, "Modeling Task Relationships in
        Multi-task Learning with Multi-gate Mixture-of-Experts", KDD 2018.
    """

    def __init__(
        self,
        tasks,
        num_experts: int = 4,
        expert_units=(16,),
        expert_activation="relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
        gate_metrics: bool = False,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(
            tasks,
            expert_units=expert_units,
            expert_activation=expert_activation,
            dropout=dropout,
            gate_temperature=gate_temperature,
            gate_metrics=gate_metrics,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            seed=seed,
            **kwargs,
        )
        self.num_experts = v.check_positive_int("num_experts", num_experts)

    def gate_expert_names(self, task: str) -> list[str]:
        return [f"expert_{i}" for i in range(self.num_experts)]

    def build(self, input_shape):
        shape = self.build_common(input_shape)
        self.experts = [self.expert_stack(f"expert_{i}", shape) for i in range(self.num_experts)]
        self.gates = {
            task: self.gate(f"gate_{task}", self.num_experts, shape) for task in self.tasks
        }

    def call(self, inputs, mask=None, training=None, return_gate_weights=False):
        stacked = ops.stack([self.run_expert(e, inputs, training) for e in self.experts], axis=-2)
        gates = {task: self.gate_weights(self.gates[task], inputs) for task in self.tasks}
        outputs = {task: _mix(gates[task], stacked) for task in self.tasks}
        self.track_gates(gates, mask, training)
        if return_gate_weights:
            return outputs, gates
        return outputs

    def get_config(self):
        config = super().get_config()
        config["num_experts"] = self.num_experts
        return config
