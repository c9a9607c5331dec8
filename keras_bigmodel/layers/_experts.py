"""What the expert layers share: `ExpertLayer` (the base of `MixtureOfExperts` and
`ProgressiveLayeredExtraction`) and `mix_experts`.

Expert networks are stacks of `Dense` layers, gates are softmax layers with a
temperature, and the gate-usage statistics are what
`keras_bigmodel.multitask.GateWeightLogger` writes into a training run's logs. The
module name starts with an underscore so that `keras_bigmodel.layers` does not export
the base as a layer of its own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import keras
from keras import ops

from keras_bigmodel import validation as v
from keras_bigmodel.layers.base import CompositeLayer
from keras_bigmodel.layers.multi_task_head import check_task_name

__all__ = ["ExpertLayer", "check_tasks", "mix_experts"]


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


def mix_experts(gate, stacked):
    """`sum_i gate_i * expert_i`: gate `(..., n)`, stacked experts `(..., n, units)`;
    a batched matmul, so the `(..., n, units)` product is never materialized."""
    return ops.squeeze(ops.matmul(ops.expand_dims(gate, -2), stacked), axis=-2)


class ExpertLayer(CompositeLayer):
    """What MMoE and PLE share: expert stacks, tempered softmax gates, gate statistics.

    Subclasses build their experts with `self.expert_stack(name, input_shape)`, their
    gates with `self.gate(name, n, input_shape)`, list the experts each task's gate
    weighs in `gate_expert_names(task)`, and call `self.track_gates(gates, mask,
    training)` with their final gates. Not registered: it is not a layer on its own.
    """

    takes_dense_options = True

    def __init__(
        self,
        tasks,
        expert_units=(16,),
        expert_activation="relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
        gate_metrics: bool = False,
        use_bias: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
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
