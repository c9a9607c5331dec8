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


def _sample(tensor, size, rng):
    shape = tuple(4 if i == 0 else (size if d is None else d) for i, d in enumerate(tensor.shape))
    if "int" in str(tensor.dtype):
        return rng.integers(1, 20, size=shape).astype("int32")
    return rng.uniform(size=shape).astype("float32")  # image-like data in [0, 1]


def preset_case(case_id, name, **overrides):
    """A zoo preset as a harness case: inputs sampled from the model's own Input shapes."""
    import zoo

    def build(dtype=None):
        extra = {} if dtype is None else {"dtype": dtype}
        return zoo.build(name, compile=False, **overrides, **extra)

    model = build()
    rng = np.random.default_rng(len(case_id))
    inputs = keras.tree.map_structure(lambda t: _sample(t, 6, rng), model.input)
    has_none = any(d is None for t in keras.tree.flatten(model.input) for d in t.shape[1:])
    alt = keras.tree.map_structure(lambda t: _sample(t, 11, rng), model.input) if has_none else None
    loss = zoo.describe(name)["compile"]["loss"]

    def one_hot(t):
        classes = rng.integers(0, t.shape[-1], size=4)
        return keras.utils.to_categorical(classes, t.shape[-1]).astype("float32")

    targets = keras.tree.map_structure(one_hot, model.output)
    if isinstance(model.output, dict):
        loss = {k: loss for k in model.output}
    # Presets with LSTMs cannot use a pure bfloat16 policy on TensorFlow: the LSTM's
    # orthogonal initializer needs a QR decomposition TF has no bfloat16 kernel for.
    return Case(case_id, build, inputs, alt_inputs=alt, targets=targets, loss=loss,
                learning_rate=1e-3, bfloat16_policy="mixed_bfloat16")


PRESET_CASES = [
    preset_case("preset_cnn", "cnn"),
    preset_case("preset_cnn_augmented_digits", "cnn", input_shape=(8, 8, 1),
                augmentation={"rotation": 0.05, "flip": None, "seed": 1}),
    preset_case("preset_rnn", "rnn"),
    preset_case("preset_attention_rnn", "attention_rnn"),
    preset_case("preset_attention_rnn_masked_any_length", "attention_rnn",
                input_shape=(None, 8), mask_value=0.0, score="scaled_dot"),
    preset_case("preset_attention_rnn_tokens", "attention_rnn", input_shape=(None,),
                vocab_size=50, cell="gru", bidirectional=True),
    preset_case("preset_multitask", "multitask"),
    preset_case("preset_fusion", "fusion"),
    preset_case("preset_fusion_attention", "fusion", mode="attention", branch_units=3),
    preset_case("preset_crossmodal", "crossmodal"),
    preset_case("preset_crossmodal_multitask", "crossmodal", image_shape=(16, 16, 1),
                fusion_mode="attention", tasks={"label": {"units": 4, "activation": "softmax"},
                                               "domain": {"units": 2, "activation": "softmax"}}),
]
