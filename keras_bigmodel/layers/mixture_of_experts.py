"""Multi-gate Mixture-of-Experts (MMoE): shared experts, one softmax gate per task.

What the expert layers share (experts, gates, gate statistics) is
`keras_bigmodel.layers._experts.ExpertLayer`; `ProgressiveLayeredExtraction` builds on
the same base.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_bigmodel import validation as v
from keras_bigmodel.layers._experts import ExpertLayer, check_tasks, mix_experts

__all__ = ["MixtureOfExperts", "check_tasks"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MixtureOfExperts(ExpertLayer):
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

    def __init__(self, tasks, num_experts: int = 4, **kwargs):
        super().__init__(tasks, **kwargs)
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
        outputs = {task: mix_experts(gates[task], stacked) for task in self.tasks}
        self.track_gates(gates, mask, training)
        if return_gate_weights:
            return outputs, gates
        return outputs

    def get_config(self):
        config = super().get_config()
        config["num_experts"] = self.num_experts
        return config
