"""Branch fusion: several models' or modalities' features combined into one."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import keras
from keras import ops

from keras_bigmodel import validation as v
from keras_bigmodel.layers.base import CompositeLayer
from keras_bigmodel.layers.fusion_modes import FUSION_MODES, branch_presence, get_mode

__all__ = ["FUSION_MODES", "Fusion", "branch_shapes"]


def branch_shapes(layer, input_shape) -> tuple[list[tuple], list[str] | None]:
    """The branch shapes in fusion order, and the branch names for dict inputs.

    A dict of named branches is fused in sorted key order (the order `keras.tree`
    flattens dicts in), so a model's weights do not depend on insertion order.
    """
    names = None
    if isinstance(input_shape, dict):
        names = sorted(input_shape)
        input_shape = [input_shape[k] for k in names]
    is_shape_list = isinstance(input_shape, (list, tuple)) and all(
        isinstance(s, (list, tuple)) for s in input_shape
    )
    if not is_shape_list or len(input_shape) < 2:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' must be called on a list (or a dict of "
            f"named branches) of at least two tensors. Received: inputs with shape "
            f"{input_shape}"
        )
    return [tuple(s) for s in input_shape], names


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
    if not -rank <= (skip_axis if skip_axis is not None else -1) < rank:
        raise ValueError(
            f"{type(layer).__name__} '{layer.name}' got axis={skip_axis}, outside the rank "
            f"{rank} of its branches. Received branch shapes: {shapes}"
        )
    for axis in range(rank):
        if skip_axis is not None and axis == skip_axis % rank:
            continue
        dims = [s[axis] for s in shapes]
        if not all(a is None or b is None or a == b for a, b in itertools.pairwise(dims)):
            raise ValueError(
                f"{type(layer).__name__} '{layer.name}' cannot fuse branches whose axis "
                f"{axis} differs. Received branch shapes: {shapes}"
            )


def _as_list(layer, inputs) -> list:
    if isinstance(inputs, dict):
        return [inputs[k] for k in sorted(inputs)]
    return list(inputs)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class Fusion(CompositeLayer):
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

    Branches may be a list or a dict of named modalities (fused in sorted key
    order). Real data misses modalities, so the layer can do without some:

    - `modality_dropout=p` drops each branch of each example with probability
      `p` during training (never all of an example's branches), which teaches
      the model to cope with a missing modality;
    - at inference, `modality_mask` (shape `(batch, branches)`, or a dict of
      `(batch,)` tensors) marks the branches that are present: missing ones
      contribute nothing and the remaining ones are re-weighted (mean over the
      present branches; softmax of the weighted, gated and attention modes over
      the present branches; zeros in their place for concat); a missing
      branch's values are ignored, whatever they are (NaN included);
    - `return_weights=True` also returns how much each branch contributed,
      `(batch, branches)`, for the weighted, gated (the gate averaged over
      features) and attention modes.

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
        modality_dropout: Float in [0, 1), the probability of dropping a whole
            branch of an example during training. Defaults to `0.0`.
        use_bias: Whether the projections and gates have biases.
        kernel_initializer: Initializer of the kernels.
        bias_initializer: Initializer of the biases.
        kernel_regularizer: Optional regularizer of the kernels.
        bias_regularizer: Optional regularizer of the biases.
        kernel_constraint: Optional constraint on the kernels.
        bias_constraint: Optional constraint on the biases.
        seed: Optional integer seed of the modality dropout.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: A list of at least two tensors `(batch, ..., features_i)`, or a
            dict of them keyed by modality name.
        mask: Optional Keras masks (propagated automatically); the output mask
            is their logical AND.
        modality_mask: Optional boolean or 0/1 tensor `(batch, branches)` (or a
            dict of `(batch,)` tensors keyed like `inputs`): which branches each
            example has.
        training: Whether modality dropout is active.
        return_weights: If `True`, also return the per-branch weights.

    Returns:
        One tensor: `(batch, ..., sum_i features_i)` for `"concat"`, else
        `(batch, ..., units or features)`; with `return_weights=True` the tuple
        `(fused, weights)`, `weights` of shape `(batch, branches)`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import Fusion

    image_features = keras.Input(shape=(128,), name="image")
    text_features = keras.Input(shape=(32,), name="text")
    fused, weights = Fusion(mode="gated", units=64, modality_dropout=0.2)(
        {"image": image_features, "text": text_features}, return_weights=True)
    model = keras.Model([image_features, text_features], [fused, weights])
    ```

    Reference:
        Arevalo et al., "Gated Multimodal Units for Information Fusion", ICLR
        workshop 2017; Neverova et al., "ModDrop: Adaptive Multi-Modal Gesture
        Recognition", IEEE TPAMI 2016 (modality dropout); Baltrusaitis, Ahuja and
        Morency, "Multimodal Machine Learning: A Survey and Taxonomy", TPAMI 2019.
    """

    takes_dense_options = True

    def __init__(
        self,
        mode: str = "concat",
        units: int | None = None,
        activation=None,
        attention_units: int | None = None,
        branch_weights: Sequence[float] | None = None,
        axis: int = -1,
        modality_dropout: float = 0.0,
        use_bias: bool = True,
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.mode = v.check_choice("mode", mode, FUSION_MODES)
        self._mode = get_mode(self.mode)
        self.units = v.check_positive_int("units", units, allow_none=True)
        self.activation = v.check_activation(
            "activation", activation if activation is not None else self._mode.default_activation
        )
        self.attention_units = v.check_positive_int(
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
        self.axis = v.check_axis("axis", axis)
        if self.axis != -1 and (self.mode != "concat" or self.units is not None):
            raise ValueError(
                "`axis` only applies to mode='concat' without `units`; projected branches "
                f"and the other modes fuse the last axis. Received: axis={axis!r} with "
                f"mode={mode!r}, units={units!r}"
            )
        self.modality_dropout = v.check_rate("modality_dropout", modality_dropout)
        self.use_bias = v.check_bool("use_bias", use_bias)
        self.seed = v.check_seed("seed", seed)
        if self.modality_dropout:
            self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.projections = []
        self.branch_names = None
        self.supports_masking = True

    @property
    def concat_axis(self) -> int:
        return self.axis if self.mode == "concat" and self.units is None else -1

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

    def build(self, input_shape):
        shapes, self.branch_names = branch_shapes(self, input_shape)
        _check_same_leading_dims(self, shapes, skip_axis=self.concat_axis)
        for s in shapes:
            v.known_dim(self, s, -1)
        features = [s[-1] for s in shapes]
        width = self._mode.projection_width(self, features)
        self._mode.check(self, shapes, features, width)
        if width is not None:
            self.projections = []
            for i, shape in enumerate(shapes):
                projection = self.dense(width, f"projection_{i}", activation=self.activation)
                projection.build(shape)
                self.projections.append(projection)
        self._mode.build(self, shapes, features, width)

    # --------------------------------------------------------------------- call
    def _presence(self, inputs, modality_mask, training):
        """(batch, n) float32 presence of each branch, or None if all are present."""
        n = len(inputs)
        present = None
        if modality_mask is not None:
            if isinstance(modality_mask, dict):
                if self.branch_names is None or sorted(modality_mask) != self.branch_names:
                    raise ValueError(
                        f"Fusion '{self.name}': `modality_mask` keys must be the branch names "
                        f"{self.branch_names}. Received keys: {sorted(modality_mask)}"
                    )
                modality_mask = ops.stack(
                    [ops.reshape(modality_mask[k], (-1,)) for k in self.branch_names], axis=-1
                )
            present = ops.cast(modality_mask, "float32")
            if len(present.shape) != 2 or present.shape[-1] not in (None, n):
                raise ValueError(
                    f"Fusion '{self.name}': `modality_mask` must have shape (batch, {n}). "
                    f"Received: modality_mask.shape={tuple(present.shape)}"
                )
        if self.modality_dropout and training:
            batch = ops.shape(inputs[0])[0]
            keep = keras.random.uniform((batch, n), seed=self.seed_generator)
            keep = ops.cast(keep >= self.modality_dropout, "float32")
            base = present if present is not None else ops.ones_like(keep)
            dropped = base * keep
            # An example must keep a branch: if dropout took them all, keep them all.
            empty = ops.sum(dropped, axis=-1, keepdims=True) == 0
            present = ops.where(empty, base, dropped)
        return present

    def call(self, inputs, mask=None, training=None, modality_mask=None, return_weights=False):
        raw = _as_list(self, inputs)
        self._check_return_weights(return_weights)
        present = self._presence(raw, modality_mask, training)
        if present is not None:
            # A missing branch's values are ignored, whatever they are (NaN included).
            raw = [
                ops.where(branch_presence(present, i, x) > 0, x, ops.zeros_like(x))
                for i, x in enumerate(raw)
            ]
        branches = [p(x) for p, x in zip(self.projections, raw)] if self.projections else raw
        fused, weights = self._mode.fuse(self, branches, raw, present, training)
        if return_weights:
            return fused, ops.cast(weights, self.compute_dtype)
        return fused

    def _check_return_weights(self, return_weights):
        if return_weights and not self._mode.weighs_branches:
            raise ValueError(
                f"Fusion '{self.name}' with mode='{self.mode}' has no per-branch weights; "
                f"return_weights=True needs mode 'weighted', 'gated' or 'attention'"
            )

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        raw, masks = _as_list(self, inputs), _as_list(self, mask)
        if all(m is None for m in masks):
            return None
        rank = len(raw[0].shape)
        if self.mode == "concat" and self.concat_axis % rank != rank - 1:
            # Concatenating along a masked axis (e.g. time) concatenates the masks.
            full = [
                ops.ones(ops.shape(x)[:-1], dtype="bool") if m is None else ops.cast(m, "bool")
                for x, m in zip(raw, masks)
            ]
            return ops.concatenate(full, axis=self.concat_axis % rank)
        present = [ops.cast(m, "bool") for m in masks if m is not None]
        out = present[0]
        for m in present[1:]:
            out = ops.logical_and(out, m)
        return out

    def compute_output_shape(self, input_shape):
        shapes, _ = branch_shapes(self, input_shape)
        return self._mode.output_shape(self, shapes)

    def compute_output_spec(
        self, inputs, mask=None, training=None, modality_mask=None, return_weights=False
    ):
        self._check_return_weights(return_weights)
        shape = keras.tree.map_structure(lambda t: tuple(t.shape), inputs)
        fused = keras.KerasTensor(self.compute_output_shape(shape), dtype=self.compute_dtype)
        if return_weights:
            raw = _as_list(self, inputs)
            return fused, keras.KerasTensor((raw[0].shape[0], len(raw)), dtype=self.compute_dtype)
        return fused

    def get_config(self):
        config = super().get_config()
        activation = keras.activations.serialize(self.activation)
        if activation == keras.activations.serialize(
            keras.activations.get(self._mode.default_activation)
        ):
            activation = None  # the mode's default: one canonical config
        config.update(
            {
                "mode": self.mode,
                "units": self.units,
                "activation": activation,
                "attention_units": self.attention_units,
                "branch_weights": self.branch_weights,
                "axis": self.axis,
                "modality_dropout": self.modality_dropout,
                "use_bias": self.use_bias,
                "seed": self.seed,
            }
        )
        return config
