"""Task heads: one task's output block, and named heads on a shared trunk."""

from __future__ import annotations

import re
from typing import Any, Mapping

import keras

from keras_bigmodel.layers import _utils as u

_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The configuration keys of a TaskHead that a `MultiTaskHead` task spec may hold.
TASK_SPEC_KEYS = (
    "units",
    "activation",
    "hidden_units",
    "hidden_activation",
    "dropout",
    "use_bias",
    *u.DENSE_OPTIONS,
    "seed",
)
_BASE_LAYER_KEYS = ("name", "trainable", "dtype")


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class TaskHead(keras.layers.Layer):
    """The output block of one task: optional hidden layers, then the prediction.

    `TaskHead(10, activation="softmax")` is the documents' `Dense(10,
    activation='softmax')` task output; `hidden_units=(64,)` puts a hidden
    `Dense(64, relu)` (with optional dropout) in front of it, which gives each
    task some capacity of its own on top of a shared trunk.

    Args:
        units: Positive integer, the size of the prediction (e.g. the number of
            classes).
        activation: Activation of the prediction, e.g. `"softmax"`,
            `"sigmoid"` or `None` (logits). Defaults to `None`.
        hidden_units: Sizes of the hidden `Dense` layers, in order. Defaults to
            `()` (none).
        hidden_activation: Activation of the hidden layers. Defaults to `"relu"`.
        dropout: Float in [0, 1), dropout after each hidden layer in training.
        use_bias: Whether the `Dense` layers have biases.
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
        training: Whether dropout is active.

    Returns:
        Tensor of shape `(batch, ..., units)`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import TaskHead

    features = keras.Input(shape=(64,))
    trunk = keras.layers.Dense(128, activation="relu")(features)
    digit = TaskHead(10, activation="softmax", hidden_units=(32,), dropout=0.1)(trunk)
    model = keras.Model(features, digit)
    ```

    Reference:
        Caruana, "Multitask Learning", Machine Learning 28, 1997 (hard parameter
        sharing: a shared trunk with task-specific output layers).
    """

    def __init__(
        self,
        units: int,
        activation=None,
        hidden_units=(),
        hidden_activation="relu",
        dropout: float = 0.0,
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
        dtype, policy_map = u.split_dtype(kwargs.pop("dtype", None))
        super().__init__(dtype=dtype, **kwargs)
        self.units = u.check_positive_int("units", units)
        self.activation = u.check_activation("activation", activation)
        self.hidden_units = u.check_int_tuple("hidden_units", hidden_units)
        self.hidden_activation = u.check_activation("hidden_activation", hidden_activation)
        self.dropout = u.check_rate("dropout", dropout)
        self.use_bias = u.check_bool("use_bias", use_bias)
        self.seed = u.check_seed("seed", seed)
        dense_args = dict(
            use_bias=use_bias,
            **u.set_dense_options(
                self,
                kernel_initializer=kernel_initializer,
                bias_initializer=bias_initializer,
                kernel_regularizer=kernel_regularizer,
                bias_regularizer=bias_regularizer,
                kernel_constraint=kernel_constraint,
                bias_constraint=bias_constraint,
            ),
        )
        self.hidden_layers = []
        self.dropout_layers = []
        for i, width in enumerate(self.hidden_units):
            name = f"hidden_{i}"
            self.hidden_layers.append(
                keras.layers.Dense(
                    width,
                    activation=self.hidden_activation,
                    name=name,
                    dtype=u.sublayer_dtype(self, policy_map, name),
                    **dense_args,
                )
            )
            if self.dropout:
                self.dropout_layers.append(
                    keras.layers.Dropout(
                        self.dropout,
                        seed=None if seed is None else seed + i,
                        name=f"dropout_{i}",
                        dtype=self.dtype_policy,
                    )
                )
        self.output_dense = keras.layers.Dense(
            self.units,
            activation=self.activation,
            name="output",
            dtype=u.sublayer_dtype(self, policy_map, "output"),
            **dense_args,
        )
        self.supports_masking = True

    def build(self, input_shape):
        shape = tuple(input_shape)
        u.check_rank(self, shape, 2)
        u.known_dim(self, shape, -1)
        for i, dense in enumerate(self.hidden_layers):
            dense.build(shape)
            shape = shape[:-1] + (self.hidden_units[i],)
        self.output_dense.build(shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, dense in enumerate(self.hidden_layers):
            x = dense(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        return self.output_dense(x)

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        u.check_rank(self, shape, 2)
        return shape[:-1] + (self.units,)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "hidden_units": list(self.hidden_units),
                "hidden_activation": keras.activations.serialize(self.hidden_activation),
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "seed": self.seed,
                **u.dense_options_config(self, u.DENSE_OPTIONS),
            }
        )
        return u.dtype_config(self, config)


def _normalize_task_spec(name: str, spec: Any) -> dict:
    """A task spec is `units` (an int) or a dict of TaskHead arguments."""
    if isinstance(spec, TaskHead):
        raise ValueError(
            f"`tasks['{name}']` must be a dict of TaskHead arguments, not a TaskHead "
            f"instance, so that the layer can be rebuilt from its config. "
            f"Received: tasks['{name}']={spec!r}"
        )
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"units": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"`tasks['{name}']` must be a positive integer (the task's units) or a dict "
            f"of TaskHead arguments such as {{'units': 10, 'activation': 'softmax'}}. "
            f"Received: tasks['{name}']={spec!r}"
        )
    unknown = sorted(set(spec) - set(TASK_SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"`tasks['{name}']` has unknown keys {unknown}; allowed keys are "
            f"{list(TASK_SPEC_KEYS)}. Received: tasks['{name}']={dict(spec)!r}"
        )
    if "units" not in spec:
        raise ValueError(
            f"`tasks['{name}']` must give 'units'. Received: tasks['{name}']={dict(spec)!r}"
        )
    return dict(spec)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MultiTaskHead(keras.layers.Layer):
    """Named task heads on a shared trunk; returns a dict `{task_name: output}`.

    This is the documents' multi-task model (section 2.3) as one layer: the
    trunk's features feed one `TaskHead` per task. Because the output is a dict
    keyed by task name, a functional model built on it has named outputs, and
    `compile` takes per-task losses, loss weights and metrics by those names.

    Args:
        tasks: Dict mapping each task name to its head: either the number of
            units, or a dict of `TaskHead` arguments (`units`, `activation`,
            `hidden_units`, `hidden_activation`, `dropout`, `use_bias`,
            initializers, regularizers, `seed`). Task names start with a letter
            or underscore and hold letters, digits, `_`, `.` and `-`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: The shared features, shape `(batch, ..., features)`.
        training: Whether dropout in the heads is active.

    Returns:
        A dict mapping each task name to a tensor of shape
        `(batch, ..., units_of_that_task)`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead

    inputs = keras.Input(shape=(64,))
    trunk = keras.layers.Dense(128, activation="relu")(inputs)
    outputs = MultiTaskHead({
        "task1": {"units": 10, "activation": "softmax"},
        "task2": {"units": 5, "activation": "softmax"},
    })(trunk)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss={"task1": "categorical_crossentropy", "task2": "categorical_crossentropy"},
        loss_weights={"task1": 1.0, "task2": 0.5},
        metrics={"task1": ["accuracy"], "task2": ["accuracy"]},
    )
    ```

    Reference:
        Ruder, "An Overview of Multi-Task Learning in Deep Neural Networks",
        arXiv:1706.05098, 2017.
    """

    def __init__(self, tasks: Mapping[str, Any], **kwargs):
        dtype, policy_map = u.split_dtype(kwargs.pop("dtype", None))
        super().__init__(dtype=dtype, **kwargs)
        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError(
                "`tasks` must be a non-empty dict mapping task names to head specs, e.g. "
                "{'task1': {'units': 10, 'activation': 'softmax'}}. "
                f"Received: tasks={tasks!r}"
            )
        self.heads = {}
        for name, spec in tasks.items():
            if not isinstance(name, str) or not _TASK_NAME.match(name):
                raise ValueError(
                    "Task names must be strings of letters, digits, '_', '.' or '-' that "
                    f"start with a letter or '_'. Received: task name {name!r} in "
                    f"tasks={list(tasks)!r}"
                )
            spec = _normalize_task_spec(name, spec)
            self.heads[name] = TaskHead(
                name=name, dtype=u.sublayer_dtype(self, policy_map, name), **spec
            )
        self.task_names = tuple(self.heads)
        self.supports_masking = True

    def build(self, input_shape):
        shape = tuple(input_shape)
        u.check_rank(self, shape, 2)
        u.known_dim(self, shape, -1)
        for head in self.heads.values():
            head.build(shape)

    def call(self, inputs, training=None):
        return {name: head(inputs, training=training) for name, head in self.heads.items()}

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return {name: mask for name in self.task_names}

    def compute_output_shape(self, input_shape):
        shape = tuple(input_shape)
        u.check_rank(self, shape, 2)
        return {name: shape[:-1] + (head.units,) for name, head in self.heads.items()}

    def get_config(self):
        config = super().get_config()
        tasks = {}
        for name, head in self.heads.items():
            head_config = head.get_config()
            tasks[name] = {k: v for k, v in head_config.items() if k not in _BASE_LAYER_KEYS}
        config["tasks"] = tasks
        return u.dtype_config(self, config)
