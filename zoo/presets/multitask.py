"""The documents' multi-task model (their section 2.3)."""

from __future__ import annotations

import copy

import keras
import numpy as np

from keras_bigmodel import validation as v
from keras_bigmodel.layers import MultiTaskHead
from zoo.presets.mmoe import EXPERT_KINDS, expert_block, task_towers
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["DOCUMENT_TASKS", "multitask", "plain_multitask"]

DOCUMENT_TASKS = {
    "task1": {"units": 10, "activation": "softmax"},
    "task2": {"units": 5, "activation": "softmax"},
}


def plain_multitask() -> keras.Model:
    """The documents' network in plain Keras."""
    inputs = keras.Input((64,))
    x = keras.layers.Dense(128, activation="relu")(inputs)
    return keras.Model(
        inputs,
        {
            "task1": keras.layers.Dense(10, activation="softmax")(x),
            "task2": keras.layers.Dense(5, activation="softmax")(x),
        },
    )


def digits_tasks(images: np.ndarray, labels: np.ndarray):
    """The digits' pixels, labelled with the digit and its parity (even or odd)."""
    return images, {"digit": labels, "parity": labels % 2}


@preset(
    "multitask",
    description="The documents' multi-task model: Input(64) -> Dense(128, relu) -> heads task1 "
    "(10, softmax) and task2 (5, softmax), outputs keyed by task name.",
    tiny={
        "input_shape": (12,),
        "trunk_units": (8,),
        "tasks": {
            "task1": {"units": 3, "activation": "softmax"},
            "task2": {"units": 2, "activation": "softmax"},
        },
    },
    variants={
        "dropout_hidden_heads": {
            "dropout": 0.1,
            "tasks": {
                "digit": {"units": 3, "activation": "softmax", "hidden_units": [4]},
                "parity": {"units": 2, "activation": "softmax"},
            },
        },
        "ple_experts": {
            "experts": "ple",
            "expert_options": {"num_levels": 2, "gate_temperature": 0.5},
        },
    },
    data=DataView(
        inputs=(ModelInput("features", "vector"),), target="tasks", digits_view=digits_tasks
    ),
    plain_keras=plain_multitask,
)
def multitask(
    input_shape=(64,),
    trunk_units=(128,),
    tasks=DOCUMENT_TASKS,
    num_classes=None,
    dropout=0.0,
    experts=None,
    expert_options=None,
    dtype=None,
    name="multitask",
) -> keras.Model:
    """Builds a shared trunk with one `TaskHead` per task (a `MultiTaskHead`).

    `tasks` maps task names to head specs (see `MultiTaskHead`); `num_classes`
    is a shortcut that changes the units of named tasks, e.g.
    `num_classes={"task1": 10, "task2": 2}`.

    `experts="mmoe"` or `"ple"` replaces the shared trunk by a `MixtureOfExperts`
    or a `ProgressiveLayeredExtraction` layer (called `"experts"`) whose experts
    have `trunk_units` layers (and `dropout`), with one gate per task; each task's
    head (`"tower_{task}"`) reads its own mixture. `expert_options` passes further
    arguments to that layer, e.g. `{"num_experts": 8}` or `{"num_levels": 2}`.
    """
    shape = v.check_shape("input_shape", input_shape, 1, 1)
    trunk_units = v.check_int_tuple("trunk_units", trunk_units)
    dropout = v.check_rate("dropout", dropout)
    dtype = v.check_dtype_policy("dtype", dtype)
    if not isinstance(tasks, dict) or not tasks:
        raise ValueError(
            f"`tasks` must be a non-empty dict of task specs. Received: tasks={tasks!r}"
        )
    tasks = copy.deepcopy(tasks)
    if num_classes is not None:
        if not isinstance(num_classes, dict) or not set(num_classes) <= set(tasks):
            raise ValueError(
                "`num_classes` must be a dict mapping task names to class counts, for tasks "
                f"among {sorted(tasks)}. Received: num_classes={num_classes!r}"
            )
        for task, units in num_classes.items():
            spec = tasks[task] if isinstance(tasks[task], dict) else {"units": tasks[task]}
            tasks[task] = {**spec, "units": v.check_positive_int(f"num_classes['{task}']", units)}

    inputs = keras.Input(shape=shape, name="features")
    if experts is not None or expert_options is not None:
        if experts is None:
            raise ValueError(
                "`expert_options` needs `experts='mmoe'` or `'ple'`. "
                f"Received: expert_options={expert_options!r}"
            )
        experts = v.check_choice("experts", experts, EXPERT_KINDS)
        if expert_options is not None and not isinstance(expert_options, dict):
            raise ValueError(
                f"`expert_options` must be a dict. Received: expert_options={expert_options!r}"
            )
        if not trunk_units:
            raise ValueError("`trunk_units` must give the experts' layer sizes with `experts`")
        options = {"expert_units": trunk_units, "dropout": dropout, **(expert_options or {})}
        mixtures = expert_block(inputs, experts, tasks, options, dtype=dtype)
        outputs = task_towers(mixtures, tasks, dtype=dtype)
        return keras.Model(inputs, outputs, name=v.check_name("name", name))
    x = inputs
    for i, width in enumerate(trunk_units):
        x = keras.layers.Dense(width, activation="relu", dtype=dtype, name=f"trunk_{i}")(x)
        if dropout:
            x = keras.layers.Dropout(dropout, dtype=dtype, name=f"trunk_dropout_{i}")(x)
    outputs = MultiTaskHead(tasks, dtype=dtype, name="heads")(x)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
