"""Progressive Layered Extraction (PLE): task-specific and shared experts, in levels."""

from __future__ import annotations

import keras
from keras import ops

from keras_bigmodel import validation as v
from keras_bigmodel.layers._experts import ExpertLayer, mix_experts

__all__ = ["ProgressiveLayeredExtraction"]

_SHARED = "shared"


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class ProgressiveLayeredExtraction(ExpertLayer):
    """Progressive Layered Extraction: task-specific and shared experts, in levels.

    Each extraction level `j` has, for every task `k`, `num_task_experts` experts
    of its own `E_{k,j}`, plus `num_shared_experts` shared experts `E_{s,j}`
    (each a stack of `Dense(expert_units[i], expert_activation)` layers). Task
    `k`'s gate weighs only its own experts and the shared ones; the shared gate
    (on every level but the last) weighs all experts (Tang et al. 2020, eq. 2-5):

        q^{k,0} = q^{s,0} = x
        S^{k,j} = [E_{k,j}(q^{k,j-1}), E_{s,j}(q^{s,j-1})]
        q^{k,j} = softmax(W^{k,j} q^{k,j-1} / temperature) . S^{k,j}
        S^{s,j} = [E_{1,j}(q^{1,j-1}), ..., E_{K,j}(q^{K,j-1}), E_{s,j}(q^{s,j-1})]
        q^{s,j} = softmax(W^{s,j} q^{s,j-1} / temperature) . S^{s,j}

    The layer returns `{task: q^{k,L}}` after `num_levels` levels. With
    `num_levels=1` it is the paper's Customized Gate Control (CGC). Feed each
    task's output to its own head (the paper's "towers").

    Inputs may be `(batch, features)` or have more axes (e.g. `(batch, time,
    features)`, each position handled alike); a Keras mask is passed on to every
    task's output and masked positions are left out of the gate statistics.

    Args:
        tasks: The task names: a list, or a dict keyed by task name (such as the
            `tasks` of the `MultiTaskHead` that follows).
        num_task_experts: Positive integer, experts of each task, per level.
            Defaults to 1.
        num_shared_experts: Positive integer, shared experts per level.
            Defaults to 1.
        num_levels: Positive integer, the number of extraction levels. Defaults
            to 1 (CGC).
        expert_units: Sizes of each expert's `Dense` layers; the last is the size
            of every task's output (and of each level's outputs). Defaults to
            `(16,)`.
        expert_activation: Activation of the expert layers. Defaults to `"relu"`.
        dropout: Float in [0, 1), dropout after each expert layer in training.
        gate_temperature: Positive number dividing every gate's logits.
        gate_metrics: If `True`, the layer keeps the running mean of the last
            level's task gates over the training steps (see
            `MixtureOfExperts`); `gate_usage()` reads it and
            `keras_bigmodel.multitask.GateWeightLogger` logs it.
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
        return_gate_weights: If `True`, also return the last level's task gates.

    Returns:
        A dict `{task: tensor (batch, ..., expert_units[-1])}`; with
        `return_gate_weights=True` the tuple `(outputs, gates)`, `gates` a dict
        `{task: tensor (batch, ..., num_task_experts + num_shared_experts)}`: the
        weights of the task's own experts first, then of the shared ones.

    Raises:
        ValueError: If an argument is out of range, or the input has rank < 2 or
            an unknown last dimension.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead, ProgressiveLayeredExtraction

    tasks = {"ctr": {"units": 1, "activation": "sigmoid"},
             "rating": {"units": 5, "activation": "softmax"}}
    features = keras.Input(shape=(32,))
    experts = ProgressiveLayeredExtraction(
        tasks, num_task_experts=2, num_shared_experts=2, num_levels=2)(features)
    outputs = {task: MultiTaskHead({task: spec}, name=f"tower_{task}")(experts[task])[task]
               for task, spec in tasks.items()}
    model = keras.Model(features, outputs)
    ```

    Reference:
        Tang, Liu, Zhao and Gong, "Progressive Layered Extraction (PLE): A Novel
        Multi-Task Learning (MTL) Model for Personalized Recommendations",
        RecSys 2020.
    """

    def __init__(
        self,
        tasks,
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        num_levels: int = 1,
        **kwargs,
    ):
        super().__init__(tasks, **kwargs)
        self.num_task_experts = v.check_positive_int("num_task_experts", num_task_experts)
        self.num_shared_experts = v.check_positive_int("num_shared_experts", num_shared_experts)
        self.num_levels = v.check_positive_int("num_levels", num_levels)
        if _SHARED in self.tasks:
            raise ValueError(
                f"'{_SHARED}' names the shared experts of {type(self).__name__} and cannot be "
                f"a task name. Received: tasks={list(self.tasks)!r}"
            )

    def gate_expert_names(self, task: str) -> list[str]:
        own = [f"{task}_expert_{i}" for i in range(self.num_task_experts)]
        return own + [f"shared_expert_{i}" for i in range(self.num_shared_experts)]

    def build(self, input_shape):
        shape = self.build_common(input_shape)
        n_own, n_shared = self.num_task_experts, self.num_shared_experts
        # One dict per level: {task or "shared": [expert, ...]} and {task or "shared": gate}.
        self.level_experts = []
        self.level_gates = []
        for j in range(self.num_levels):
            experts = {
                task: [
                    self.expert_stack(f"level_{j}_{task}_expert_{i}", shape) for i in range(n_own)
                ]
                for task in self.tasks
            }
            experts[_SHARED] = [
                self.expert_stack(f"level_{j}_shared_expert_{i}", shape) for i in range(n_shared)
            ]
            gates = {
                task: self.gate(f"level_{j}_gate_{task}", n_own + n_shared, shape)
                for task in self.tasks
            }
            if j < self.num_levels - 1:
                every = len(self.tasks) * n_own + n_shared
                gates[_SHARED] = self.gate(f"level_{j}_gate_shared", every, shape)
            self.level_experts.append(experts)
            self.level_gates.append(gates)
            shape = shape[:-1] + (self.output_units,)

    def call(self, inputs, mask=None, training=None, return_gate_weights=False):
        task_in = dict.fromkeys(self.tasks, inputs)
        shared_in = inputs
        gates = {}
        for experts, level_gates in zip(self.level_experts, self.level_gates):
            own = {
                task: [self.run_expert(e, task_in[task], training) for e in experts[task]]
                for task in self.tasks
            }
            shared = [self.run_expert(e, shared_in, training) for e in experts[_SHARED]]
            gates = {
                task: self.gate_weights(level_gates[task], task_in[task]) for task in self.tasks
            }
            task_out = {
                task: mix_experts(gates[task], ops.stack(own[task] + shared, axis=-2))
                for task in self.tasks
            }
            if _SHARED in level_gates:
                every = [h for task in self.tasks for h in own[task]] + shared
                shared_gate = self.gate_weights(level_gates[_SHARED], shared_in)
                shared_in = mix_experts(shared_gate, ops.stack(every, axis=-2))
            task_in = task_out
        self.track_gates(gates, mask, training)
        if return_gate_weights:
            return task_in, gates
        return task_in

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_task_experts": self.num_task_experts,
                "num_shared_experts": self.num_shared_experts,
                "num_levels": self.num_levels,
            }
        )
        return config
