"""Every private Keras API the package uses goes through `keras_bigmodel/_compat.py`
(DESIGN.md): no `keras.src` import and no Keras-private attribute (a `_name` that
Keras's layers, models, callbacks, optimizers, variables, tensors, losses, metrics or
graph nodes define) anywhere else in the package or the zoo."""

import ast
import pathlib

import keras
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.backend_independent


def _private_names() -> set[str]:
    """The `_names` of Keras's classes and of live instances (many are set in
    `__init__` or `compile`, so a class's `dir` lacks them)."""
    x = keras.Input((2,))
    dense = keras.layers.Dense(1)
    model = keras.Model(x, dense(x))
    model.compile("sgd", "mse")
    callback = keras.callbacks.Callback()
    callback.set_model(model)
    objects = [
        keras.layers.Layer, keras.Model, keras.Sequential, keras.callbacks.Callback,
        keras.optimizers.Optimizer, keras.Variable, keras.KerasTensor, keras.losses.Loss,
        keras.metrics.Metric, keras.Operation, dense, model, x, callback, model.optimizer,
        dense.kernel, keras.losses.MeanSquaredError(), keras.metrics.Mean(),
        dense._inbound_nodes[0],  # a functional graph's node
    ]  # fmt: skip
    return {name for obj in objects for name in dir(obj) if name.startswith("_") and name[1] != "_"}


def _sources():
    for folder in ("keras_bigmodel", "zoo"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path.name != "_compat.py":
                yield path


def _assigned(trees) -> set[str]:
    """Attribute names the package's own code assigns (`self._layers = ...` in its own
    callbacks): its own state, even where Keras uses the same name elsewhere."""
    names = set()
    for tree in trees:
        for node in ast.walk(tree):
            targets = node.targets if isinstance(node, ast.Assign) else (
                [node.target] if isinstance(node, (ast.AnnAssign, ast.AugAssign)) else []
            )  # fmt: skip
            names |= {t.attr for t in targets if isinstance(t, ast.Attribute)}
    return names


def test_private_keras_is_used_through_compat_only():
    keras_private = _private_names()
    # the probe sees the names _compat.py wraps
    assert {"_flatten_layers", "_inbound_nodes", "_loss_tracker"} <= keras_private
    trees = {path: ast.parse(path.read_text(encoding="utf-8")) for path in _sources()}
    private = keras_private - _assigned(trees.values())
    assert {"_flatten_layers", "_inbound_nodes", "_loss_tracker"} <= private
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in private:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
            modules = (
                [alias.name for alias in node.names] if isinstance(node, ast.Import) else
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )  # fmt: skip
            found += [
                f"{path.relative_to(ROOT)}:{node.lineno} import {m}"
                for m in modules
                if m == "keras.src" or m.startswith("keras.src.")
            ]
    assert not found, "private Keras outside _compat.py:\n" + "\n".join(found)
