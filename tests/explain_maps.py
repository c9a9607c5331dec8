"""The explanation maps that tests/test_backends.py compares across TensorFlow, JAX and
PyTorch: every zoo preset (tiny) and a nested model are saved once with their inputs
(`save_cases`); each backend's process reloads them and computes (`compute`) saliency,
SmoothGrad, integrated gradients, Grad-CAM, Grad-CAM++ and attention, on the cnn and
attention_rnn presets input x gradient, GradientSHAP, DeepLIFT and occlusion, and on the
cnn LayerCAM, deletion, insertion and infidelity (the other metrics are checked against
NumPy on every backend in test_explain_metrics.py)."""

import json
import os

import numpy as np


def _nested_model():
    import keras
    from explain_helpers import ZEROS, numpy_init

    backbone = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(3, 3, activation="relu", **ZEROS)],
        name="backbone",
    )
    head_in = keras.Input((6, 6, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(head_in)
    head = keras.Model(
        head_in, keras.layers.Dense(4, activation="softmax", **ZEROS)(pooled), name="head"
    )
    image = keras.Input((8, 8, 1), name="image")
    return numpy_init(keras.Model(image, head(backbone(image)), name="nested"))


def save_cases(directory: str) -> None:
    """Writes `<case>.keras`, `<case>.npz` (inputs) and `cases.json` (what to compute)."""
    from explain_helpers import build_tiny, explained_output, inputs_for

    import keras_bigmodel as kbm
    import zoo

    cases = {}
    models = {name: build_tiny(name) for name in zoo.list_presets()}
    models["nested"] = _nested_model()
    for name, model in models.items():
        arrays = inputs_for(model, batch=2, seed=1)
        names = (
            sorted(model.input) if isinstance(model.input, dict) else [t.name for t in model.inputs]
        )
        kbm.save_model(model, os.path.join(directory, f"{name}.keras"))
        np.savez(os.path.join(directory, f"{name}.npz"), *arrays)
        output = explained_output(model)
        tensor = model.output[output] if isinstance(model.output, dict) else model.outputs[0]
        classes = int(tensor.shape[-1])
        cases[name] = {
            "inputs": names,
            "dict": isinstance(model.input, dict),
            "output": output,
            "classes": [1 % classes, classes - 1],
        }
    with open(os.path.join(directory, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(cases, f)


def compute(directory: str) -> dict:
    """Every map of every case, as {"case/method/input": array}, on this process's backend."""
    import keras_bigmodel as kbm

    explain = kbm.explain
    with open(os.path.join(directory, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    results = {}
    for name, case in cases.items():
        model = kbm.load_model(os.path.join(directory, f"{name}.keras"))
        with np.load(os.path.join(directory, f"{name}.npz")) as data:
            arrays = [data[f"arr_{i}"] for i in range(len(case["inputs"]))]
        feed = (
            dict(zip(case["inputs"], arrays))
            if case["dict"]
            else (arrays if len(arrays) > 1 else arrays[0])
        )
        classes, output = case["classes"], case["output"]
        maps = {
            "saliency": explain.saliency(model, feed, classes, output=output),
            "integrated_gradients": explain.attribution_map(
                explain.integrated_gradients(
                    model, feed, classes, output=output, steps=8, batch_size=2
                )
            ),
        }
        if name == "cnn":
            maps["smoothgrad"] = explain.smoothgrad(model, feed, classes, samples=3, seed=0)
        if explain.conv_layers(model):
            for method in ("gradcam", "gradcam++"):
                maps[method] = explain.gradcam(model, feed, classes, output=output, method=method)
        if len(explain.attention_layers(model)) == 1:
            maps["attention"] = explain.attention_scores(model, feed)
        if name in ("cnn", "attention_rnn"):
            maps.update(_new_methods_and_metrics(explain, model, feed, classes, name == "cnn"))
        for method, value in maps.items():
            for key, array in value.items() if isinstance(value, dict) else [("", value)]:
                results[f"{name}/{method}/{key}"] = np.asarray(array)
    return results


def _new_methods_and_metrics(explain, model, x, classes, with_metrics) -> dict:
    metrics = explain.metrics
    found = {
        "input_x_gradient": explain.input_x_gradient(model, x, classes),
        "gradient_shap": explain.gradient_shap(model, x, classes, samples=3, seed=0),
        "occlusion": explain.occlusion(model, x, classes, window=2),
        "deeplift": explain.deeplift(model, x, classes),
    }
    if not with_metrics:
        return found
    found["layercam"] = explain.layercam(model, x, classes)
    maps = found["input_x_gradient"]
    for kind in ("deletion", "insertion"):
        result = getattr(metrics, kind)(model, x, classes, maps, steps=3)
        found[kind] = np.concatenate([result["scores"], result["auc"][:, None]], axis=1)
    found["infidelity"] = metrics.infidelity(model, x, classes, maps, samples=2, scale=0.05)
    return found
