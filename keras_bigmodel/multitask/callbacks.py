"""The expert layers' gate statistics in the training logs."""

from __future__ import annotations

import keras

from keras_bigmodel import _compat
from keras_bigmodel.layers._experts import ExpertLayer

__all__ = ["GateWeightLogger"]


class GateWeightLogger(keras.callbacks.Callback):
    """Logs the mean gate weights of the expert layers every epoch.

    For every `MixtureOfExperts` or `ProgressiveLayeredExtraction` layer of the
    model built with `gate_metrics=True`, adds `"{layer}/{task}/{expert}"`: the
    mean weight the task's gate gave the expert over the epoch's training steps, to
    the epoch's logs (and so to `History`, `CSVLogger`, TensorBoard). The layers
    keep the statistics in non-trainable weights, updated inside the training
    step, so this works on every backend (a Keras metric updated inside a layer
    does not survive JAX's stateless training step).

    Raises:
        ValueError: If the model has no expert layer with `gate_metrics=True`.

    Example:

    ```python
    history = model.fit(x, y, epochs=5, callbacks=[GateWeightLogger()])
    history.history["mmoe/task1/expert_0"]
    ```
    """

    def _layers(self) -> list:
        layers = [
            layer
            for layer in _compat.all_layers(self.model)
            if isinstance(layer, ExpertLayer) and layer.gate_metrics
        ]
        if not layers:
            raise ValueError(
                "GateWeightLogger needs an expert layer (MixtureOfExperts, "
                "ProgressiveLayeredExtraction) built with gate_metrics=True in the model"
            )
        return layers

    def on_epoch_begin(self, epoch, logs=None):
        for layer in self._layers():
            layer.reset_gate_usage()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for layer in self._layers():
            for task, experts in layer.gate_usage().items():
                for expert, weight in experts.items():
                    logs[f"{layer.name}/{task}/{expert}"] = weight
