"""Magnitude pruning on Keras 3, on every backend (`keras.ops` only).

TensorFlow Model Optimization's pruning supports Keras 2 only. Here:

- `prune(model, ...)` returns a copy of a functional (or Sequential) model whose
  prunable layers (`Dense`, `EinsumDense`, convolutions, `Embedding`, recurrent layers)
  are wrapped in `PrunedLayer`: it holds one mask per kernel (non-trainable variables,
  saved in the `.keras` file) and runs its layer with `kernel * mask`, so pruned
  weights have no effect and get no gradient.
- `PruningCallback()` (pass it to `fit`) updates the masks on the schedule: every
  `frequency` steps from `begin_step` to `end_step`, the smallest-magnitude weights
  (unstructured), the 2 smallest of every 4 along the input dimension ("2:4") or the
  smallest-norm output channels ("channel") are masked, up to the schedule's
  sparsity. Its step counter lives in the model, so a model saved mid-training
  (`kbm.save_model`, `keras.callbacks.ModelCheckpoint`) reloads with its masks and
  resumes the schedule where it stopped.
- `strip_pruning(model)` returns the plain model with the masks applied: the pruned
  weights are exactly zero (the file then gzips to a fraction of its size:
  `size_report(...)["gzip_bytes"]`).
- `sparsity_report(model)` gives the share of zero (or masked) weights per layer.

`PrunedLayer` is registered with Keras under the package `keras_bigmodel`, so pruned
models load with `kbm.load_model` (safe mode, no Lambda).
"""

from __future__ import annotations

import inspect

import keras
import numpy as np
from keras import ops

from keras_bigmodel import _compat
from keras_bigmodel.compress._scope import call_arguments, call_with_values, clone_layers
from keras_bigmodel.validation import check_choice, check_model, check_positive_int

__all__ = [
    "PRUNABLE_LAYERS",
    "PRUNING_SCHEDULES",
    "PRUNING_STRUCTURES",
    "PrunedLayer",
    "PruningCallback",
    "prune",
    "sparsity_report",
    "strip_pruning",
]

PRUNING_SCHEDULES = ("polynomial", "constant")
PRUNING_STRUCTURES = (None, "2:4", "channel")
PRUNABLE_LAYERS = (
    keras.layers.Dense,
    keras.layers.EinsumDense,
    keras.layers.Conv1D,
    keras.layers.Conv2D,
    keras.layers.Conv3D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Embedding,
    keras.layers.LSTM,
    keras.layers.GRU,
    keras.layers.SimpleRNN,
)
# The weights a mask covers (biases and normalisation parameters are kept).
_PRUNED_WEIGHTS = ("kernel", "recurrent_kernel", "depthwise_kernel", "embeddings")
# Of the training steps of the first `fit`, the share over which an unset `end_step`
# ramps the sparsity up; the rest fine-tunes at the final sparsity.
RAMP_SHARE = 2 / 3


def _check_options(sparsity, schedule, begin_step, end_step, structure, frequency):
    if (
        isinstance(sparsity, bool)
        or not isinstance(sparsity, (int, float))
        or not 0.0 <= sparsity < 1.0
    ):
        raise ValueError(
            f"`sparsity` must be a number in [0, 1) (the share of weights set to zero). "
            f"Received: sparsity={sparsity!r}"
        )
    check_choice("schedule", schedule, PRUNING_SCHEDULES)
    if structure is not None:
        check_choice("structure", structure, [s for s in PRUNING_STRUCTURES if s])
    if isinstance(begin_step, bool) or not isinstance(begin_step, int) or begin_step < 0:
        raise ValueError(
            f"`begin_step` must be a non-negative integer. Received: begin_step={begin_step!r}"
        )
    if end_step is not None and (
        isinstance(end_step, bool) or not isinstance(end_step, int) or end_step <= begin_step
    ):
        raise ValueError(
            f"`end_step` must be None or an integer above begin_step={begin_step}. "
            f"Received: end_step={end_step!r}"
        )
    check_positive_int("frequency", frequency)


@keras.saving.register_keras_serializable(package="keras_bigmodel")
class PrunedLayer(keras.layers.Wrapper):
    """Runs a layer with its kernels multiplied by masks that `PruningCallback` updates.

    Args:
        layer: The layer to prune (see `PRUNABLE_LAYERS`).
        sparsity: The final share of each kernel's weights set to zero, in [0, 1)
            (`structure="2:4"` always masks 2 of every 4 and ignores it).
        schedule: `"polynomial"` (the sparsity ramps from 0 to `sparsity` between
            `begin_step` and `end_step` as `sparsity * (1 - (1 - t)^3)`) or
            `"constant"` (`sparsity` from `begin_step` on).
        begin_step: The first training step that prunes.
        end_step: The step where the polynomial ramp ends, or `None`: 2/3 of the
            steps of the first `fit` with `PruningCallback` (fixed then, and saved).
        structure: `None` (any weights), `"2:4"` (at most 2 non-zero weights in every
            group of 4 consecutive inputs of each output) or `"channel"` (whole
            output channels).
        frequency: Steps between mask updates.

    Call arguments:
        As the wrapped layer's.

    Returns:
        The wrapped layer's output, computed with the masked kernels.

    Example:

    ```python
    pruned = kbm.compress.prune(model, sparsity=0.8)      # wraps the layers
    pruned.fit(x, y, epochs=3, callbacks=[kbm.compress.PruningCallback()])
    plain = kbm.compress.strip_pruning(pruned)             # exact zeros
    ```
    """

    def __init__(
        self,
        layer,
        sparsity: float = 0.8,
        schedule: str = "polynomial",
        begin_step: int = 0,
        end_step: int | None = None,
        structure: str | None = None,
        frequency: int = 10,
        **kwargs,
    ):
        if not isinstance(layer, PRUNABLE_LAYERS):
            raise ValueError(
                f"`layer` must be one of {[c.__name__ for c in PRUNABLE_LAYERS]}. Received: "
                f"layer={layer!r}"
            )
        _check_options(sparsity, schedule, begin_step, end_step, structure, frequency)
        kwargs.setdefault("name", layer.name)
        super().__init__(layer, **kwargs)
        self.sparsity = float(sparsity)
        self.schedule = schedule
        self.begin_step = begin_step
        self.end_step = end_step
        self.structure = structure
        self.frequency = frequency
        self.supports_masking = getattr(layer, "supports_masking", False)
        self._passes = call_arguments(layer)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.targets = [
            v
            for v in self.layer.weights
            if v.name in _PRUNED_WEIGHTS and len(v.shape) >= 2 and v.trainable
        ]
        self.masks = [
            self.add_weight(name=f"mask_{i}", shape=v.shape, initializer="ones", trainable=False)
            for i, v in enumerate(self.targets)
        ]
        self.pruning_step = self.add_weight(
            name="pruning_step", shape=(), initializer="zeros", dtype="int32", trainable=False
        )
        self.resolved_end_step = self.add_weight(
            name="resolved_end_step",
            shape=(),
            initializer=keras.initializers.Constant(-1 if self.end_step is None else self.end_step),
            dtype="int32",
            trainable=False,
        )
        self.built = True

    def call(self, inputs, training=None, mask=None):
        kwargs = {}
        if "training" in self._passes:
            kwargs["training"] = training
        if "mask" in self._passes and mask is not None:
            kwargs["mask"] = mask
        replace = {
            id(v): (lambda value, m=m: ops.multiply(value, ops.cast(m, value.dtype)))
            for v, m in zip(self.targets, self.masks)
        }
        return call_with_values(self.layer, inputs, replace, **kwargs)

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, *args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k in self._passes}
        return self.layer.compute_output_spec(inputs, *args, **kwargs)

    def compute_mask(self, inputs, mask=None):
        return self.layer.compute_mask(inputs, mask)

    def get_config(self):
        return {
            **super().get_config(),
            "sparsity": self.sparsity,
            "schedule": self.schedule,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
            "structure": self.structure,
            "frequency": self.frequency,
        }

    # ----------------------------------------------------------- the schedule
    def target_sparsity(self, step: int, end_step: int) -> float:
        """The schedule's sparsity at `step` (0 before `begin_step`)."""
        if self.structure == "2:4":
            return 0.5 if step >= self.begin_step else 0.0
        if step < self.begin_step:
            return 0.0
        if self.schedule == "constant":
            return self.sparsity
        progress = min(1.0, (step - self.begin_step) / max(end_step - self.begin_step, 1))
        return self.sparsity * (1.0 - (1.0 - progress) ** 3)

    def update_masks(self, sparsity: float) -> None:
        """Recomputes every mask from the kernels' current magnitudes."""
        for v, m in zip(self.targets, self.masks):
            weights = np.abs(keras.ops.convert_to_numpy(v).astype("float32"))
            m.assign(_mask(weights, sparsity, self.structure))


def _mask(weights: np.ndarray, sparsity: float, structure: str | None) -> np.ndarray:
    """A 0/1 mask of `weights`' shape keeping the largest magnitudes."""
    mask = np.ones(weights.shape, dtype="float32")
    if structure == "2:4":
        if sparsity <= 0:
            return mask
        columns = weights.reshape(-1, weights.shape[-1])  # (inputs, outputs)
        rows = columns.shape[0]
        padded = np.pad(
            columns, ((0, -rows % 4), (0, 0)), constant_values=-np.inf
        )  # padding goes first
        groups = padded.reshape(-1, 4, padded.shape[-1])  # (groups, 4, outputs)
        order = np.argsort(groups, axis=1, kind="stable")
        keep = np.ones(groups.shape, dtype="float32")
        np.put_along_axis(keep, order[:, :2], 0.0, axis=1)
        return keep.reshape(padded.shape)[:rows].reshape(weights.shape)
    if structure == "channel":
        norms = np.sqrt((weights.reshape(-1, weights.shape[-1]) ** 2).sum(axis=0))
        k = round(sparsity * norms.size)
        if k:
            mask[..., np.argsort(norms, kind="stable")[:k]] = 0.0
        return mask
    k = round(sparsity * weights.size)
    if k:
        flat = mask.reshape(-1)
        flat[np.argpartition(weights.reshape(-1), k - 1)[:k]] = 0.0
    return mask


def _pruned_layers(model) -> list[PrunedLayer]:
    return [layer for layer in _compat.all_layers(model) if isinstance(layer, PrunedLayer)]


class PruningCallback(keras.callbacks.Callback):
    """Updates the masks of a `prune`d model during `fit`: pass it in `callbacks=`.

    At the start of each training step it advances the model's pruning step and,
    every `frequency` steps from `begin_step` until the schedule's `end_step`,
    recomputes the masks of every `PrunedLayer` to the schedule's sparsity. The step
    count is kept in the model (saved with it), so training resumes the schedule
    after a reload. On JAX, the model's state is synchronised only at those steps.

    Args:
        verbose: If true, prints the sparsity at each mask update.

    Raises:
        ValueError: (when `fit` starts) the model has no `PrunedLayer`, or
            `end_step` is unset and `fit` does not know its number of steps.

    Example:

    ```python
    pruned.fit(x, y, epochs=3, callbacks=[kbm.compress.PruningCallback()])
    ```
    """

    def __init__(self, verbose: bool = False):
        super().__init__()
        self.verbose = bool(verbose)
        self._layers: list[PrunedLayer] = []
        self._step = 0

    def on_train_begin(self, logs=None):
        model = self.model
        self._layers = _pruned_layers(model)
        if not self._layers:
            raise ValueError(
                f"PruningCallback needs a model from kbm.compress.prune; model "
                f"'{model.name}' has no PrunedLayer"
            )
        self._step = int(keras.ops.convert_to_numpy(self._layers[0].pruning_step))
        steps = (self.params or {}).get("steps")
        epochs = (self.params or {}).get("epochs") or 1
        for layer in self._layers:
            if int(keras.ops.convert_to_numpy(layer.resolved_end_step)) < 0:
                if not steps:
                    raise ValueError(
                        f"PrunedLayer '{layer.name}' has end_step=None and fit does not "
                        f"know its number of steps; give prune(..., end_step=N)"
                    )
                end = self._step + max(1, round(RAMP_SHARE * steps * epochs))
                layer.resolved_end_step.assign(max(end, layer.begin_step + 1))
        self._ends = [int(keras.ops.convert_to_numpy(x.resolved_end_step)) for x in self._layers]

    def on_train_batch_begin(self, batch, logs=None):
        step = self._step
        due = [
            (layer, end)
            for layer, end in zip(self._layers, self._ends)
            if layer.begin_step <= step <= end + layer.frequency
            and (step - layer.begin_step) % layer.frequency == 0
        ]
        if due:
            self.model  # noqa: B018 -- on JAX, brings the training state into the variables
            for layer, end in due:
                sparsity = layer.target_sparsity(step, end)
                layer.update_masks(sparsity)
                layer.pruning_step.assign(step)
                if self.verbose:
                    print(f"step {step}: {layer.name} pruned to {sparsity:.3f}")
        self._step += 1

    def _save_step(self):
        self.model  # noqa: B018 -- see on_train_batch_begin
        for layer in self._layers:
            layer.pruning_step.assign(self._step)

    def on_epoch_end(self, epoch, logs=None):
        self._save_step()

    def on_train_end(self, logs=None):
        self._save_step()


def prune(
    model: keras.Model,
    sparsity: float = 0.8,
    schedule: str = "polynomial",
    begin_step: int = 0,
    end_step: int | None = None,
    structure: str | None = None,
    frequency: int = 10,
    layers=None,
) -> keras.Model:
    """A copy of `model` whose prunable layers train with magnitude-pruning masks.

    Train it with `fit(..., callbacks=[kbm.compress.PruningCallback()])` (see
    `PrunedLayer` for the schedule), then `strip_pruning` it. Works on every backend.

    Args:
        model: A built functional or Sequential `keras.Model` (float).
        sparsity: The final share of each kernel's weights set to zero, in [0, 1).
        schedule: `"polynomial"` or `"constant"`.
        begin_step: The first training step that prunes.
        end_step: The end of the polynomial ramp, or `None` (2/3 of the first `fit`).
        structure: `None`, `"2:4"` or `"channel"`.
        frequency: Steps between mask updates.
        layers: Names of the layers to prune, or `None` for every prunable one
            (`PRUNABLE_LAYERS`, at the model's top level; with `"channel"`, not
            the layers whose output is a model output, which would lose classes).

    Returns:
        The model to train, compiled as `model` was (without its optimizer state).

    Raises:
        ValueError: Bad options, a subclassed model, unknown layer names, or
            nothing to prune.

    Example:

    ```python
    pruned = kbm.compress.prune(model, sparsity=0.8)
    pruned.fit(x, y, epochs=3, callbacks=[kbm.compress.PruningCallback()])
    small = kbm.compress.strip_pruning(pruned)
    ```
    """
    check_model(model)
    _check_options(sparsity, schedule, begin_step, end_step, structure, frequency)
    if not (_compat.is_functional(model) or isinstance(model, keras.Sequential)):
        raise ValueError(
            f"prune needs a functional or Sequential model; model '{model.name}' is a "
            f"{type(model).__name__}"
        )
    if _pruned_layers(model):
        raise ValueError(f"Model '{model.name}' is already pruned")
    candidates = {layer.name for layer in model.layers if isinstance(layer, PRUNABLE_LAYERS)}
    if structure == "channel" and layers is None:
        # Pruning the channels of an output layer would remove classes or tasks.
        outputs = {id(t) for t in keras.tree.flatten(model.output)}
        candidates -= {
            layer.name
            for layer in model.layers
            if any(id(t) in outputs for t in keras.tree.flatten(layer.output))
        }
    if layers is not None:
        if isinstance(layers, str) or not all(isinstance(n, str) for n in layers):
            raise TypeError(f"`layers` must be a list of layer names. Received: layers={layers!r}")
        unknown = sorted(set(layers) - candidates)
        if unknown:
            raise ValueError(
                f"`layers` names {unknown}, which are not prunable layers of model "
                f"'{model.name}'; prunable: {sorted(candidates)}"
            )
        candidates = set(layers)
    if not candidates:
        raise ValueError(
            f"Model '{model.name}' has no prunable layer at its top level "
            f"({[c.__name__ for c in PRUNABLE_LAYERS]})"
        )
    options = dict(
        sparsity=sparsity,
        schedule=schedule,
        begin_step=begin_step,
        end_step=end_step,
        structure=structure,
        frequency=frequency,
    )

    def wrap(layer):
        return PrunedLayer(layer, **options) if layer.name in candidates else layer

    return clone_layers(model, wrap)


def strip_pruning(model: keras.Model) -> keras.Model:
    """The plain model of a `prune`d one: each `PrunedLayer` replaced by its layer,
    whose kernels are multiplied by their masks (pruned weights exactly zero).

    Args:
        model: A model from `prune` (trained or reloaded).

    Returns:
        A new model without `PrunedLayer`s, compiled as `model` was.

    Raises:
        ValueError: A model without `PrunedLayer`.
    """
    check_model(model)
    if not _pruned_layers(model):
        raise ValueError(f"Model '{model.name}' has no PrunedLayer; nothing to strip")

    def unwrap(layer):
        if not isinstance(layer, PrunedLayer):
            return layer
        for v, m in zip(layer.targets, layer.masks):
            v.assign(ops.multiply(v, ops.cast(m, v.dtype)))
        return layer.layer

    def call(layer, *args, **kwargs):
        # The wrapper's nodes record a `mask` argument that the bare layer may not take.
        parameters = inspect.signature(layer.call).parameters
        return layer(*args, **{k: v for k, v in kwargs.items() if k in parameters})

    return clone_layers(model, unwrap, call)


def sparsity_report(model: keras.Model) -> dict:
    """The share of pruned weights per layer: masked ones in a `PrunedLayer`, exact
    zeros of the kernels elsewhere.

    Args:
        model: A `keras.Model` (pruned, stripped or plain).

    Returns:
        `{"layers": {name: {"weights": n, "zeros": z, "sparsity": z / n}}, "weights":
        total, "zeros": total zeros, "sparsity": their ratio}` over the kernels
        (`kernel`, `recurrent_kernel`, `depthwise_kernel`, `embeddings`).
    """
    check_model(model)
    layers = {}
    inner = {id(layer.layer) for layer in _pruned_layers(model)}
    for layer in _compat.all_layers(model, include_self=False):
        if id(layer) in inner:
            continue
        if isinstance(layer, PrunedLayer):
            arrays = [keras.ops.convert_to_numpy(m) for m in layer.masks]
        elif isinstance(layer, PRUNABLE_LAYERS):
            arrays = [
                keras.ops.convert_to_numpy(v)
                for v in layer.weights
                if v.name in _PRUNED_WEIGHTS and len(v.shape) >= 2
            ]
        else:
            continue
        n = int(sum(a.size for a in arrays))
        z = int(sum(int(np.sum(a == 0)) for a in arrays))
        if n:
            layers[layer.name] = {"weights": n, "zeros": z, "sparsity": z / n}
    total = sum(r["weights"] for r in layers.values())
    zeros = sum(r["zeros"] for r in layers.values())
    return {
        "layers": layers,
        "weights": total,
        "zeros": zeros,
        "sparsity": zeros / total if total else 0.0,
    }
