"""Cross-modal learning (the documents' trend 3.2): an image and a sequence, fused."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers import AttentionLayer, Fusion, MultiTaskHead, TaskHead
from keras_bigmodel.layers.fusion_modes import FUSION_MODES
from zoo.presets._blocks import augmentation_block
from zoo.presets._plain import DocumentsAttentionLayer, HandGatedFusion
from zoo.presets.mmoe import EXPERT_KINDS, expert_block, task_towers
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["crossmodal", "plain_crossmodal"]


def plain_crossmodal() -> keras.Model:
    """The default network in plain Keras, with hand-written attention and gating."""
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


@preset(
    "crossmodal",
    description="Cross-modal learning: an image branch (CNN) and a sequence branch (LSTM + "
    "AttentionLayer) fused by Fusion (gated by default), then a softmax head.",
    tiny={
        "image_shape": (8, 8, 1),
        "sequence_shape": (None, 4),
        "num_classes": 3,
        "image_filters": 2,
        "image_units": 6,
        "sequence_units": 5,
        "attention_units": 3,
        "fusion_units": 6,
    },
    variants={
        "attention_tasks_dropout": {
            "fusion_mode": "attention",
            "modality_dropout": 0.3,
            "tasks": {
                "label": {"units": 4, "activation": "softmax"},
                "domain": {"units": 2, "activation": "softmax"},
            },
        },
    },
    data=DataView(
        inputs=(
            ModelInput("image", "image", "image_shape"),
            ModelInput("sequence", "sequence", "sequence_shape"),
        )
    ),
    plain_keras=plain_crossmodal,
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
    modality_dropout=0.0,
    tasks=None,
    experts=None,
    expert_options=None,
    augmentation=None,
    dtype=None,
    name="crossmodal",
) -> keras.Model:
    """Builds a two-modality model with inputs `{"image": ..., "sequence": ...}`.

    The image branch is two convolutions and global pooling; the sequence branch
    an LSTM pooled by an `AttentionLayer`. `Fusion(fusion_mode, units=fusion_units)`
    joins them (with `modality_dropout`, whole modalities are dropped in training
    so that the model copes when one is missing); a `TaskHead(num_classes,
    softmax)` predicts, or, with `tasks`, a `MultiTaskHead` with one head per task.

    With `tasks`, `experts="mmoe"` or `"ple"` puts a `MixtureOfExperts` or a
    `ProgressiveLayeredExtraction` layer (`"experts"`, experts of `fusion_units`
    units) between the fused features and the heads (`"tower_{task}"`), so that
    each task draws on the modalities' features through its own gate;
    `expert_options` passes further arguments to that layer.
    """
    image_shape = v.check_shape("image_shape", image_shape, 3, 3)
    sequence_shape = v.check_shape("sequence_shape", sequence_shape, 2, 2, allow_none=True)
    num_classes = v.check_positive_int("num_classes", num_classes)
    image_filters = v.check_positive_int("image_filters", image_filters)
    image_units = v.check_positive_int("image_units", image_units)
    sequence_units = v.check_positive_int("sequence_units", sequence_units)
    attention_units = v.check_positive_int("attention_units", attention_units)
    fusion_mode = v.check_choice("fusion_mode", fusion_mode, FUSION_MODES)
    fusion_units = v.check_positive_int("fusion_units", fusion_units)
    dtype = v.check_dtype_policy("dtype", dtype)
    if experts is not None or expert_options is not None:
        if experts is None or tasks is None:
            raise ValueError(
                "`experts` ('mmoe' or 'ple') needs `tasks`, and `expert_options` needs "
                f"`experts`. Received: experts={experts!r}, expert_options={expert_options!r}, "
                f"tasks={tasks!r}"
            )
        experts = v.check_choice("experts", experts, EXPERT_KINDS)
        if expert_options is not None and not isinstance(expert_options, dict):
            raise ValueError(
                f"`expert_options` must be a dict. Received: expert_options={expert_options!r}"
            )
    if min(image_shape[:2]) < 6:
        raise ValueError(
            f"`image_shape` must be at least 6x6. Received: image_shape={image_shape!r}"
        )

    image = keras.Input(shape=image_shape, name="image")
    sequence = keras.Input(shape=sequence_shape, name="sequence")
    block = augmentation_block(augmentation)
    x = image if block is None else block(image)
    x = keras.layers.Conv2D(image_filters, 3, activation="relu", dtype=dtype, name="image_conv_1")(
        x
    )
    x = keras.layers.MaxPooling2D(2, dtype=dtype, name="image_pool")(x)
    x = keras.layers.Conv2D(
        2 * image_filters, 3, activation="relu", padding="same", dtype=dtype, name="image_conv_2"
    )(x)
    x = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="image_gap")(x)
    x = keras.layers.Dense(image_units, activation="relu", dtype=dtype, name="image_features")(x)
    s = keras.layers.LSTM(
        sequence_units, return_sequences=True, dtype=dtype, name="sequence_encoder"
    )(sequence)
    s = AttentionLayer(attention_units, dtype=dtype, name="sequence_attention")(s)
    fused = Fusion(
        fusion_mode,
        units=fusion_units,
        modality_dropout=modality_dropout,
        dtype=dtype,
        name="fusion",
    )([x, s])
    if experts is not None:
        options = {"expert_units": (fusion_units,), **(expert_options or {})}
        mixtures = expert_block(fused, experts, tasks, options, dtype=dtype)
        outputs = task_towers(mixtures, tasks, dtype=dtype)
    elif tasks is None:
        outputs = TaskHead(num_classes, activation="softmax", dtype=dtype, name="predictions")(
            fused
        )
    else:
        outputs = MultiTaskHead(tasks, dtype=dtype, name="heads")(fused)
    return keras.Model(
        {"image": image, "sequence": sequence}, outputs, name=v.check_name("name", name)
    )
