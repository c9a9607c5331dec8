"""How each `Fusion` mode combines branches: one small strategy class per mode.

A mode validates the branch shapes, creates the sublayers and weights it needs on the
`Fusion` layer (as attributes of the layer, so saved files keep their layout), and
combines the (projected) branches. Every mode honours `present`, a float tensor
`(batch, branches)` that is 1 where a branch is there and 0 where it is missing or
dropped: missing branches contribute nothing and the remaining ones are re-weighted.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_bigmodel.layers.attention import masked_softmax

__all__ = ["FUSION_MODES", "FusionMode", "branch_presence", "get_mode"]

# Where nothing is present, max-fusion's masked entries stay finite (never -inf * 0).
_MASKED_VALUE = -1e9


def branch_presence(present, i, like):
    """Branch i's presence (column i of the `(batch, branches)` matrix `present`), shaped
    to broadcast against a branch tensor `like`."""
    column = ops.cast(present[:, i], like.dtype)
    return ops.reshape(column, (-1,) + (1,) * (len(like.shape) - 1))


class FusionMode:
    """Base strategy: element-wise fusion of branches of one common width."""

    name = ""
    #: Whether the mode computes a weight per branch (returned with return_weights=True).
    weighs_branches = False
    #: The activation of the projections when the user gives none.
    default_activation = None

    def projection_width(self, layer, features: list[int]) -> int | None:
        """The width every branch is projected to first, or None for no projection."""
        return layer.units

    def check(self, layer, shapes: list[tuple], features: list[int], width: int | None):
        if width is None and len(set(features)) > 1:
            raise ValueError(
                f"Fusion '{layer.name}' with mode='{self.name}' needs branches with the same "
                f"feature size, or `units=` to project each branch to one size. "
                f"Received branch shapes: {shapes}"
            )

    def build(self, layer, shapes: list[tuple], features: list[int], width: int):
        """Creates the mode's own sublayers and weights on `layer`."""

    def fuse(self, layer, branches: list, raw: list, present, training):
        """Returns `(fused, weights)`; `weights` is `(batch, n)` or None."""
        raise NotImplementedError

    def output_shape(self, layer, shapes: list[tuple]) -> tuple:
        return shapes[0][:-1] + (layer.units or shapes[0][-1],)


class Concat(FusionMode):
    """The documents' fusion: branches side by side along `axis`; a missing branch is
    all zeros."""

    name = "concat"

    def check(self, layer, shapes, features, width):
        pass  # any widths; the leading dimensions are checked by Fusion

    def fuse(self, layer, branches, raw, present, training):
        if present is not None:
            branches = [b * branch_presence(present, i, b) for i, b in enumerate(branches)]
        return ops.concatenate(branches, axis=layer.concat_axis), None

    def output_shape(self, layer, shapes):
        if layer.units is not None:
            return shapes[0][:-1] + (layer.units * len(shapes),)
        out = list(shapes[0])
        axis = layer.axis % len(out)
        dims = [s[axis] for s in shapes]
        out[axis] = None if any(d is None for d in dims) else sum(dims)
        return tuple(out)


class Sum(FusionMode):
    name = "sum"

    def fuse(self, layer, branches, raw, present, training):
        if present is not None:
            branches = [b * branch_presence(present, i, b) for i, b in enumerate(branches)]
        out = branches[0]
        for b in branches[1:]:
            out = out + b
        return out, None


class Mean(FusionMode):
    """The average of the branches that are present."""

    name = "mean"

    def fuse(self, layer, branches, raw, present, training):
        total, _ = Sum().fuse(layer, branches, raw, present, training)
        if present is None:
            return total / ops.cast(len(branches), total.dtype), None
        count = ops.maximum(ops.sum(present, axis=-1), 1.0)
        return total / branch_presence(ops.expand_dims(count, -1), 0, total), None


class Max(FusionMode):
    name = "max"

    def fuse(self, layer, branches, raw, present, training):
        if present is None:
            out = branches[0]
            for b in branches[1:]:
                out = ops.maximum(out, b)
            return out, None
        masked = [
            ops.where(branch_presence(present, i, b) > 0, b, ops.cast(_MASKED_VALUE, b.dtype))
            for i, b in enumerate(branches)
        ]
        out = masked[0]
        for b in masked[1:]:
            out = ops.maximum(out, b)
        anything = ops.sum(present, axis=-1, keepdims=True)
        return ops.where(branch_presence(anything, 0, out) > 0, out, ops.zeros_like(out)), None


class Weighted(FusionMode):
    """`sum_i w_i x_i`, `w = softmax(logits)` over the present branches, one learned
    logit per branch."""

    name = "weighted"
    weighs_branches = True

    def check(self, layer, shapes, features, width):
        super().check(layer, shapes, features, width)
        if layer.branch_weights is not None and len(layer.branch_weights) != len(shapes):
            raise ValueError(
                f"Fusion '{layer.name}' got {len(shapes)} branches but "
                f"{len(layer.branch_weights)} branch_weights. "
                f"Received: branch_weights={layer.branch_weights}"
            )

    def build(self, layer, shapes, features, width):
        n = len(shapes)
        initial = layer.branch_weights or [1.0 / n] * n
        layer.branch_logits = layer.add_weight(
            name="branch_logits",
            shape=(n,),
            initializer=keras.initializers.Constant([math.log(w) for w in initial]),
        )

    def fuse(self, layer, branches, raw, present, training):
        stacked = ops.stack(branches, axis=-2)  # (batch, ..., n, width)
        logits = ops.cast(layer.branch_logits, "float32")
        batch = ops.shape(stacked)[0]
        logits = ops.broadcast_to(ops.expand_dims(logits, 0), (batch, len(branches)))
        weights = masked_softmax(logits, None if present is None else present > 0)
        w = ops.cast(weights, stacked.dtype)
        w = ops.reshape(w, (-1,) + (1,) * (len(stacked.shape) - 3) + (len(branches), 1))
        return ops.sum(stacked * w, axis=-2), weights


class Gated(FusionMode):
    """A gated multimodal unit: `h_i = activation(W_i x_i)`, a gate
    `z = softmax_i(G [x_1; ...; x_n])` per feature, output `sum_i z_i h_i`."""

    name = "gated"
    weighs_branches = True
    default_activation = "tanh"

    def projection_width(self, layer, features):
        return layer.units if layer.units is not None else features[0]

    def build(self, layer, shapes, features, width):
        layer.gate = layer.dense(len(shapes) * width, "gate")
        layer.gate.build(shapes[0][:-1] + (sum(features),))

    def fuse(self, layer, branches, raw, present, training):
        if present is not None:
            raw = [x * branch_presence(present, i, x) for i, x in enumerate(raw)]
        stacked = ops.stack(branches, axis=-2)  # (batch, ..., n, width)
        gate = ops.reshape(layer.gate(ops.concatenate(raw, axis=-1)), ops.shape(stacked))
        gate = ops.cast(gate, "float32")
        if present is None:
            z = ops.softmax(gate, axis=-2)
        else:
            keep = ops.reshape(
                present > 0, (-1,) + (1,) * (len(stacked.shape) - 3) + (len(branches),)
            )
            keep = ops.broadcast_to(ops.expand_dims(keep, -1), ops.shape(gate))
            z = ops.swapaxes(
                masked_softmax(ops.swapaxes(gate, -1, -2), ops.swapaxes(keep, -1, -2)), -1, -2
            )
        fused = ops.sum(ops.cast(z, stacked.dtype) * stacked, axis=-2)
        # One weight per branch: the gate averaged over features (and time steps).
        axes = tuple(range(1, len(z.shape) - 2)) + (len(z.shape) - 1,)
        return fused, ops.mean(z, axis=axes)


class Attention(FusionMode):
    """Additive attention over the branches: each (projected) branch is a step of an
    `AttentionLayer`, whose weights say how much each branch contributes."""

    name = "attention"
    weighs_branches = True

    def check(self, layer, shapes, features, width):
        super().check(layer, shapes, features, width)
        if len(shapes[0]) != 2:
            raise ValueError(
                f"Fusion '{layer.name}' with mode='attention' needs rank-2 branches "
                f"(batch, features). Received branch shapes: {shapes}"
            )

    def build(self, layer, shapes, features, width):
        from keras_bigmodel.layers.attention import AttentionLayer

        fused_width = width if width is not None else features[0]
        layer.attention = AttentionLayer(
            layer.attention_units or fused_width,
            name="attention",
            use_bias=layer.use_bias,
            dtype=layer.sublayer_dtype("attention"),
            **layer.dense_option_objects(),
        )
        layer.attention.build((shapes[0][0], len(shapes), fused_width))

    def fuse(self, layer, branches, raw, present, training):
        stacked = ops.stack(branches, axis=-2)  # (batch, n, width)
        mask = None if present is None else present > 0
        return layer.attention(stacked, mask=mask, training=training, return_attention_scores=True)


FUSION_MODES = ("concat", "sum", "mean", "max", "weighted", "gated", "attention")
_MODES = {cls.name: cls for cls in (Concat, Sum, Mean, Max, Weighted, Gated, Attention)}


def get_mode(name: str) -> FusionMode:
    return _MODES[name]()
