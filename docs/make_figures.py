"""Regenerates the README's explanation figures in docs/ from models trained on the digits.

Offline: scikit-learn's bundled 8x8 digits (`keras_bigmodel.data.load_digits`), no
download. Trains the `cnn` preset on the images, the `attention_rnn` and `rnn` presets
on the image rows as 8-step sequences, then writes, with `kbm.explain.explain`:

    docs/cnn-gradcam.png                Grad-CAM of the CNN
    docs/cnn-saliency.png               saliency of the CNN
    docs/cnn-integrated-gradients.png   integrated gradients of the CNN
    docs/attention_rnn-attention.png    attention of the attention_rnn over the rows
    docs/rnn-saliency.png               saliency of the LSTM: time step x feature
    docs/add_two_numbers-attention.png  attention on a task with a known answer

Run from the repository root, on any backend:

    python docs/make_figures.py [--out docs] [--seed 0]
    KERAS_BACKEND=jax python docs/make_figures.py --out /tmp/figures
"""

from __future__ import annotations

import argparse
import os
import time

import keras
import numpy as np

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.data import Digits, load_digits

EPOCHS = {"cnn": 15, "attention_rnn": 30, "rnn": 30}
CLASS_NAMES = [str(d) for d in range(10)]


def _train(name: str, x, y, seed: int) -> keras.Model:
    keras.utils.set_random_seed(seed)
    shape = list(x.shape[1:])
    model = zoo.build(name, input_shape=shape)
    model.fit(x, Digits.one_hot(y), epochs=EPOCHS[name], batch_size=32, verbose=0)
    return model


def _accuracy(model, x, y) -> float:
    predicted = np.argmax(keras.ops.convert_to_numpy(model(x, training=False)), axis=-1)
    return float(np.mean(predicted == y))


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--examples", type=int, default=8)
    args = parser.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    started = time.perf_counter()
    digits = load_digits(seed=args.seed)
    n = args.examples
    images, labels = digits.x_test[:n], digits.y_test[:n]
    rows = Digits.sequences(images)
    backend = keras.backend.backend()
    written = {}

    cnn = _train("cnn", digits.x_train, digits.y_train, args.seed)
    accuracies = {"cnn": _accuracy(cnn, digits.x_test, digits.y_test)}
    for method, file in (
        ("gradcam", "cnn-gradcam.png"),
        ("saliency", "cnn-saliency.png"),
        ("integrated_gradients", "cnn-integrated-gradients.png"),
    ):
        done = kbm.explain.explain(
            cnn,
            images,
            os.path.join(args.out, file),
            labels=labels,
            class_names=CLASS_NAMES,
            method=method,
            model_name="cnn",
        )
        written[file] = done["method"]

    sequences_train = Digits.sequences(digits.x_train)
    sequences_test = Digits.sequences(digits.x_test)
    for name, method, file in (
        ("attention_rnn", "attention", "attention_rnn-attention.png"),
        ("rnn", "saliency", "rnn-saliency.png"),
    ):
        model = _train(name, sequences_train, digits.y_train, args.seed)
        accuracies[name] = _accuracy(model, sequences_test, digits.y_test)
        done = kbm.explain.explain(
            model,
            rows,
            os.path.join(args.out, file),
            labels=labels,
            class_names=CLASS_NAMES,
            method=method,
            model_name=name,
        )
        written[file] = done["method"]
    # A known answer: the label is the mean of the two marked steps.
    model, task, _ = kbm.explain.synthetic.solve("add_two_numbers", seed=args.seed)
    weights = kbm.explain.attention_scores(model, task.x_test[:n])
    file = "add_two_numbers-attention.png"
    kbm.explain.save_attention_plot(
        weights,
        os.path.join(args.out, file),
        task.x_test[:n],
        titles=[f"marked steps: {a} and {b}" for a, b in task.answer[:n]],
        title="Attention of an AttentionLayer trained on add_two_numbers: the label is the "
        "mean of the two marked steps (features: value, marker)",
    )
    written[file] = "attention"
    top_two = np.sort(np.argsort(-kbm.explain.attention_scores(model, task.x_test), 1)[:, :2], 1)
    accuracies["add_two_numbers top-2 attention on the marked steps"] = float(
        np.mean(np.all(top_two == task.answer, axis=1))
    )
    seconds = time.perf_counter() - started
    scores = ", ".join(f"{k} {v:.1%}" for k, v in accuracies.items())
    print(f"{backend}: digits test accuracy {scores}")
    print(f"{backend}: wrote {', '.join(sorted(written))} to {args.out} in {seconds:.0f} s")
    return written


if __name__ == "__main__":
    main()
