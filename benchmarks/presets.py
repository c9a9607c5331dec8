"""Each zoo preset's training step against the same network written by hand in plain
Keras (no keras_bigmodel), as a user following the documents would write it."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

import zoo
from benchmarks.attention import DocumentsAttentionLayer
from benchmarks.common import fmt_ratio, interleaved, median, ratio


class HandGatedFusion(keras.layers.Layer):
    """A gated multimodal unit for two branches, written directly with keras.ops."""

    def __init__(self, units):
        super().__init__()
        self.units = units
        self.h1 = keras.layers.Dense(units, activation="tanh")
        self.h2 = keras.layers.Dense(units, activation="tanh")
        self.gate = keras.layers.Dense(2 * units)

    def call(self, inputs):
        a, b = inputs
        h = ops.stack([self.h1(a), self.h2(b)], axis=-2)
        z = ops.softmax(
            ops.reshape(self.gate(ops.concatenate([a, b], -1)), (-1, 2, self.units)), axis=-2
        )
        return ops.sum(z * h, axis=-2)


def plain_cnn():
    inputs = keras.Input((64, 64, 3))
    x = keras.layers.Conv2D(32, (3, 3), activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(pool_size=(2, 2))(x)
    x = keras.layers.Flatten()(x)
    x = keras.layers.Dense(128, activation="relu")(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def plain_rnn():
    inputs = keras.Input((8, 8))
    return keras.Model(
        inputs, keras.layers.Dense(10, activation="softmax")(keras.layers.LSTM(50)(inputs))
    )


def plain_attention_rnn():
    inputs = keras.Input((8, 8))
    x = keras.layers.LSTM(50, return_sequences=True)(inputs)
    x = DocumentsAttentionLayer(32)(x)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax")(x))


def plain_multitask():
    inputs = keras.Input((64,))
    x = keras.layers.Dense(128, activation="relu")(inputs)
    return keras.Model(
        inputs,
        {
            "task1": keras.layers.Dense(10, activation="softmax")(x),
            "task2": keras.layers.Dense(5, activation="softmax")(x),
        },
    )


def plain_fusion():
    input1, input2 = keras.Input((10,)), keras.Input((10,))
    dense1 = keras.layers.Dense(1, activation="sigmoid")(input1)
    dense2 = keras.layers.Dense(1, activation="sigmoid")(input2)
    return keras.Model([input1, input2], keras.layers.concatenate([dense1, dense2], axis=-1))


def plain_crossmodal():
    image, sequence = keras.Input((32, 32, 3), name="image"), keras.Input((16, 8), name="sequence")
    x = keras.layers.Conv2D(16, 3, activation="relu")(image)
    x = keras.layers.MaxPooling2D(2)(x)
    x = keras.layers.Conv2D(32, 3, activation="relu", padding="same")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dense(64, activation="relu")(x)
    s = keras.layers.LSTM(32, return_sequences=True)(sequence)
    s = DocumentsAttentionLayer(16)(s)
    fused = HandGatedFusion(64)([x, s])
    outputs = keras.layers.Dense(10, activation="softmax")(fused)
    return keras.Model({"image": image, "sequence": sequence}, outputs)


PLAIN = {
    "cnn": plain_cnn,
    "rnn": plain_rnn,
    "attention_rnn": plain_attention_rnn,
    "multitask": plain_multitask,
    "fusion": plain_fusion,
    "crossmodal": plain_crossmodal,
}


def plain_builder(name: str):
    """The builder of preset `name` written in plain Keras, or None.

    The zoo's registry is the source (`zoo.get_preset(name).plain_keras`, being
    added); until it carries one, this falls back to the `PLAIN` table above. When
    the registry has it, drop the fallback: `return zoo.get_preset(name).plain_keras`.
    """
    get_preset = getattr(zoo, "get_preset", None)
    if get_preset is not None and hasattr(get_preset(name), "plain_keras"):
        return get_preset(name).plain_keras
    return PLAIN.get(name)


def _compiled(model, loss):
    if isinstance(model.output, dict):
        loss = {k: loss for k in model.output}
    model.compile(optimizer="adam", loss=loss)
    return model


def forward_graph_ops(model, x) -> int | None:
    """Operations in the model's traced forward graph (TensorFlow only): a deterministic
    check that the zoo adds no work of its own."""
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    call = tf.autograph.experimental.do_not_convert(lambda v: model(v, training=True))
    spec = keras.tree.map_structure(lambda a: tf.TensorSpec(a.shape, a.dtype), x)
    return len(tf.function(call).get_concrete_function(spec).graph.get_operations())


def _random_batch(model, batch):
    rng = np.random.default_rng(0)
    x = keras.tree.map_structure(
        lambda t: rng.uniform(size=(batch,) + tuple(t.shape[1:])).astype("float32"), model.input
    )
    y = keras.tree.map_structure(
        lambda t: keras.utils.to_categorical(rng.integers(0, t.shape[-1], batch), t.shape[-1]),
        model.output,
    )
    return x, y


def run(quick: bool = False, batch: int = 32) -> list[dict]:
    results = []
    for name in zoo.list_presets():  # every registered preset, from the registry
        plain_fn = plain_builder(name)
        if plain_fn is None:
            results.append({"preset": name, "plain": None})
            continue
        # Both compiled the same way (the preset's loss, no metrics), so that only the
        # networks differ.
        loss = zoo.describe(name)["compile"]["loss"]
        ours = _compiled(zoo.build(name, compile=False), loss)
        plain = _compiled(plain_fn(), loss)
        x, y = _random_batch(ours, batch)
        assert ours.count_params() == plain.count_params(), name
        times = interleaved(
            {
                "zoo": lambda m=ours, x=x, y=y: m.train_on_batch(x, y),
                "plain": lambda m=plain, x=x, y=y: m.train_on_batch(x, y),
            },
            reps=5 if quick else SAMPLES,
            warmup=3,
            min_sample_seconds=0.1,
        )
        results.append(
            {
                "preset": name,
                "parameters": ours.count_params(),
                "seconds": {k: median(v) for k, v in times.items()},
                "zoo_vs_plain": ratio(times, "zoo", "plain"),
                "forward_graph_ops": {
                    "zoo": forward_graph_ops(ours, x),
                    "plain": forward_graph_ops(plain, x),
                },
            }
        )
    return results


SAMPLES = 30  # a 2% target needs more on an idle machine (80 in the first reference run)


def rows(results):
    return [
        [
            r["preset"],
            f"{r['parameters']:,}",
            f"{r['seconds']['zoo'] * 1e3:.2f}",
            f"{r['seconds']['plain'] * 1e3:.2f}",
            fmt_ratio(r["zoo_vs_plain"]),
            "{zoo} / {plain}".format(**r["forward_graph_ops"]),
        ]
        if "seconds" in r
        else [r["preset"], "-", "-", "-", "no plain-Keras version", "-"]
        for r in results
    ]


HEADERS = [
    "preset",
    "parameters",
    "zoo ms/step",
    "plain ms/step",
    "zoo/plain",
    "graph ops zoo / plain",
]
