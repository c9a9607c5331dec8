"""Named task heads on a shared trunk (the documents' multi-task model, section 2.3)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import keras

from keras_bigmodel import validation as v
from keras_bigmodel.layers.base import DENSE_OPTIONS, CompositeLayer
from keras_bigmodel.layers.task_head import TaskHead

__all__ = ["TASK_SPEC_KEYS", "MultiTaskHead", "check_task_name", "task_outputs"]

_TASK_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
# The configuration keys of a TaskHead that a `MultiTaskHead` task spec may hold.
TASK_SPEC_KEYS = (
    "units",
    "activation",
    "hidden_units",
    "hidden_activation",
    "dropout",
    "use_bias",
    *DENSE_OPTIONS,
    "seed",
)
_BASE_LAYER_KEYS = ("name", "trainable", "dtype")


def check_task_name(name: Any, tasks: Any = None) -> str:
    """A task name: letters, digits, `_`, `.` or `-`, starting with a letter or `_`."""
    if not isinstance(name, str) or not _TASK_NAME.match(name):
        where = f" in tasks={list(tasks)!r}" if tasks is not None else ""
        raise ValueError(
            "Task names must be strings of letters, digits, '_', '.' or '-' that start "
            f"with a letter or '_'. Received: task name {name!r}{where}"
        )
    return name


def _normalize_task_spec(name: str, spec: Any) -> dict:
    """A task spec is `units` (an int) or a dict of TaskHead arguments."""
    if isinstance(spec, TaskHead):
        raise ValueError(
            f"`tasks['{name}']` must be a dict of TaskHead arguments, not a TaskHead "
            f"instance, so that the layer can be rebuilt from its config. "
            f"Received: tasks['{name}']={spec!r}"
        )
    if isinstance(spec, int) and not isinstance(spec, bool):
        return {"units": spec}
    if not isinstance(spec, Mapping):
        raise ValueError(
            f"`tasks['{name}']` must be a positive integer (the task's units) or a dict "
            f"of TaskHead arguments such as {{'units': 10, 'activation': 'softmax'}}. "
            f"Received: tasks['{name}']={spec!r}"
        )
    unknown = sorted(set(spec) - set(TASK_SPEC_KEYS))
    if unknown:
        raise ValueError(
            f"`tasks['{name}']` has unknown keys {unknown}; allowed keys are "
            f"{list(TASK_SPEC_KEYS)}. Received: tasks['{name}']={dict(spec)!r}"
        )
    if "units" not in spec:
        raise ValueError(
            f"`tasks['{name}']` must give 'units'. Received: tasks['{name}']={dict(spec)!r}"
        )
    return dict(spec)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class MultiTaskHead(CompositeLayer):
    """Named task heads on a shared trunk; returns a dict `{task_name: output}`.

    This is the documents' multi-task model (section 2.3) as one layer: the
    trunk's features feed one `TaskHead` per task. Because the output is a dict
    keyed by task name, a functional model built on it has named outputs, and
    `compile` takes per-task losses, loss weights and metrics by those names.

    Args:
        tasks: Dict mapping each task name to its head: either the number of
            units, or a dict of `TaskHead` arguments (`units`, `activation`,
            `hidden_units`, `hidden_activation`, `dropout`, `use_bias`,
            initializers, regularizers, `seed`). Task names start with a letter
            or underscore and hold letters, digits, `_`, `.` and `-`.
        **kwargs: Base layer arguments (`name`, `dtype`, `trainable`).

    Call arguments:
        inputs: The shared features, shape `(batch, ..., features)`, or a dict
            of features keyed by task name (e.g. the outputs of `MixtureOfExperts`
            or `ProgressiveLayeredExtraction`): each head then reads its own.
        training: Whether dropout in the heads is active.

    Returns:
        A dict mapping each task name to a tensor of shape
        `(batch, ..., units_of_that_task)`.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead

    inputs = keras.Input(shape=(64,))
    trunk = keras.layers.Dense(128, activation="relu")(inputs)
    outputs = MultiTaskHead({
        "task1": {"units": 10, "activation": "softmax"},
        "task2": {"units": 5, "activation": "softmax"},
    })(trunk)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss={"task1": "categorical_crossentropy", "task2": "categorical_crossentropy"},
        loss_weights={"task1": 1.0, "task2": 0.5},
        metrics={"task1": ["accuracy"], "task2": ["accuracy"]},
    )
    ```

    Reference:
        Ruder, "An Overview of Multi-Task Learning in Deep Neural Networks",
        arXiv:1706.05098, 2017.
    """

    def __init__(self, tasks: Mapping[str, Any], **kwargs):
        super().__init__(**kwargs)
        if not isinstance(tasks, Mapping) or not tasks:
            raise ValueError(
                "`tasks` must be a non-empty dict mapping task names to head specs, e.g. "
                "{'task1': {'units': 10, 'activation': 'softmax'}}. "
                f"Received: tasks={tasks!r}"
            )
        self.tasks = {}
        for name, spec in tasks.items():
            check_task_name(name, tasks)
            spec = _normalize_task_spec(name, spec)
            TaskHead(**spec)  # validates the spec now, with TaskHead's own messages
            self.tasks[name] = spec
        self.task_names = tuple(self.tasks)
        self.supports_masking = True

    def _per_task(self, value) -> dict:
        """`{task: value}`: a dict keyed by task (one input per task, e.g. the outputs of
        `MixtureOfExperts`) is checked against the task names; anything else is shared."""
        if isinstance(value, dict):
            if sorted(value) != sorted(self.task_names):
                raise ValueError(
                    f"MultiTaskHead '{self.name}' takes one tensor, or a dict keyed by its "
                    f"tasks {sorted(self.task_names)}. Received a dict keyed by {sorted(value)}"
                )
            return value
        return dict.fromkeys(self.task_names, value)

    def build(self, input_shape):
        shapes = {name: tuple(s) for name, s in self._per_task(input_shape).items()}
        for shape in shapes.values():
            v.check_rank(self, shape, 2)
            v.known_dim(self, shape, -1)
        self.heads = {
            name: TaskHead(name=name, dtype=self.sublayer_dtype(name), **spec)
            for name, spec in self.tasks.items()
        }
        for name, head in self.heads.items():
            head.build(shapes[name])

    def call(self, inputs, training=None):
        inputs = self._per_task(inputs)
        return {name: head(inputs[name], training=training) for name, head in self.heads.items()}

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return self._per_task(mask)

    def compute_output_shape(self, input_shape):
        shapes = {name: tuple(s) for name, s in self._per_task(input_shape).items()}
        for shape in shapes.values():
            v.check_rank(self, shape, 2)
        return {name: shapes[name][:-1] + (spec["units"],) for name, spec in self.tasks.items()}

    def get_config(self):
        config = super().get_config()
        tasks = {}
        for name, spec in self.tasks.items():
            head_config = TaskHead(**spec).get_config()
            tasks[name] = {k: v_ for k, v_ in head_config.items() if k not in _BASE_LAYER_KEYS}
        config["tasks"] = tasks
        return config


def task_outputs(outputs: Mapping) -> dict:
    """`{task: tensor}` outputs passed through identity layers named by task.

    Keras names a functional model's outputs after the layers that produce them
    (`Functional.output_names`), so the dict a `MultiTaskHead` returns gives
    `["multi_task_head", "multi_task_head"]`. Passing it through this function
    gives each output its own layer, named by its task, so
    `keras.Model(inputs, task_outputs(heads)).output_names` are the task names
    (and survive saving, as plain `keras.layers.Identity` layers).

    Args:
        outputs: A dict of symbolic tensors keyed by task name.

    Returns:
        A dict with the same keys.

    Raises:
        ValueError: If `outputs` is not a non-empty dict with task-name keys.

    Example:

    ```python
    import keras
    from keras_bigmodel.layers import MultiTaskHead
    from keras_bigmodel.layers.multi_task_head import task_outputs

    inputs = keras.Input((8,))
    heads = MultiTaskHead({"age": 1, "kind": {"units": 3, "activation": "softmax"}})(inputs)
    keras.Model(inputs, task_outputs(heads)).output_names      # ['age', 'kind']
    ```
    """
    if not isinstance(outputs, Mapping) or not outputs:
        raise ValueError(
            f"`outputs` must be a non-empty dict of tensors keyed by task. Received: {outputs!r}"
        )
    return {
        check_task_name(task, outputs): keras.layers.Identity(name=task)(tensor)
        for task, tensor in outputs.items()
    }
