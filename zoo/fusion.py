"""Fusion presets: the documents' two-model fusion and cross-modal learning (3.2)."""

from __future__ import annotations

import keras

from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead, TaskHead
from keras_bigmodel.layers.fusion import FUSION_MODES
from zoo._common import augmentation_block, check_dtype, check_name, checks
from zoo.registry import preset


@preset(
    "fusion",
    description="The documents' model fusion: two Input(10) -> Dense(1, sigmoid) each -> "
    "FusionConcat -> (batch, 2).",
    # Two independent sigmoid outputs: each is a binary prediction.
    compile_defaults={"optimizer": "adam", "loss": "binary_crossentropy",
                      "metrics": ["binary_accuracy"]},
)
def fusion(
    input_shape=(10,),
    num_branches=2,
    branch_units=1,
    activation="sigmoid",
    mode="concat",
    dtype=None,
    name="fusion",
) -> keras.Model:
    """Builds `num_branches` one-layer models on separate inputs and fuses their outputs.

    `mode="concat"` uses `FusionConcat` (the documents); any other `Fusion` mode
    ("sum", "mean", "max", "weighted", "gated", "attention") fuses them instead.
    """
    shape = checks.check_shape("input_shape", input_shape, 1)
    num_branches = checks.check_positive_int("num_branches", num_branches)
    if num_branches < 2:
        raise ValueError(f"`num_branches` must be at least 2. Received: num_branches={num_branches}")
    branch_units = checks.check_positive_int("branch_units", branch_units)
    checks.check_activation("activation", activation)
    mode = checks.check_choice("mode", mode, FUSION_MODES)
    dtype = check_dtype(dtype)
    inputs = [keras.Input(shape=shape, name=f"input_{i + 1}") for i in range(num_branches)]
    branches = [
        keras.layers.Dense(branch_units, activation=activation, dtype=dtype, name=f"branch_{i + 1}")(x)
        for i, x in enumerate(inputs)
    ]
    if mode == "concat":
        output = FusionConcat(axis=-1, dtype=dtype, name="fusion")(branches)
    else:
        output = Fusion(mode, dtype=dtype, name="fusion")(branches)
    return keras.Model(inputs, output, name=check_name(name))


@preset(
    "crossmodal",
    description="Cross-modal learning: an image branch (CNN) and a sequence branch (LSTM + "
    "AttentionLayer) fused by Fusion (gated by default), then a softmax head.",
)
def crossmodal(
    image_shape=(32, 32, 3),
    sequence_shape=(16, 8),
    num_classes=10,
    image_filters=16,
    image_units=64,
    sequence_units=32,
    attention_units=16,
    fusion_mode="gated",
    fusion_units=64,
    tasks=None,
    augmentation=None,
    dtype=None,
    name="crossmodal",
) -> keras.Model:
    """Builds a two-modality model with inputs `{"image": ..., "sequence": ...}`.

    The image branch is two convolutions and global pooling; the sequence branch
    an LSTM pooled by an `AttentionLayer`. `Fusion(fusion_mode, units=fusion_units)`
    joins them; a `TaskHead(num_classes, softmax)` predicts, or, with `tasks`, a
    `MultiTaskHead` with one head per task.
    """
    image_shape = checks.check_shape("image_shape", image_shape, 3, 3)
    sequence_shape = checks.check_shape("sequence_shape", sequence_shape, 2, 2, allow_none=True)
    num_classes = checks.check_positive_int("num_classes", num_classes)
    image_filters = checks.check_positive_int("image_filters", image_filters)
    image_units = checks.check_positive_int("image_units", image_units)
    sequence_units = checks.check_positive_int("sequence_units", sequence_units)
    attention_units = checks.check_positive_int("attention_units", attention_units)
    fusion_mode = checks.check_choice("fusion_mode", fusion_mode, FUSION_MODES)
    fusion_units = checks.check_positive_int("fusion_units", fusion_units)
    dtype = check_dtype(dtype)
    if min(image_shape[:2]) < 6:
        raise ValueError(f"`image_shape` must be at least 6x6. Received: image_shape={image_shape!r}")

    image = keras.Input(shape=image_shape, name="image")
    sequence = keras.Input(shape=sequence_shape, name="sequence")
    block = augmentation_block(augmentation)
    x = image if block is None else block(image)
    x = keras.layers.Conv2D(image_filters, 3, activation="relu", dtype=dtype, name="image_conv_1")(x)
    x = keras.layers.MaxPooling2D(2, dtype=dtype, name="image_pool")(x)
    x = keras.layers.Conv2D(2 * image_filters, 3, activation="relu", padding="same", dtype=dtype,
                            name="image_conv_2")(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="image_gap")(x)
    x = keras.layers.Dense(image_units, activation="relu", dtype=dtype, name="image_features")(x)
    s = keras.layers.LSTM(sequence_units, return_sequences=True, dtype=dtype, name="sequence_encoder")(sequence)
    s = AttentionLayer(attention_units, dtype=dtype, name="sequence_attention")(s)
    fused = Fusion(fusion_mode, units=fusion_units, dtype=dtype, name="fusion")([x, s])
    if tasks is None:
        outputs = TaskHead(num_classes, activation="softmax", dtype=dtype, name="predictions")(fused)
    else:
        outputs = MultiTaskHead(tasks, dtype=dtype, name="heads")(fused)
    return keras.Model({"image": image, "sequence": sequence}, outputs, name=check_name(name))
