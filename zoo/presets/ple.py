"""Progressive Layered Extraction (PLE): task-specific and shared experts, in levels."""

from __future__ import annotations

import keras

from keras_bigmodel import validation as v
from zoo.presets.mmoe import (
    MASKED_COMPILE,
    SYNTHETIC_TASKS,
    digits_tasks,
    expert_block,
    plain_mixture,
    task_specs,
    task_towers,
)
from zoo.registry import preset
from zoo.views import DataView, ModelInput

__all__ = ["plain_ple", "ple"]


def plain_ple() -> keras.Model:
    """The default network in plain Keras: two CGC levels, each with 2 experts Dense(16,
    relu) per task and 2 shared, softmax gates, then towers Dense(8, relu) -> Dense(2,
    softmax)."""
    inputs = keras.Input((100,))
    tasks = list(SYNTHETIC_TASKS)
    q = dict.fromkeys(tasks, inputs)
    shared_in = inputs
    for level in range(2):
        own = {
            t: [keras.layers.Dense(16, activation="relu")(q[t]) for _ in range(2)] for t in tasks
        }
        shared = [keras.layers.Dense(16, activation="relu")(shared_in) for _ in range(2)]
        new_q = {}
        for t in tasks:
            gate = keras.layers.Dense(4, activation="softmax")(q[t])
            new_q[t] = plain_mixture(gate, own[t] + shared, 16)
        if level == 0:
            every = [h for t in tasks for h in own[t]] + shared
            gate = keras.layers.Dense(len(every), activation="softmax")(shared_in)
            shared_in = plain_mixture(gate, every, 16)
        q = new_q
    outputs = {}
    for t in tasks:
        tower = keras.layers.Dense(8, activation="relu")(q[t])
        outputs[t] = keras.layers.Dense(2, activation="softmax")(tower)
    return keras.Model(inputs, outputs)


@preset(
    "ple",
    description="Progressive Layered Extraction (Tang et al., RecSys 2020) for several tasks "
    "on one feature vector: each level has experts of each task and shared experts, each "
    "task's gate mixes its own and the shared ones, so tasks that conflict do not pull on one "
    "set of weights (less negative transfer than MMoE). Defaults: Input(100) -> 2 levels of "
    "2 experts per task + 2 shared, Dense(16, relu) -> towers Dense(8, relu) -> task1, task2 "
    "(2, softmax).",
    # One configuration, two levels with towers: the layer's own contract cases cover the
    # rest (each preset configuration costs seconds per backend).
    tiny={
        "input_shape": (12,),
        "num_task_experts": 1,
        "num_shared_experts": 1,
        "num_levels": 2,
        "expert_units": (4,),
        "tower_units": (3,),
        "tasks": {
            "task1": {"units": 3, "activation": "softmax"},
            "task2": {"units": 2, "activation": "softmax"},
        },
    },
    data=DataView(
        inputs=(ModelInput("features", "vector"),), target="tasks", digits_view=digits_tasks
    ),
    plain_keras=plain_ple,
    compile_defaults=MASKED_COMPILE,
)
def ple(
    input_shape=(100,),
    tasks=SYNTHETIC_TASKS,
    num_task_experts=2,
    num_shared_experts=2,
    num_levels=2,
    expert_units=(16,),
    tower_units=(8,),
    gate_temperature=1.0,
    dropout=0.0,
    gate_metrics=False,
    dtype=None,
    name="ple",
) -> keras.Model:
    """Builds `Input -> ProgressiveLayeredExtraction -> one TaskHead tower per task`.

    `tasks` maps task names to head specs (see `MultiTaskHead`); `tower_units` are
    the hidden layers of each tower. The expert layer is called `"experts"` and the
    towers `"tower_{task}"`; outputs are keyed by task name.
    """
    shape = v.check_shape("input_shape", input_shape, 1, 1)
    dtype = v.check_dtype_policy("dtype", dtype)
    inputs = keras.Input(shape=shape, name="features")
    options = {
        "num_task_experts": num_task_experts,
        "num_shared_experts": num_shared_experts,
        "num_levels": num_levels,
        "expert_units": expert_units,
        "gate_temperature": gate_temperature,
        "dropout": dropout,
        "gate_metrics": gate_metrics,
    }
    mixtures = expert_block(inputs, "ple", task_specs(tasks), options, dtype=dtype)
    outputs = task_towers(mixtures, tasks, tower_units, dtype=dtype)
    return keras.Model(inputs, outputs, name=v.check_name("name", name))
