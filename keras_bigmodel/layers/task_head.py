"""One task's output block: optional hidden layers, then the prediction."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers.base import CompositeLayer

__all__ = ["TaskHead"]


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class TaskHead(CompositeLayer):
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

    takes_dense_options = True

    def __init__(
        self,
        units: int,
        activation=None,
        hidden_units=(),
        hidden_activation="relu",
        dropout: float = 0.0,
        use_bias: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = v.check_positive_int("units", units)
        self.activation = v.check_activation("activation", activation)
        self.hidden_units = v.check_int_tuple("hidden_units", hidden_units)
        self.hidden_activation = v.check_activation("hidden_activation", hidden_activation)
        self.dropout = v.check_rate("dropout", dropout)
        self.use_bias = v.check_bool("use_bias", use_bias)
        self.seed = v.check_seed("seed", seed)
        self.supports_masking = True

    def build(self, input_shape):
        shape = tuple(input_shape)
        v.check_rank(self, shape, 2)
        v.known_dim(self, shape, -1)
        self.hidden_layers = []
        self.dropout_layers = []
        for i, width in enumerate(self.hidden_units):
            dense = self.dense(width, f"hidden_{i}", activation=self.hidden_activation)
            dense.build(shape)
            self.hidden_layers.append(dense)
            shape = shape[:-1] + (width,)
            if self.dropout:
                seed = None if self.seed is None else self.seed + i
                self.dropout_layers.append(self.dropout_layer(self.dropout, f"dropout_{i}", seed))
        self.output_dense = self.dense(self.units, "output", activation=self.activation)
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
        v.check_rank(self, shape, 2)
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
            }
        )
        return config
