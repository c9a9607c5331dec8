"""`PresetModel`: a functional model that knows which preset built it.

The zoo's presets return a `PresetModel`. It is a plain functional `keras.Model`
with three additions:

- **Provenance in the file.** Its config carries `preset`: the preset's name, the
  config that built it and the keras-bigmodel version, plus what was done to it
  since (int8 quantization, found from the layers themselves). The `.keras` file
  therefore says which preset it is; a copy, a quantized model, a reloaded model
  and an ensemble member keep it (`provenance(model)` reads it back).
- **Outputs named by task.** A dict of outputs (e.g. from `MultiTaskHead`) is
  reported by task name in `output_names`, not by the name of the layer that
  produced them (Keras names outputs by layer, so a `MultiTaskHead` called
  "heads" gives `['heads', 'heads']` in a plain `keras.Model`).
- **Label checks.** `fit`, `evaluate`, `train_on_batch` and `test_on_batch` refuse
  a label dict whose keys are not the output names, listing both sets (plain Keras
  fails with "could not convert string to float").

It is registered with Keras under `keras_bigmodel>PresetModel`, so its files load
with plain `keras.saving.load_model` once `keras_bigmodel` is imported.
"""

from __future__ import annotations

import json
from typing import Any

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel.version import __version__

__all__ = ["PresetModel", "provenance"]


def _json_safe(value: Any, what: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as e:
        raise ValueError(f"`{what}` must be JSON-serializable: {e}") from None


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class PresetModel(keras.Model):
    """A functional `keras.Model` that records the preset it was built from.

    Args:
        inputs: As for a functional `keras.Model`.
        outputs: As for a functional `keras.Model`; a dict of outputs names them.
        preset: A dict with at least `"name"` (the preset) and `"config"` (the
            arguments it was built with), JSON-serializable. `zoo.build` fills it.
        **kwargs: `name`, `trainable`, as for `keras.Model`.

    Example:

    ```python
    import zoo
    from keras_bigmodel.models import provenance

    model = zoo.build("multitask")
    model.output_names                  # ['task1', 'task2']
    provenance(model)["name"]           # 'multitask'
    ```
    """

    def __init__(self, *args, preset: dict | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if preset is not None:
            if not isinstance(preset, dict) or not isinstance(preset.get("name"), str):
                raise ValueError(
                    "`preset` must be a dict with a 'name' string and a 'config' dict. "
                    f"Received: preset={preset!r}"
                )
            preset = _json_safe(preset, "preset")
            preset.setdefault("config", {})
            preset.setdefault("keras_bigmodel", __version__)
        # Kept as JSON text: Keras would track a dict attribute (and deep-copy the model
        # with it), and the record is read-only anyway.
        self._preset_json = None if preset is None else json.dumps(preset)
        if isinstance(self.output, dict):
            self.output_names = list(self.output)

    @property
    def preset(self) -> dict | None:
        """The preset record given at construction (a fresh copy), or None."""
        return None if self._preset_json is None else json.loads(self._preset_json)

    # ------------------------------------------------------------------ config
    def provenance(self) -> dict | None:
        """The preset record as it would be saved now (with any quantization)."""
        record = self.preset
        if record is None:
            return None
        modes = sorted(
            {
                layer.quantization_mode
                for layer in _compat.all_layers(self)
                if layer.quantization_mode
            }
        )
        if modes:
            record["quantization"] = modes
        else:
            record.pop("quantization", None)
        return record

    def get_config(self):
        config = super().get_config()
        if self.preset is not None:
            config["preset"] = self.provenance()
        return config

    def summary(self, *args, **kwargs):
        """Keras's summary, then the outputs by name (a dict-output layer such as
        `MultiTaskHead` appears in Keras's table as one row with a list of shapes)."""
        result = super().summary(*args, **kwargs)
        if isinstance(self.output, dict):
            print_fn = kwargs.get("print_fn") or (args[2] if len(args) > 2 else None) or print
            width = max(len(name) for name in self.output)
            lines = [" Outputs:"] + [
                f"   {name:<{width}}  {tuple(t.shape)}  from {_compat.producer(t).name}"
                for name, t in self.output.items()
            ]
            for line in lines:
                print_fn(line)
        return result

    # ------------------------------------------------------------------ labels
    def _check_labels(self, y, where: str) -> None:
        self._check_missing_labels(y, where)
        outputs = self.output
        if not isinstance(y, dict) or not isinstance(outputs, dict):
            return
        if sorted(y) != sorted(outputs):
            raise ValueError(
                f"{where}: the label dict's keys {sorted(y)} do not match the model's "
                f"outputs {sorted(outputs)} (missing: {sorted(set(outputs) - set(y))}, "
                f"unknown: {sorted(set(y) - set(outputs))}); give one label array per "
                f"output, keyed by its name"
            )

    def _check_missing_labels(self, y, where: str) -> None:
        """Refuses NaN labels (missing ones) for an output whose compiled loss would turn
        them into a NaN loss; masking losses (`TaskLoss`, `masked_crossentropy`, what
        `mmoe` and `ple` compile with) leave them out instead."""
        from keras_bigmodel.multitask.losses import TaskLoss, masked_crossentropy

        loss = getattr(self, "loss", None)
        if y is None or loss is None:
            return
        labels = y if isinstance(y, dict) else {None: y}
        for name, values in labels.items():
            if not isinstance(values, np.ndarray) or values.dtype.kind != "f":
                continue  # datasets and generators are not looked into
            task_loss = loss.get(name) if isinstance(loss, dict) else loss
            if isinstance(task_loss, TaskLoss) or task_loss is masked_crossentropy:
                continue
            if np.isnan(values).any():
                what = "labels" if name is None else f"labels of '{name}'"
                raise ValueError(
                    f"{where}: the {what} hold NaN (missing labels), which the loss "
                    f"{getattr(task_loss, '__name__', task_loss)!r} turns into a NaN loss. "
                    "Compile with kbm.multitask.losses.masked_crossentropy or "
                    "kbm.multitask.TaskLoss, which leave missing labels out"
                )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y, f"{self.name}.fit")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_labels(y, f"{self.name}.evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def train_on_batch(self, x, y=None, *args, **kwargs):
        self._check_labels(y, f"{self.name}.train_on_batch")
        return super().train_on_batch(x, y, *args, **kwargs)

    def test_on_batch(self, x, y=None, *args, **kwargs):
        self._check_labels(y, f"{self.name}.test_on_batch")
        return super().test_on_batch(x, y, *args, **kwargs)


def provenance(model: keras.Model) -> dict | None:
    """What a model's file says about its origin: `{"name", "config", "keras_bigmodel",
    ["quantization"]}` for a model a preset built (also after copying, quantizing,
    saving and reloading), else None."""
    if not isinstance(model, PresetModel):
        return None
    return model.provenance()
