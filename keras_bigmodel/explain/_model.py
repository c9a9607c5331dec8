"""A model made ready to explain: its inputs, the output explained, its logits.

`ModelView` runs the user's model eagerly, node by node (the way
`keras.models.clone_model` replays a functional graph, but on concrete tensors), with
two kinds of interventions and no change to the model itself:

- **Linearization.** The layer that produces the explained output is called with its
  final activation replaced by the identity, so methods explain the logits and not a
  saturating softmax or sigmoid (tf-keras-vis's `ReplaceToLinear`, which instead
  edits a clone). A per-class strategy decides what "without the activation" means:
  `Dense` and `EinsumDense` get a stand-in with `activation=linear` sharing their
  variables; `Activation` and `Softmax` layers become the identity; this package's
  `TaskHead` and `MultiTaskHead` have their output `Dense` replaced that way; nested
  models are linearized at their own outputs; a `Concatenate` (`FusionConcat`) passes
  the linearization on to the layers it joins.
- **Probes.** A layer's output can be recorded and shifted by an offset tensor.
  The gradient with respect to a zero offset is the gradient with respect to that
  activation, which is what Grad-CAM needs, on every backend.

Functional, Sequential and nested models are replayed; subclassed models are run as
they are (no linearization, no probes).
"""

from __future__ import annotations

import numbers
import weakref
from typing import Any

import keras
import numpy as np

from keras_bigmodel import _compat
from keras_bigmodel import validation as v

__all__ = ["ModelView", "Probe", "normalize", "reduce_channels", "shown"]


def shown(value) -> str:
    """A value as an error message shows it: arrays and tensors by type, shape and dtype
    (never their contents), anything else by a repr cut at 80 characters."""
    shape = getattr(value, "shape", None)
    if shape is not None and not isinstance(value, (str, bytes)):
        dtype = getattr(value, "dtype", "?")
        return f"{type(value).__name__} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (list, tuple)) and len(value) > 8:
        return f"{type(value).__name__} of {len(value)} items"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# tf-keras-vis's normalization: (m - min) / (max - min + K.epsilon()) per example.
_EPSILON = 1e-7


def normalize(maps: np.ndarray) -> np.ndarray:
    """Scales every example's map to [0, 1] (as tf-keras-vis does; a constant map -> 0)."""
    maps = np.asarray(maps, dtype="float32")
    axes = tuple(range(1, maps.ndim))
    low = maps.min(axis=axes, keepdims=True)
    high = maps.max(axis=axes, keepdims=True)
    return np.clip((maps - low) / (high - low + _EPSILON), 0.0, 1.0).astype("float32")


def input_kind(shape: tuple) -> str:
    """What an input holds, from its shape without the batch axis."""
    if len(shape) == 3:
        return "image"  # (H, W, C)
    if len(shape) == 2:
        return "sequence"  # (time, features)
    if len(shape) == 1:
        return "tabular"  # (features,)
    return "tensor"


def reduce_channels(maps: np.ndarray, kind: str, how: str = "max") -> np.ndarray:
    """Images lose their channel axis (max, or sum, over it); sequences keep their
    (time, features) map and vectors their features."""
    if kind in ("image", "tensor"):
        return maps.max(axis=-1) if how == "max" else maps.sum(axis=-1)
    return maps


class Probe:
    """Records one layer's output during a forward pass and adds `offset` to it."""

    def __init__(self, layer: keras.layers.Layer, offset=None):
        self.layer = layer
        self.offset = offset
        self.outputs: list = []

    def __call__(self, output):
        self.outputs.append(output)
        if self.offset is None:
            return output
        shifted = output + keras.ops.cast(self.offset, output.dtype)
        mask = _compat.get_keras_mask(output)
        if mask is not None:
            _compat.set_keras_mask(shifted, mask)
        return shifted

    def activation(self):
        if len(self.outputs) != 1:
            raise ValueError(
                f"Layer '{self.layer.name}' ran {len(self.outputs)} times in one forward pass; "
                f"it must run exactly once to be explained (a shared layer cannot be)"
            )
        return self.outputs[0]


# ----------------------------------------------------------------- linearization
class _Linear:
    """Calls `layer` without its final activation (see the module docstring)."""

    def __init__(self, layer, view: ModelView):
        self.layer = layer
        self.view = view

    def __call__(self, *args, **kwargs):
        return self.view._linear_call(self.layer, args, kwargs, {})


def _stand_in(layer, **overrides):
    """A second Python object for `layer` sharing its variables and sublayers, with some
    attributes replaced. The user's layer object is never modified."""
    twin = object.__new__(type(layer))
    twin.__dict__.update(layer.__dict__)
    twin.__dict__.update(overrides)
    return twin


def _has_nonlinear_activation(layer) -> bool:
    activation = getattr(layer, "activation", None)
    return activation is not None and activation is not keras.activations.linear


def _passthrough(layer) -> bool:
    """A concatenation: the linearization goes on to the layers it joins."""
    from keras_bigmodel.layers import Fusion

    if isinstance(layer, keras.layers.Concatenate):
        return True
    return isinstance(layer, Fusion) and layer.mode == "concat" and not layer.projections


# Layers whose output equals their input at inference (up to shape and dtype).
_TRANSPARENT_LAYERS = tuple(
    getattr(keras.layers, name)
    for name in (
        "Reshape",
        "Flatten",
        "Permute",
        "Identity",
        "Dropout",
        "SpatialDropout1D",
        "SpatialDropout2D",
        "SpatialDropout3D",
        "GaussianDropout",
        "GaussianNoise",
        "AlphaDropout",
        "ActivityRegularization",
    )
    if hasattr(keras.layers, name)
)
# keras.ops operations (functional-API calls such as keras.ops.cast(x, "float32")) that
# do the same; named by class, as the classes are private to Keras.
_TRANSPARENT_OPS = frozenset({"Cast", "Reshape", "Squeeze", "ExpandDims", "Identity", "Copy"})
_ACTIVATION_OPS = frozenset({"Softmax", "Sigmoid", "LogSoftmax"})


def _keras_op_name(operation) -> str | None:
    kind = type(operation)
    if isinstance(operation, keras.layers.Layer) or not kind.__module__.startswith("keras."):
        return None
    return kind.__name__


def _activation_op(operation) -> bool:
    return _keras_op_name(operation) in _ACTIVATION_OPS


def _transparent(layer) -> bool:
    if isinstance(layer, _TRANSPARENT_LAYERS):
        return True
    if isinstance(layer, keras.layers.Activation):
        return layer.activation is keras.activations.linear
    return _keras_op_name(layer) in _TRANSPARENT_OPS


def _is_model(layer) -> bool:
    return isinstance(layer, keras.Model)


# --------------------------------------------------------------------- the view
class ModelView:
    """The user's model with one output selected, ready to run with interventions.

    Args:
        model: A built `keras.Model`.
        output: For several outputs, the name (dict outputs) or index (list outputs).
        logits: Whether to explain the pre-activation of the final layer.
    """

    def __init__(
        self,
        model: keras.Model,
        output: str | int | None = None,
        logits: bool = True,
        rescale: bool = False,
    ):
        v.check_model(model)
        v.check_bool("logits", logits)
        # Weak references: compiled functions cached per model (on JAX) keep this view,
        # and must not keep the model alive.
        self._model = weakref.ref(model)
        self.logits = logits
        # DeepLIFT's rescale rule (see `_rescaled`): the batch is inputs then baselines.
        self.rescale = rescale
        graph = self._graph(model)
        self._graph_ref = weakref.ref(graph) if graph is model else (lambda g=graph: g)
        if self.graph is None:
            if logits:
                raise ValueError(
                    f"Model '{model.name}' is subclassed: its layers cannot be replayed, so its "
                    f"final activation cannot be replaced to explain logits. Pass logits=False "
                    f"to explain its outputs as they are, or build it as a functional model"
                )
            self.inputs = None
            self.input_names = ["input"]
            self.input_shapes = [None]
            self.input_dtypes = [None]
            self.output_key = output
            self._linear_layers: set = set()
            self.linearized: list = []
            self.num_classes = None
            return
        self.inputs = list(self.graph.inputs)
        self.input_names = self._input_names(self.graph)
        self.input_shapes = [tuple(t.shape[1:]) for t in self.inputs]
        self.input_dtypes = [str(t.dtype) for t in self.inputs]
        self.output_key, tensor = self._select_output(self.graph, output)
        self.output_shape = tuple(tensor.shape)
        self.num_classes = 1 if len(tensor.shape) == 1 else tensor.shape[-1]
        final = _final_layers(tensor, model.name) if logits else []
        self._linear_layers = {id(layer) for layer in final}
        # Names of the layers explained without their final activation.
        self.linearized = [layer.name for layer in final]

    @property
    def model(self) -> keras.Model:
        return self._model()

    @property
    def graph(self):
        """The functional model replayed (the model, or a functional view of a
        Sequential), or None for a subclassed model."""
        return self._graph_ref()

    # ------------------------------------------------------------ construction
    @staticmethod
    def _graph(model):
        if isinstance(model, keras.Sequential):
            try:
                inputs, outputs = model.inputs, model.outputs
            except (AttributeError, ValueError):
                inputs = None
            if not inputs:
                raise ValueError(
                    f"Sequential model '{model.name}' has no defined input; start it with "
                    f"keras.Input(shape) (or call model.build(input_shape)) before explaining it"
                )
            return keras.Model(
                inputs, outputs[0] if len(outputs) == 1 else outputs, name=model.name
            )
        if _compat.is_functional(model):
            return model
        return None

    @staticmethod
    def _input_names(graph) -> list[str]:
        if isinstance(graph.input, dict):
            return sorted(graph.input)  # keras.tree.flatten order
        return [t.name for t in graph.inputs]

    @staticmethod
    def _select_output(graph, output):
        structure = graph.output
        name = graph.name
        if isinstance(structure, dict):
            if output is None:
                raise ValueError(
                    f"Model '{name}' has outputs {sorted(structure)}; pick one with "
                    f"output=<name> (each head is explained separately)"
                )
            if not isinstance(output, str) or output not in structure:
                raise ValueError(
                    f"`output` must be one of {sorted(structure)}. Received: output={shown(output)}"
                )
            return output, structure[output]
        if isinstance(structure, (list, tuple)):
            if len(structure) == 1 and output in (None, 0):
                return None, structure[0]
            if (
                output is None
                or isinstance(output, bool)
                or not isinstance(output, numbers.Integral)
                or not 0 <= output < len(structure)
            ):
                raise ValueError(
                    f"Model '{name}' has {len(structure)} outputs; pick one with "
                    f"output=<index> in [0, {len(structure)}). Received: output={shown(output)}"
                )
            return int(output), structure[output]
        if output is not None:
            raise ValueError(
                f"Model '{name}' has a single output; `output` must be None. "
                f"Received: output={shown(output)}"
            )
        return None, structure

    # ----------------------------------------------------------------- inputs
    def arrays(self, inputs, arg: str = "inputs") -> list[np.ndarray]:
        """`inputs` as a list of NumPy arrays in the order of `model.inputs`, checked."""
        if self.graph is None:
            array = np.asarray(inputs)
            return [array.astype("float32") if array.dtype.kind == "f" else array]
        names = self.input_names
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - set(names))
            missing = [n for n in names if n not in inputs]
            if missing or unknown:
                raise ValueError(
                    f"`{arg}` must have one entry per model input {names}; missing {missing}, "
                    f"unknown {unknown}"
                )
            arrays = [inputs[n] for n in names]
        elif isinstance(inputs, (list, tuple)) and len(names) > 1:
            arrays = list(inputs)
        else:
            arrays = [inputs]
        if len(arrays) != len(names):
            raise ValueError(
                f"Model '{self.model.name}' takes {len(names)} inputs {names}; `{arg}` gave "
                f"{len(arrays)}"
            )
        out = []
        batch = None
        for name, shape, dtype, array in zip(names, self.input_shapes, self.input_dtypes, arrays):
            try:
                array = np.asarray(keras.ops.convert_to_numpy(array))
            except (TypeError, ValueError, AttributeError, RuntimeError):
                raise TypeError(
                    f"`{arg}` for input '{name}' must be an array. Received: {type(array).__name__}"
                ) from None
            if array.dtype.kind not in "biuf":
                raise TypeError(
                    f"`{arg}` for input '{name}' must be numeric. Received dtype {array.dtype}"
                )
            if array.ndim != len(shape) + 1 or any(
                e is not None and e != a for e, a in zip(shape, array.shape[1:])
            ):
                raise ValueError(
                    f"Input '{name}' must have shape (batch,) + {shape}. Received: {array.shape}"
                )
            if len(array) == 0:
                raise ValueError(f"`{arg}` must hold at least one example. Received: {array.shape}")
            if batch is not None and len(array) != batch:
                raise ValueError(
                    f"Every input must have the same batch size; input '{name}' has "
                    f"{len(array)}, the first had {batch}"
                )
            batch = len(array)
            if dtype.startswith(("int", "uint", "bool")):
                out.append(array.astype(dtype))
            else:
                if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
                    raise ValueError(f"`{arg}` for input '{name}' contains NaN or infinity")
                out.append(array.astype("float32"))
        return out

    def float_inputs(self) -> list[int]:
        """Positions of the inputs that gradients can flow into."""
        return [i for i, d in enumerate(self.input_dtypes) if d is None or "float" in d]

    def class_indices(self, class_index, batch: int) -> np.ndarray:
        if self.graph is not None and len(self.output_shape) > 2:
            raise ValueError(
                f"The explained output of '{self.model.name}' must have shape (batch, classes); "
                f"it has shape {self.output_shape}"
            )
        classes = self.num_classes
        values = class_index
        if isinstance(values, np.ndarray):
            values = values.tolist()
        if isinstance(values, numbers.Integral) and not isinstance(values, bool):
            values = [values] * batch
        bound = f"[0, {classes})" if classes else "[0, classes)"
        if (
            not isinstance(values, (list, tuple))
            or len(values) != batch
            or any(isinstance(c, bool) or not isinstance(c, numbers.Integral) for c in values)
            or any(c < 0 or (classes is not None and c >= classes) for c in values)
        ):
            raise ValueError(
                f"`class_index` must be an integer in {bound} or a list of {batch} of them "
                f"(one per example). Received: class_index={shown(class_index)}"
            )
        return np.asarray(values, dtype="int32")

    def by_input(self, maps: list, keep: list[int] | None = None):
        """One map for a single-input model, else a dict keyed by input name."""
        keep = list(range(len(maps))) if keep is None else keep
        if self.graph is None or len(self.input_names) == 1:
            return maps[keep[0]]
        return {self.input_names[i]: maps[i] for i in keep}

    # ------------------------------------------------------------------ running
    def run(self, tensors: list, probes: dict | None = None):
        """The explained output (logits when `logits`), computed eagerly from `tensors`."""
        probes = probes or {}
        if self.graph is None:
            outputs = self.model(tensors[0], training=False)
        else:
            outputs = self._run_graph(self.graph, tensors, probes, self._linear_layers)
            for probe in probes.values():
                if not probe.outputs:
                    raise ValueError(
                        f"Layer '{probe.layer.name}' did not run in a forward pass of "
                        f"'{self.model.name}'"
                    )
        if self.output_key is not None:
            outputs = outputs[self.output_key]
        elif isinstance(outputs, (list, tuple)):
            outputs = outputs[0]
        return outputs

    def scores(self, tensors: list, class_index, probes: dict | None = None):
        """Each example's score for its class (an int array or tensor), shape (batch,)."""
        outputs = keras.ops.cast(self.run(tensors, probes), "float32")
        if len(outputs.shape) == 1:
            return outputs
        index = keras.ops.reshape(keras.ops.cast(class_index, "int32"), (-1, 1))
        return keras.ops.take_along_axis(outputs, index, axis=-1)[:, 0]

    def cache_key(self, *parts) -> tuple:
        """What identifies a computation on this view (for the compiled-function cache)."""
        return (self.model, (*parts, self.output_key, self.logits, self.rescale))

    def _run_graph(self, graph, tensors, probes, linear):
        def operation_fn(layer):
            def call(*args, **kwargs):
                return self._call(layer, args, kwargs, probes, linear)

            return call

        return _compat.run_graph(graph, list(tensors), operation_fn)

    def _call(self, layer, args, kwargs, probes, linear):
        if id(layer) in linear:
            output = self._linear_call(layer, args, kwargs, probes)
        elif self.rescale and not _is_model(layer) and _rescalable(layer):
            output = self._rescaled_call(layer, args, kwargs)
        elif _is_model(layer) and (self.rescale or _contains(layer, probes)):
            output = self._run_nested(layer, args, kwargs, probes, linearize=False)
        else:
            output = layer(*args, **kwargs)
        probe = probes.get(id(layer))
        return output if probe is None else probe(output)

    def _run_nested(self, model, args, kwargs, probes, linearize: bool):
        """A nested model, replayed layer by layer (linearized at its own outputs)."""
        if isinstance(model, keras.Sequential):
            x = args[0]
            layers = model.layers
            final = {id(f) for f in _sequential_final(layers, model.name)} if linearize else set()
            for layer in layers:
                x = self._call(layer, (x,), {}, probes, final)
            return x
        if _compat.is_functional(model):
            linear = set()
            if linearize:
                for tensor in model.outputs:
                    linear |= {id(layer) for layer in _final_layers(tensor, model.name)}
            return self._run_graph(model, keras.tree.flatten(args[0]), probes, linear)
        return model(*args, **kwargs)

    def _rescaled_call(self, layer, args, kwargs):
        """`layer` with DeepLIFT's rescale rule at its activation."""
        if isinstance(layer, keras.layers.Activation):
            z = args[0]
        else:
            z = _stand_in(layer, activation=keras.activations.linear)(*args, **kwargs)
        return _rescaled(layer.activation, z)

    def _linear_call(self, layer, args, kwargs, probes):
        """`layer(*args, **kwargs)` without its final activation."""
        from keras_bigmodel.layers import MultiTaskHead, TaskHead

        if isinstance(layer, (keras.layers.Activation, keras.layers.Softmax)) or _activation_op(
            layer
        ):
            return args[0]
        if isinstance(layer, TaskHead):
            head = _head_output(layer)
            linear = _Linear(getattr(layer, head), self)
            return _stand_in(layer, **{head: linear})(*args, **kwargs)
        if isinstance(layer, MultiTaskHead):
            heads = {name: _Linear(head, self) for name, head in layer.heads.items()}
            return _stand_in(layer, heads=heads)(*args, **kwargs)
        if _is_model(layer):
            return self._run_nested(layer, args, kwargs, probes, linearize=True)
        if _own_activation(layer):
            if not _has_nonlinear_activation(layer):
                return layer(*args, **kwargs)
            return _stand_in(layer, activation=keras.activations.linear)(*args, **kwargs)
        return layer(*args, **kwargs)


def _rescalable(layer) -> bool:
    """A layer whose output is an elementwise activation of what it computes."""
    if isinstance(layer, keras.layers.Activation):
        return _has_nonlinear_activation(layer)
    return _own_activation(layer) and _has_nonlinear_activation(layer)


def _rescaled(activation, z):
    """DeepLIFT's rescale rule (Shrikumar et al., 2017) for an elementwise activation.

    The batch holds the inputs, then as many baselines. The inputs' half returns
    `f(z0) + (z - z0) * m` with `m = (f(z) - f(z0)) / (z - z0)` held constant (the
    derivative `f'(z)` where `|z - z0| < 1e-6`, by a central difference): its value is
    `f(z)` and its gradient with respect to `z` is the multiplier `m`. The baselines'
    half goes on as `f(z0)`, without gradient.
    """
    ops = keras.ops
    half = z.shape[0] // 2
    zx, z0 = z[:half], ops.stop_gradient(z[half:])
    fx, f0 = activation(zx), ops.stop_gradient(activation(z0))
    delta = zx - z0
    small = ops.abs(delta) < 1e-6
    step = ops.cast(1e-3, z.dtype)
    slope = (activation(zx + step) - activation(zx - step)) / (2.0 * step)
    ratio = (fx - f0) / ops.where(small, ops.ones_like(delta), delta)
    multiplier = ops.stop_gradient(ops.where(small, slope, ratio))
    return ops.concatenate([f0 + delta * multiplier, f0], axis=0)


def _final_layers(tensor, model_name: str = "model") -> list:
    """The layers (or operations) whose activation the output `tensor` goes through last.

    The walk goes back from the output through layers that leave the values unchanged at
    inference (`Reshape`, `Flatten`, `Identity`, `Dropout`, a linear `Activation` such as
    the float32 cast of mixed precision, `keras.ops.cast` ...) and through
    concatenations to the layers they join. It stops at a layer it can linearize; any
    other layer on the way is refused, by name, rather than explained as if linearized.
    """
    found, pending = [], [tensor]
    while pending:
        layer = _compat.producer(pending.pop())
        if layer is None or any(layer is f for f in found):
            continue
        if _passthrough(layer):
            pending.extend(keras.tree.flatten(layer.input))
        elif _transparent(layer):
            pending.extend(_op_inputs(layer))
        else:
            _check_linearizable(layer, model_name)
            found.append(layer)
    return found


def _op_inputs(layer) -> list:
    try:
        return keras.tree.flatten(layer.input)
    except (AttributeError, ValueError):
        # a keras.ops operation: its inbound node's input tensors
        return _compat.operation_inputs(layer)


def _sequential_final(layers: list, model_name: str) -> list:
    """The last layer of a Sequential that `_final_layers` would stop at."""
    for layer in reversed(layers):
        if not _transparent(layer):
            _check_linearizable(layer, model_name)
            return [layer]
    return []


def _check_linearizable(layer, model_name: str) -> None:
    if _linearizable(layer):
        return
    kind = type(layer).__name__
    why = (
        "a Lambda layer runs a Python function kbm.explain cannot see into"
        if isinstance(layer, keras.layers.Lambda)
        else "kbm.explain knows no way to call it without a final activation"
    )
    raise ValueError(
        f"The output of model '{model_name}' cannot be linearized to explain logits: it goes "
        f"through layer '{layer.name}' ({kind}) and {why}. Pass logits=False to explain the "
        f"outputs as they are, or explain a model that ends at its last Dense (or "
        f"Activation/Softmax) layer"
    )


def _linearizable(layer) -> bool:
    from keras_bigmodel.layers import MultiTaskHead, TaskHead

    if isinstance(layer, keras.layers.Lambda):
        return False
    if isinstance(
        layer,
        (
            keras.layers.Activation,
            keras.layers.Softmax,
            keras.layers.Dense,
            keras.layers.EinsumDense,
            TaskHead,
            MultiTaskHead,
            keras.Model,
        ),
    ):
        return True
    if _activation_op(layer):
        return True
    # Any other layer with an `activation` argument (Conv2D, ...) is called with it linear.
    return _own_activation(layer)


def _own_activation(layer) -> bool:
    """A layer holding its `activation` itself (not an LSTM's property of its cell)."""
    return isinstance(layer, keras.layers.Layer) and "activation" in vars(layer)


def _contains(model, probes: dict) -> bool:
    return bool(probes) and any(
        id(layer) in probes for layer in _compat.all_layers(model, include_self=False)
    )


def _head_output(head) -> str:
    """The attribute of a `TaskHead` holding its output `Dense`."""
    if isinstance(getattr(head, "output_dense", None), keras.layers.Dense):
        return "output_dense"
    raise ValueError(  # pragma: no cover - guards a refactor of TaskHead
        f"TaskHead '{head.name}' has no `output_dense`; kbm.explain cannot linearize it"
    )


def describe_input(view: ModelView, index: int) -> dict[str, Any]:
    shape = view.input_shapes[index]
    return {
        "name": view.input_names[index],
        "shape": shape,
        "kind": input_kind(shape) if shape is not None else "tensor",
    }
