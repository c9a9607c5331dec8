"""Branch fusion: the documents' `concatenate` model fusion, and learned fusion modes."""

from __future__ import annotations

import math
from typing import Sequence

import keras
from keras import ops

from keras_bigmodel.layers import _utils as u
from keras_bigmodel.layers.attention import AttentionLayer

FUSION_MODES = ("concat", "sum", "mean", "max", "weighted", "gated", "attention")


def _branch_shapes(layer, input_shape) -> list[tuple]:
    """Validates that a layer was called on a list of at least two tensors."""
    is_shape_list = isinstance(input_shape, (list, tuple)) and all(
        isinstance(s, (list, tuple)) for s in input_shape
    )
    if not is_shape_list or len(input_shape) < 2:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' must be called on a list of at least "
            f"two branch tensors. Received: inputs with shape {input_shape}"
        )
    return [tuple(s) for s in input_shape]


def _dims_compatible(a, b) -> bool:
    return a is None or b is None or a == b


def _check_same_leading_dims(layer, shapes, skip_axis=None):
    rank = len(shapes[0])
    if any(len(s) != rank for s in shapes):
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' needs branches of the same rank. "
            f"Received branch shapes: {shapes}"
        )
    if rank < 2:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' needs branches of rank 2 or more "
            f"(batch, ..., features). Received branch shapes: {shapes}"
        )
    for axis in range(rank):
        if skip_axis is not None and axis == skip_axis % rank:
            continue
        dims = [s[axis] for s in shapes]
        if not all(_dims_compatible(dims[0], d) for d in dims[1:]):
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}' cannot fuse branches whose axis "
                f"{axis} differs. Received branch shapes: {shapes}"
            )


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class FusionConcat(keras.layers.Concatenate):
    """Concatenates branch outputs: the documents' model fusion (`concatenate`).

    The documents fuse two models by concatenating their outputs; this layer is
    that step, as a registered, serializable layer with clear errors. It is
    Keras's `Concatenate` (so masks and shape inference behave the same) with
    the branch list and shapes checked up front.

    Args:
        axis: Integer, the axis to concatenate along. Defaults to `-1`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: A list of at least two tensors whose shapes agree on every axis
            except `axis`.

    Returns:
        One tensor, the branches concatenated along `axis`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import FusionConcat

    input1 = keras.Input(shape=(10,))
    input2 = keras.Input(shape=(10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    output = FusionConcat(axis=-1)([dense1, dense2])      # (batch, 2)
    model = keras.Model([input1, input2], output)
    ```
    """

    def __init__(self, axis: int = -1, **kwargs):
        super().__init__(axis=u.check_axis("axis", axis), **kwargs)

    def build(self, input_shape):
        shapes = _branch_shapes(self, input_shape)
        rank = len(shapes[0])
        if not -rank <= self.axis < rank:
            raise ValueError(
                f"FusionConcat '{self.name}' got axis={self.axis}, outside the rank "
                f"{rank} of its branches. Received branch shapes: {shapes}"
            )
        _check_same_leading_dims(self, shapes, skip_axis=self.axis)
        super().build(input_shape)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class Fusion(keras.layers.Layer):
    """Fuses several branches (models, modalities) into one representation.

    Modes:
        - `"concat"`: concatenate along `axis` (the documents' fusion).
        - `"sum"`, `"mean"`, `"max"`: element-wise over the branches.
        - `"weighted"`: `sum_i w_i x_i` with `w = softmax(logits)`, one learned
          logit per branch (initialised from `branch_weights` if given, else
          equal weights).
        - `"gated"`: a gated multimodal unit: each branch is projected,
          `h_i = activation(W_i x_i)`, and a gate computed from all branches,
          `z = softmax_i(G [x_1; ...; x_n])` per feature, mixes them:
          `sum_i z_i * h_i`. With two branches this is the GMU of Arevalo et al.
        - `"attention"`: attention over the branches: each (projected) branch
          is a "time step" of an additive `AttentionLayer`, whose weights say how
          much each branch contributes, per example. Needs rank-2 branches.

    For every mode but `"concat"` the branches must have the same feature size,
    or `units` must be given: then each branch first goes through its own
    `Dense(units, activation)` projection.

    Args:
        mode: One of `"concat"`, `"sum"`, `"mean"`, `"max"`, `"weighted"`,
            `"gated"` or `"attention"`. Defaults to `"concat"`.
        units: Optional positive integer; if given, each branch is projected to
            this size first (always done in `"gated"` mode, where it defaults to
            the branches' common size).
        activation: Activation of the projections. Defaults to `None`, except
            in `"gated"` mode where it defaults to `"tanh"`.
        attention_units: Hidden size of the `"attention"` mode's scorer.
            Defaults to the fused feature size.
        branch_weights: Optional initial weights of the `"weighted"` mode, one
            positive number per branch; they are normalised to sum to 1. Freeze
            them with `trainable=False`.
        axis: The axis of `"concat"`. Defaults to `-1`.
        use_bias: Whether the projections and gates have biases.
        kernel_initializer: Initializer of the kernels.
        bias_initializer: Initializer of the biases.
        kernel_regularizer: Optional regularizer of the kernels.
        bias_regularizer: Optional regularizer of the biases.
        kernel_constraint: Optional constraint on the kernels.
        bias_constraint: Optional constraint on the biases.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: A list of at least two tensors, `(batch, ..., features_i)`.
        mask: Optional list of masks (propagated automatically); the output
            mask is their logical AND.

    Returns:
        One tensor: `(batch, ..., sum_i features_i)` for `"concat"`, else
        `(batch, ..., units or features)`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import Fusion

    image_features = keras.Input(shape=(128,))
    text_features = keras.Input(shape=(32,))
    fused = Fusion(mode="gated", units=64)([image_features, text_features])
    model = keras.Model([image_features, text_features], fused)   # (batch, 64)
    ```

    Reference:
        Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR
        workshop 2017; Baltrusaitis, Ahuja and Morency, "Multimodal Machine
        Learning: A Survey and Taxonomy", IEEE TPAMI 2019.
    """

    def __init__(
        self,
        mode: str = "concat",
        units: int | None = None,
        activation=None,
        attention_units: int | None = None,
        branch_weights: Sequence[float] | None = None,
        axis: int = -1,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        dtype, policy_map = u.split_dtype(kwargs.pop("dtype", None))
        super().__init__(dtype=dtype, **kwargs)
        self._policy_map = policy_map
        self.mode = u.check_choice("mode", mode, FUSION_MODES)
        self.units = u.check_positive_int("units", units, allow_none=True)
        if activation is None and self.mode == "gated":
            activation = "tanh"
        self.activation = u.check_activation("activation", activation)
        self.attention_units = u.check_positive_int(
            "attention_units", attention_units, allow_none=True
        )
        if attention_units is not None and self.mode != "attention":
            raise ValueError(
                "`attention_units` only applies to mode='attention'. "
                f"Received: attention_units={attention_units!r} with mode={mode!r}"
            )
        if branch_weights is not None:
            if self.mode != "weighted":
                raise ValueError(
                    "`branch_weights` only applies to mode='weighted'. "
                    f"Received: branch_weights={branch_weights!r} with mode={mode!r}"
                )
            branch_weights = self._check_branch_weights(branch_weights)
        self.branch_weights = branch_weights
        self.axis = u.check_axis("axis", axis)
        if self.axis != -1 and (self.mode != "concat" or self.units is not None):
            raise ValueError(
                "`axis` only applies to mode='concat' without `units`; projected branches "
                f"and the other modes fuse the last axis. Received: axis={axis!r} with "
                f"mode={mode!r}, units={units!r}"
            )
        self.use_bias = u.check_bool("use_bias", use_bias)
        self._dense_args = u.set_dense_options(
            self,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
        )
        self.projections = []
        self.supports_masking = True

    @staticmethod
    def _check_branch_weights(weights) -> list[float]:
        try:
            values = [float(w) for w in weights]
        except (TypeError, ValueError):
            values = None
        if not values or any(not math.isfinite(w) or w <= 0 for w in values):
            raise ValueError(
                "`branch_weights` must be a list of positive finite numbers, one per "
                f"branch. Received: branch_weights={weights!r}"
            )
        total = sum(values)
        return [w / total for w in values]

    def _dense(self, units, name, activation=None):
        return keras.layers.Dense(
            units,
            activation=activation,
            use_bias=self.use_bias,
            name=name,
            dtype=u.sublayer_dtype(self, self._policy_map, name),
            **self._dense_args,
        )

    def build(self, input_shape):
        shapes = _branch_shapes(self, input_shape)
        n = len(shapes)
        concat_axis = self.axis if self.mode == "concat" and self.units is None else -1
        _check_same_leading_dims(self, shapes, skip_axis=concat_axis)
        if not -len(shapes[0]) <= concat_axis < len(shapes[0]):
            raise ValueError(
                f"Fusion '{self.name}' got axis={self.axis}, outside the rank "
                f"{len(shapes[0])} of its branches. Received branch shapes: {shapes}"
            )
        for s in shapes:
            u.known_dim(self, s, -1)
        features = [s[-1] for s in shapes]
        if self.branch_weights is not None and len(self.branch_weights) != n:
            raise ValueError(
                f"Fusion '{self.name}' got {n} branches but {len(self.branch_weights)} "
                f"branch_weights. Received: branch_weights={self.branch_weights}"
            )
        if self.mode == "attention" and len(shapes[0]) != 2:
            raise ValueError(
                f"Fusion '{self.name}' with mode='attention' needs rank-2 branches "
                f"(batch, features). Received branch shapes: {shapes}"
            )

        width = self.units
        if width is None and self.mode == "gated":
            width = features[0]
        if width is None and self.mode != "concat" and len(set(features)) > 1:
            raise ValueError(
                f"Fusion '{self.name}' with mode='{self.mode}' needs branches with the same "
                f"feature size, or `units=` to project each branch to one size. "
                f"Received branch shapes: {shapes}"
            )
        fused_width = width if width is not None else features[0]
        if width is not None:
            self.projections = [
                self._dense(width, f"projection_{i}", self.activation) for i in range(n)
            ]
            for proj, shape in zip(self.projections, shapes):
                proj.build(shape)

        if self.mode == "weighted":
            initial = self.branch_weights or [1.0 / n] * n
            self.branch_logits = self.add_weight(
                name="branch_logits",
                shape=(n,),
                initializer=keras.initializers.Constant([math.log(w) for w in initial]),
            )
        elif self.mode == "gated":
            self.gate = self._dense(n * width, "gate")
            self.gate.build(shapes[0][:-1] + (sum(features),))
        elif self.mode == "attention":
            self.attention = AttentionLayer(
                self.attention_units or fused_width,
                name="attention",
                use_bias=self.use_bias,
                dtype=u.sublayer_dtype(self, self._policy_map, "attention"),
                **self._dense_args,
            )
            self.attention.build((shapes[0][0], n, fused_width))

    def _project(self, inputs):
        if not self.projections:
            return list(inputs)
        return [proj(x) for proj, x in zip(self.projections, inputs)]

    def call(self, inputs, mask=None, training=None):
        branches = self._project(inputs)
        if self.mode == "concat":
            return ops.concatenate(branches, axis=self.axis)
        if self.mode == "sum":
            return _reduce(ops.add, branches)
        if self.mode == "mean":
            return _reduce(ops.add, branches) / ops.cast(len(branches), branches[0].dtype)
        if self.mode == "max":
            return _reduce(ops.maximum, branches)
        stacked = ops.stack(branches, axis=-2)  # (batch, ..., n, width)
        if self.mode == "weighted":
            w = ops.cast(ops.softmax(ops.cast(self.branch_logits, "float32")), stacked.dtype)
            return ops.sum(stacked * ops.expand_dims(w, -1), axis=-2)
        if self.mode == "gated":
            gate = self.gate(ops.concatenate(list(inputs), axis=-1))
            gate = ops.reshape(gate, ops.shape(stacked))
            gate = ops.cast(ops.softmax(ops.cast(gate, "float32"), axis=-2), stacked.dtype)
            return ops.sum(gate * stacked, axis=-2)
        return self.attention(stacked, training=training)  # mode == "attention"

    def compute_mask(self, inputs, mask=None):
        if mask is None or all(m is None for m in mask):
            return None
        rank = len(inputs[0].shape)
        if self.mode == "concat" and self.axis % rank != rank - 1:
            # Concatenating along a masked axis (e.g. time) concatenates the masks.
            masks = [
                ops.ones(ops.shape(x)[:-1], dtype="bool") if m is None else ops.cast(m, "bool")
                for x, m in zip(inputs, mask)
            ]
            return ops.concatenate(masks, axis=self.axis % rank)
        return _reduce(ops.logical_and, [ops.cast(m, "bool") for m in mask if m is not None])

    def compute_output_shape(self, input_shape):
        shapes = _branch_shapes(self, input_shape)
        if self.mode == "concat" and self.units is None:
            out = list(shapes[0])
            axis = self.axis % len(out)
            dims = [s[axis] for s in shapes]
            out[axis] = None if any(d is None for d in dims) else sum(dims)
            return tuple(out)
        if self.mode == "concat":
            return shapes[0][:-1] + (self.units * len(shapes),)
        return shapes[0][:-1] + (self.units or shapes[0][-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "units": self.units,
                "activation": keras.activations.serialize(self.activation),
                "attention_units": self.attention_units,
                "branch_weights": self.branch_weights,
                "axis": self.axis,
                "use_bias": self.use_bias,
                **u.dense_options_config(self, u.DENSE_OPTIONS),
            }
        )
        if self.mode == "gated" and config["activation"] == "tanh":
            config["activation"] = None  # the mode's default; keeps the config canonical
        return u.dtype_config(self, config)


def _reduce(fn, tensors):
    out = tensors[0]
    for t in tensors[1:]:
        out = fn(out, t)
    return out
