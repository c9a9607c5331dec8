"""Multi-gate Mixture-of-Experts (MMoE), and the expert blocks other presets share.

`expert_block` and `task_towers` are what the `mmoe`, `ple`, `multitask` and
`crossmodal` presets use to put experts between shared features and per-task heads.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers import (
    MixtureOfExperts,
    MultiTaskHead,
    ProgressiveLayeredExtraction,
    TaskHead,
)
from keras_bigmodel.multitask.losses import masked_crossentropy
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = [
    "EXPERT_KINDS",
    "MASKED_COMPILE",
    "SYNTHETIC_TASKS",
    "expert_block",
    "mmoe",
    "plain_mixture",
    "plain_mmoe",
    "task_specs",
    "task_towers",
]

# The MMoE paper's synthetic benchmark has two tasks on 100 features; as classes here
# (e.g. the sign of each regression target), the documents' softmax heads.
SYNTHETIC_TASKS = {
    "task1": {"units": 2, "activation": "softmax"},
    "task2": {"units": 2, "activation": "softmax"},
}
EXPERT_LAYERS = {"mmoe": MixtureOfExperts, "ple": ProgressiveLayeredExtraction}
EXPERT_KINDS = tuple(EXPERT_LAYERS)
# Missing labels (NaN) are left out of each task's loss by default, so that a task
# labelled on part of the data does not turn the loss into NaN.
MASKED_COMPILE = {
    "optimizer": "adam",
    "loss": masked_crossentropy,
    "metrics": ["accuracy"],
}


def task_specs(tasks) -> dict[str, dict]:
    """`tasks` (as `MultiTaskHead` takes them) normalized to dicts of TaskHead arguments,
    with the same checks and messages as `MultiTaskHead`."""
    if not isinstance(tasks, Mapping) or not tasks:
        raise ValueError(
            f"`tasks` must be a non-empty dict of task specs. Received: tasks={tasks!r}"
        )
    return MultiTaskHead(copy.deepcopy(dict(tasks))).tasks


def expert_block(x, kind: str, tasks, options: Mapping | None, dtype=None, name="experts"):
    """`MixtureOfExperts` (`kind="mmoe"`) or `ProgressiveLayeredExtraction` (`"ple"`) on
    `x`, with `options` (the layer's keyword arguments); returns `{task: features}`."""
    kind = v.check_choice("experts", kind, EXPERT_KINDS)
    options = dict(options or {})
    for key in ("tasks", "name", "dtype"):
        if key in options:
            raise ValueError(
                f"`expert_options` sets the expert layer's arguments but not {key!r}, which the "
                f"preset sets. Received: expert_options={options!r}"
            )
    layer_class = EXPERT_LAYERS[kind]
    allowed = [p for p in layer_class.argument_names() if p != "tasks"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"`expert_options` has keys {unknown} that are not arguments of "
            f"{layer_class.__name__}; allowed: {allowed}. Received: expert_options={options!r}"
        )
    layer = layer_class(list(tasks), dtype=dtype, name=name, **options)
    return layer(x)


def task_towers(features: Mapping, tasks: Mapping, tower_units=(), dtype=None) -> dict:
    """One `TaskHead` per task on its own features (the papers' "towers"): `tower_units`
    are hidden layers added to the heads that do not set `hidden_units` themselves."""
    tower_units = list(v.check_int_tuple("tower_units", tower_units))
    outputs = {}
    for task, spec in task_specs(tasks).items():
        spec = dict(spec)
        if tower_units and not spec.get("hidden_units"):
            spec["hidden_units"] = tower_units
        outputs[task] = TaskHead(dtype=dtype, name=f"tower_{task}", **spec)(features[task])
    return outputs


def plain_mixture(gate, experts, units: int):
    """sum_i gate_i * expert_i with plain Keras layers (no Lambda)."""
    stacked = keras.layers.Concatenate(axis=1)(
        [keras.layers.Reshape((1, units))(e) for e in experts]
    )
    return keras.layers.Dot(axes=(1, 1))([gate, stacked])


def plain_mmoe() -> keras.Model:
    """The default network in plain Keras: 8 experts Dense(16, relu), softmax gates, towers
    Dense(8, relu) -> Dense(2, softmax)."""
    inputs = keras.Input((100,))
    experts = [keras.layers.Dense(16, activation="relu")(inputs) for _ in range(8)]
    outputs = {}
    for task in SYNTHETIC_TASKS:
        gate = keras.layers.Dense(8, activation="softmax")(inputs)
        mixed = plain_mixture(gate, experts, 16)
        tower = keras.layers.Dense(8, activation="relu")(mixed)
        outputs[task] = keras.layers.Dense(2, activation="softmax")(tower)
    return keras.Model(inputs, outputs)


def digits_tasks(images, labels):
    """The digits' pixels, labelled with the digit and its parity (even or odd)."""
    return images, {"digit": labels, "parity": labels % 2}


@preset(
    "mmoe",
    description="Multi-gate Mixture-of-Experts (Ma et al., KDD 2018) for several tasks on one "
    "feature vector: shared experts, one softmax gate per task, a tower per task. For tasks "
    "that are related but not equally (where one shared trunk forces a compromise). "
    "Defaults: Input(100) -> 8 experts Dense(16, relu) -> per-task gates -> towers Dense(8, "
    "relu) -> task1, task2 (2, softmax).",
    # One configuration, with towers, a gate temperature and gate statistics: the layer's
    # own contract cases cover the rest (each preset configuration costs seconds per backend).
    tiny={
        "input_shape": (12,),
        "num_experts": 2,
        "expert_units": (4,),
        "tower_units": (3,),
        "gate_temperature": 2.0,
        "gate_metrics": True,
        "tasks": {
            "task1": {"units": 3, "activation": "softmax"},
            "task2": {"units": 2, "activation": "softmax"},
        },
    },
    data=DataView(
        inputs=(ModelInput("features", "vector"),), target="tasks", digits_view=digits_tasks
    ),
    plain_keras=plain_mmoe,
    compile_defaults=MASKED_COMPILE,
)
def mmoe(
    input_shape=(100,),
    tasks=SYNTHETIC_TASKS,
    num_experts=8,
    expert_units=(16,),
    tower_units=(8,),
    gate_temperature=1.0,
    dropout=0.0,
    gate_metrics=False,
    dtype=None,
    name="mmoe",
) -> keras.Model:
    """Builds `Input -> MixtureOfExperts -> one TaskHead tower per task`.

    `tasks` maps task names to head specs (see `MultiTaskHead`); `tower_units` are
    the hidden layers of each tower. The expert layer is called `"experts"` and the
    towers `"tower_{task}"`; outputs are keyed by task name.
    """
    shape = v.check_shape("input_shape", input_shape, 1, 1)
    dtype = v.check_dtype_policy("dtype", dtype)
    inputs = keras.Input(shape=shape, name="features")
    options = {
        "num_experts": num_experts,
        "expert_units": expert_units,
        "gate_temperature": gate_temperature,
        "dropout": dropout,
        "gate_metrics": gate_metrics,
    }
    mixtures = expert_block(inputs, "mmoe", task_specs(tasks), options, dtype=dtype)
    outputs = task_towers(mixtures, tasks, tower_units, dtype=dtype)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
