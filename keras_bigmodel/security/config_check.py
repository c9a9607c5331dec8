"""The static check of `config.json`: every serialized object, and what the config declares.

One pass over the parsed JSON, iterative (a stack, no recursion), linear in its size:
each node is pushed once with a link to its parent, and a readable path
(`config.layers[3].config.activation`) is spelled out only for the error that refuses
it. Nothing is imported or called: objects are resolved with `resolve.resolve`, the
mirror of Keras's deserializer, and judged with `resolve.judge`.

Besides the objects, it bounds what the config itself makes Keras allocate while it
deserializes, before any variable exists: the elements and dtype of `__numpy__` and
`__tensor__` constants (NumPy allocates them on the spot; a dtype such as
`(16000,16000)f8` turns each element into a 2 GB sub-array), and every shape the
config spells out (`build_config`, an `Input`'s `batch_shape`, a symbolic tensor's
shape). It counts layers, and refuses a lookup or vectorization layer (or any layer)
whose `vocabulary`, `idf_weights` or similar option is a string, which names a file to
read, instead of relying on Keras's process-wide safe-mode flag.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from typing import Any

import keras

from keras_bigmodel import _compat
from keras_bigmodel.security.errors import UnsafeModelError
from keras_bigmodel.security.limits import LoadLimits, resolve_limits
from keras_bigmodel.security.names import unsafe_name_reason
from keras_bigmodel.security.resolve import Refusal, judge, resolve

__all__ = ["ConfigFindings", "check_config"]

# Data markers that Keras's deserializer turns into values, never into code.
_DATA_MARKERS = frozenset(
    {"__keras_tensor__", "__tensor__", "__numpy__", "__bytes__", "__ellipsis__", "__slice__"}
)
# What Keras's serializer writes as the dtype of an array (`standardize_dtype`).
_ARRAY_DTYPES = frozenset(
    {
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "complex64",
        "complex128",
        "string",
        "float8_e4m3fn",
        "float8_e5m2",
    }
)
# Layer options that name a file to read when they are strings (Keras's lookup and
# vectorization layers; keras-hub's tokenizers).
FILE_OPTIONS = ("vocabulary", "idf_weights", "merges", "proto", "vocabulary_file")
# Where a layer's config spells out a shape (an Input's, a Sequential's build shape).
_SHAPE_KEYS = ("batch_shape", "batch_input_shape", "shape", "input_shape", "build_input_shape")
_BACKEND_OPTIMIZER_MODULE = re.compile(r"^keras\.src\.backend\.[a-z_]+\.optimizers(\.[a-z_]+)?$")


@dataclasses.dataclass
class ConfigFindings:
    """What `check_config` found in an accepted config.

    Attributes:
        classes: The qualified names of the objects named.
        rewritten: Paths of entries rewritten in place. A model compiled on PyTorch
            records its optimizer as `keras.src.backend.torch.optimizers.torch_adam.Adam`;
            plain Keras would import that module (and torch) on any backend, so the
            entry is rewritten to the public `keras.optimizers` class, the same
            optimizer for whichever backend loads the file.
        layers: Layers (and models) named, nested ones included.
        modules: Every `module` string the config names (what the import guard blocks).
        stateful_rnns: The configs of stateful recurrent layers (the parameter count
            builds them stateless and adds their state variables).
    """

    classes: set = dataclasses.field(default_factory=set)
    rewritten: list = dataclasses.field(default_factory=list)
    layers: int = 0
    modules: set = dataclasses.field(default_factory=set)
    stateful_rnns: list = dataclasses.field(default_factory=list)


def _path(link) -> str:
    keys = []
    while link is not None:
        link, key = link
        keys.append(key)
    out = []
    for key in reversed(keys):
        out.append(f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key)))
    text = "".join(out) or "<root>"
    return text if len(text) <= 300 else "..." + text[-300:]


class _Walker:
    def __init__(self, custom_objects: Mapping[str, Any], limits: LoadLimits, where: str):
        self.custom_objects = custom_objects
        self.limits = limits
        self.where = where
        self.findings = ConfigFindings()
        self._layer_base = keras.layers.Layer
        self._rnn = keras.layers.RNN

    def refuse(self, link, reason: str) -> UnsafeModelError:
        return UnsafeModelError(f"{self.where}: entry '{_path(link)}' {reason}")

    def run(self, config: Any) -> ConfigFindings:
        max_depth = self.limits.max_depth
        stack: list = [(config, None, 0)]
        while stack:
            node, link, depth = stack.pop()
            if depth > max_depth:
                raise self.limits.exceeded(
                    "max_depth",
                    depth,
                    f"the config is nested too deeply at '{_path(link)}'",
                    self.where,
                )
            if isinstance(node, dict):
                if "class_name" in node:
                    self.entry(node, link)
                for key, value in node.items():
                    if isinstance(value, (dict, list)):
                        stack.append((value, (link, key), depth + 1))
            else:
                for index, value in enumerate(node):
                    if isinstance(value, (dict, list)):
                        stack.append((value, (link, index), depth + 1))
        return self.findings

    # ------------------------------------------------------------------ entries
    def entry(self, node: dict, link) -> None:
        class_name = node["class_name"]
        if not isinstance(class_name, str):
            raise self.refuse(link, "has a malformed class_name (Keras expects a string)")
        if class_name in _DATA_MARKERS:
            self.data(node, link)
            return
        if class_name == "__lambda__":
            raise self.refuse(
                link, "is a Python lambda (serialized bytecode); refused, it would run code"
            )
        if class_name == "__typespec__":
            raise self.refuse(
                link, f"is a TensorFlow TypeSpec from {node.get('module')!r}; refused"
            )
        module = node.get("module")
        if isinstance(module, str):
            self.findings.modules.add(module)
        if self.backend_optimizer(node):
            node["module"] = "keras.optimizers"
            self.findings.rewritten.append(_path(link))
            self.findings.classes.add(f"keras.optimizers.{class_name}")
            return
        try:
            found = resolve(node, self.custom_objects)
            judge(node, found)
        except Refusal as e:
            raise self.refuse(link, str(e)) from None
        self.findings.classes.add(found.name)
        obj = found.obj
        if isinstance(obj, type) and issubclass(obj, self._layer_base):
            self.layer(obj, node, link)
        build_config = node.get("build_config")
        if build_config is not None:
            self.shapes(build_config, link, "build_config")

    def layer(self, cls: type, node: dict, link) -> None:
        findings = self.findings
        findings.layers += 1
        if self.limits.max_layers is not None and findings.layers > self.limits.max_layers:
            raise self.limits.exceeded(
                "max_layers",
                findings.layers,
                "the config declares at least this many layers",
                self.where,
            )
        inner = node.get("config")
        for name in (node.get("name"), inner.get("name") if isinstance(inner, dict) else None):
            reason = unsafe_name_reason(name)
            if reason:
                raise self.refuse(
                    link,
                    f"({node['class_name']}) is named {name!r}, which {reason}; refused "
                    "(Keras builds asset and weight paths from layer names)",
                )
        if not isinstance(inner, dict):
            return
        for option in FILE_OPTIONS:
            value = inner.get(option)
            if isinstance(value, str):
                raise self.refuse(
                    link,
                    f"({node['class_name']}) reads its {option} from the file {value!r}; "
                    f"refused (a saved model carries its vocabulary inline or in assets/)",
                )
        if issubclass(cls, _compat.IndexLookup) and inner.get("vocabulary") is not None:
            if not isinstance(inner["vocabulary"], (list, dict)):
                raise self.refuse(link, "has a vocabulary that is neither a list nor an array")
        for key in _SHAPE_KEYS:
            if isinstance(inner.get(key), list):
                self.shapes(inner[key], link, key)
        if issubclass(cls, self._rnn) and inner.get("stateful") is True:
            findings.stateful_rnns.append(inner)

    def backend_optimizer(self, node: dict) -> bool:
        """Whether `node` is a backend-specific optimizer entry to rewrite (see
        `ConfigFindings.rewritten`)."""
        module, class_name = node.get("module"), node.get("class_name")
        if not isinstance(module, str) or not _BACKEND_OPTIMIZER_MODULE.match(module):
            return False
        if node.get("registered_name") not in (None, class_name):
            return False  # only the plain case; anything else goes through the checks
        public = getattr(keras.optimizers, class_name, None)
        return isinstance(public, type) and issubclass(public, keras.optimizers.Optimizer)

    # --------------------------------------------------------------------- data
    def data(self, node: dict, link) -> None:
        class_name = node["class_name"]
        inner = node.get("config")
        if class_name in ("__numpy__", "__tensor__"):
            if not isinstance(inner, dict):
                raise self.refuse(link, f"is a malformed {class_name} entry")
            dtype = inner.get("dtype")
            if not isinstance(dtype, str) or dtype not in _ARRAY_DTYPES:
                raise self.refuse(
                    link,
                    f"is an array of dtype {dtype!r}; only plain numeric dtypes are allowed "
                    f"(a structured or sub-array dtype such as '(16000,16000)f8' makes NumPy "
                    f"allocate far more than the file holds)",
                )
            self.elements(inner.get("value"), link)
        elif class_name == "__keras_tensor__":
            if isinstance(inner, dict) and isinstance(inner.get("shape"), list):
                self.shapes(inner["shape"], link, "shape")
        elif class_name == "__bytes__":
            if not (isinstance(inner, dict) and isinstance(inner.get("value"), str)):
                raise self.refuse(link, "is a malformed __bytes__ entry")

    def elements(self, value: Any, link) -> None:
        limit = self.limits.max_tensor_elements
        if limit is None:
            return
        count = 0
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            else:
                count += 1
            if count > limit:
                raise self.limits.exceeded(
                    "max_tensor_elements",
                    count,
                    f"the array at '{_path(link)}' holds at least this many elements",
                    self.where,
                )

    def shapes(self, value: Any, link, what: str) -> None:
        """Bounds every shape (a list of ints and None) found in `value`."""
        limit = self.limits.max_tensor_elements
        if limit is None:
            return
        stack = [value]
        while stack:
            item = stack.pop()
            if isinstance(item, dict):
                stack.extend(v for v in item.values() if isinstance(v, (dict, list)))
                continue
            if not isinstance(item, list):
                continue
            dims = [d for d in item if not (isinstance(d, int) and not isinstance(d, bool))]
            if item and all(d is None for d in dims):
                total = 1
                for d in item:
                    if d is not None:
                        total *= max(abs(d), 1)
                        if total > limit:
                            raise self.limits.exceeded(
                                "max_tensor_elements",
                                total,
                                f"the {what} at '{_path(link)}' declares a tensor shape "
                                f"{item[:8]!r} with at least this many elements",
                                self.where,
                            )
            else:
                stack.extend(v for v in item if isinstance(v, (dict, list)))


def check_config(
    config: Any,
    custom_objects: Mapping[str, Any] | None = None,
    where: str = "config",
    limits: LoadLimits | None = None,
) -> ConfigFindings:
    """Walks a serialized Keras config and refuses anything outside the allow-list or
    the budget.

    Args:
        config: The parsed `config.json`.
        custom_objects: Objects the caller trusts, as for `keras.saving.load_model`.
        where: How to name the file in errors.
        limits: The `LoadLimits` (default: `DEFAULT_LIMITS`).

    Returns:
        The `ConfigFindings`. Backend-specific optimizer entries are rewritten in place.

    Raises:
        UnsafeModelError: An entry is refused (the message names its path), or the
            config is over a limit (`ModelTooLargeError`), or checking it ran out of
            memory or recursion.

    Example:

    ```python
    findings = check_config(json.loads(raw_config), where="model.keras")
    ```
    """
    limits = resolve_limits(limits)
    try:
        return _Walker(dict(custom_objects or {}), limits, where).run(config)
    except (MemoryError, RecursionError) as e:
        raise UnsafeModelError(
            f"{where}: checking the config exhausted {type(e).__name__}; refused"
        ) from None
