"""The contract cases: every layer configuration worth proving, as harness `Case`s."""

from __future__ import annotations

import keras
import numpy as np

from harness import Case
from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead, TaskHead

UNDER_TEST = "under_test"


def _data(*shapes, seed=0):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s).astype("float32") for s in shapes]
    return arrays[0] if len(arrays) == 1 else arrays


def layer_case(case_id, make_layer, input_shapes, batch=4, alt_sizes=None, masking=False,
               call_kwargs=None, quantizable=True):
    """A case that puts `make_layer(dtype=...)` on `keras.Input`s of `input_shapes`
    (without batch; `None` marks a variable dimension, filled with 6 in the sample
    inputs and with `alt_sizes` in the alternative ones)."""

    def concrete(shapes, size):
        return [(batch,) + tuple(size if d is None else d for d in s) for s in shapes]

    arrays = _data(*concrete(input_shapes, 6), seed=len(case_id))
    arrays = arrays if isinstance(arrays, list) else [arrays]
    if masking:  # pad the tail of some sequences with zeros, which Masking masks out
        for a in arrays:
            a[1, 4:] = 0.0
            a[2, 1:] = 0.0
    inputs = arrays[0] if len(arrays) == 1 else arrays
    has_none = any(d is None for s in input_shapes for d in s)
    alt = _data(*concrete(input_shapes, alt_sizes or 9), seed=1) if has_none else None

    def build(dtype=None):
        symbols = [keras.Input(shape=s) for s in input_shapes]
        x = symbols
        if masking:
            x = [keras.layers.Masking(0.0)(t) for t in x]
        layer = make_layer(dtype=dtype, name=UNDER_TEST)
        out = layer(x[0] if len(x) == 1 else x, **(call_kwargs or {}))
        return keras.Model(symbols[0] if len(symbols) == 1 else symbols, out)

    return Case(case_id, build, inputs, alt_inputs=alt, layer_name=UNDER_TEST,
                quantizable=quantizable)


LAYER_CASES = [
    layer_case("attention_additive", lambda **kw: AttentionLayer(8, **kw), [(None, 5)]),
    layer_case("attention_additive_masked", lambda **kw: AttentionLayer(8, **kw), [(None, 5)],
               masking=True),
    layer_case("attention_dot", lambda **kw: AttentionLayer(6, score="dot", **kw), [(None, 5)]),
    layer_case("attention_scaled_dot_dropout",
               lambda **kw: AttentionLayer(6, score="scaled_dot", dropout=0.2, seed=3, **kw),
               [(None, 5)], masking=True),
    layer_case("attention_with_scores", lambda **kw: AttentionLayer(8, **kw), [(None, 5)],
               call_kwargs={"return_attention_scores": True}),
    layer_case("task_head", lambda **kw: TaskHead(3, activation="softmax", **kw), [(12,)]),
    layer_case("task_head_hidden_dropout",
               lambda **kw: TaskHead(4, hidden_units=(8, 6), dropout=0.1, seed=1, **kw),
               [(None, 12)]),
    layer_case("multi_task_head",
               lambda **kw: MultiTaskHead(
                   {"digit": {"units": 3, "activation": "softmax", "hidden_units": [5]},
                    "parity": 2}, **kw),
               [(12,)]),
    layer_case("fusion_concat", lambda **kw: FusionConcat(**kw), [(6,), (4,)], quantizable=False),
    layer_case("fusion_concat_sequences", lambda **kw: FusionConcat(axis=-1, **kw),
               [(None, 3), (None, 2)], masking=True, quantizable=False),
    layer_case("fusion_concat_projected", lambda **kw: Fusion("concat", units=4, **kw),
               [(6,), (3,)]),
    layer_case("fusion_sum", lambda **kw: Fusion("sum", **kw), [(5,), (5,), (5,)],
               quantizable=False),
    layer_case("fusion_mean", lambda **kw: Fusion("mean", **kw), [(None, 5), (None, 5)],
               masking=True, quantizable=False),
    layer_case("fusion_max_projected", lambda **kw: Fusion("max", units=4, activation="relu", **kw),
               [(6,), (3,)]),
    layer_case("fusion_weighted",
               lambda **kw: Fusion("weighted", branch_weights=[3.0, 1.0], **kw), [(5,), (5,)],
               quantizable=False),
    layer_case("fusion_gated", lambda **kw: Fusion("gated", units=4, **kw), [(6,), (3,)]),
    layer_case("fusion_gated_sequences", lambda **kw: Fusion("gated", **kw),
               [(None, 4), (None, 4)]),
    layer_case("fusion_attention", lambda **kw: Fusion("attention", units=5, **kw),
               [(6,), (3,), (4,)]),
]
