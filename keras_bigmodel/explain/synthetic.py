"""Tasks whose right explanation is known, to test explanation methods against.

- `find_max`: a sequence of numbers; the label is its maximum. A model that solves it
  must look at the largest step, so its attention and its saliency must peak there.
- `add_two_numbers`: each step is a `(value, marker)` pair and exactly two steps are
  marked; the label is the mean of the two marked values (the "adding problem" of
  Hochreiter and Schmidhuber, 1997). The two largest attention weights must fall on
  the marked steps.

- `planted_patch`: handwritten digits (scikit-learn's 8x8 set), half of them with a
  bright square planted on the background; the label says whether the patch is there,
  so a model that solves it must look at the patch, and `regions` marks its pixels.

`regions(task)` gives the boolean masks of the right answer for
`kbm.explain.metrics.pointing_game`.

`attention_model` is the smallest model that can solve both: the package's
`AttentionLayer` (the documents' additive score) pooling the sequence, then a
`Dense(1)`. Its weights start from a NumPy generator, so the same seed gives the same
model, and the same training run, on TensorFlow, JAX and PyTorch; the head starts at
zero, so no direction of attention is favoured before training. `solve` trains it in
about a second on a CPU.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np

from keras_bigmodel import validation as v

__all__ = [
    "TASKS",
    "ImageTask",
    "Task",
    "add_two_numbers",
    "attention_model",
    "find_max",
    "planted_patch",
    "regions",
    "solve",
    "train",
]


@dataclasses.dataclass(frozen=True)
class Task:
    """A synthetic regression task with a known answer for each test sequence.

    `answer` holds, per test sequence, the step(s) a correct explanation points at:
    `(n_test,)` positions of the maximum for `find_max`, `(n_test, 2)` marked
    positions (ascending) for `add_two_numbers`.
    """

    name: str
    x_train: np.ndarray  # (n_train, length, features) float32
    y_train: np.ndarray  # (n_train, 1) float32
    x_test: np.ndarray
    y_test: np.ndarray
    answer: np.ndarray


def _split(name, x, y, answer, n_train):
    return Task(name, x[:n_train], y[:n_train], x[n_train:], y[n_train:], answer[n_train:])


def _check_sizes(n_train, n_test, length, seed, minimum_length):
    n_train = v.check_positive_int("n_train", n_train)
    n_test = v.check_positive_int("n_test", n_test)
    length = v.check_positive_int("length", length)
    if length < minimum_length:
        raise ValueError(f"`length` must be at least {minimum_length}. Received: length={length}")
    return n_train, n_test, length, v.check_seed("seed", seed)


def find_max(n_train: int = 512, n_test: int = 200, length: int = 8, seed: int = 0) -> Task:
    """Sequences of `length` uniform numbers in [0, 1), shape `(n, length, 1)`; the
    label is the maximum and the answer its position.

    Example:

    ```python
    task = kbm.explain.synthetic.find_max()
    task.x_test.shape, task.answer.shape      # (200, 8, 1), (200,)
    ```
    """
    n_train, n_test, length, seed = _check_sizes(n_train, n_test, length, seed, 2)
    rng = np.random.default_rng(seed)
    values = rng.uniform(size=(n_train + n_test, length)).astype("float32")
    return _split(
        "find_max",
        values[..., None],
        values.max(axis=1, keepdims=True),
        values.argmax(axis=1),
        n_train,
    )


def add_two_numbers(n_train: int = 512, n_test: int = 200, length: int = 8, seed: int = 0) -> Task:
    """Sequences of `(value, marker)` pairs, shape `(n, length, 2)`, with two steps
    marked; the label is the mean of the two marked values, the answer their positions.

    Example:

    ```python
    task = kbm.explain.synthetic.add_two_numbers()
    task.x_test.shape, task.answer.shape      # (200, 8, 2), (200, 2)
    ```
    """
    n_train, n_test, length, seed = _check_sizes(n_train, n_test, length, seed, 3)
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    values = rng.uniform(size=(n, length)).astype("float32")
    marked = np.sort(np.argsort(rng.uniform(size=(n, length)), axis=1)[:, :2], axis=1)
    markers = np.zeros((n, length), "float32")
    rows = np.arange(n)[:, None]
    markers[rows, marked] = 1.0
    labels = values[rows, marked].mean(axis=1, keepdims=True)
    return _split("add_two_numbers", np.stack([values, markers], axis=-1), labels, marked, n_train)


TASKS = {"find_max": find_max, "add_two_numbers": add_two_numbers}


@dataclasses.dataclass(frozen=True)
class ImageTask:
    """A classification task on images with the evidence's pixels known.

    `y_*` are integer labels; `patch_*` are boolean masks `(n, H, W)` of the planted
    pixels (all False where there is no patch).
    """

    name: str
    x_train: np.ndarray  # (n_train, 8, 8, 1) float32 in [0, 1]
    y_train: np.ndarray  # (n_train,) int64: 1 where a patch is planted
    x_test: np.ndarray
    y_test: np.ndarray
    patch_train: np.ndarray  # (n_train, 8, 8) bool
    patch_test: np.ndarray


def planted_patch(n_train: int = 600, n_test: int = 200, size: int = 2, seed: int = 0):
    """Digits with a `size` x `size` square of ones planted on the background of every
    other image; the label is 1 where the square is. The square sits at a random spot
    where the digit leaves it and a one-pixel surround dark (below 0.1), or at the
    dimmest spot if there is none.

    Example:

    ```python
    task = kbm.explain.synthetic.planted_patch(n_train=100, n_test=20)
    task.x_test.shape, task.patch_test.shape      # (20, 8, 8, 1), (20, 8, 8)
    ```
    """
    from sklearn.datasets import load_digits

    n_train = v.check_positive_int("n_train", n_train)
    n_test = v.check_positive_int("n_test", n_test)
    size = v.check_positive_int("size", size)
    seed = v.check_seed("seed", seed)
    if size > 3:
        raise ValueError(f"`size` must be at most 3 on 8x8 digits. Received: size={size}")
    images = load_digits().images.astype("float32") / 16.0
    n = n_train + n_test
    if n > len(images):
        raise ValueError(
            f"`n_train + n_test` must be at most {len(images)} (the digits). Received: {n}"
        )
    rng = np.random.default_rng(seed)
    images = images[rng.permutation(len(images))[:n]].copy()
    labels = (np.arange(n) % 2).astype("int64")
    masks = np.zeros((n, 8, 8), bool)
    for i in np.flatnonzero(labels):
        # how bright each square's spot is, with a one-pixel surround
        brightness = {
            (r, c): images[i, max(r - 1, 0) : r + size + 1, max(c - 1, 0) : c + size + 1].max()
            for r in range(8 - size + 1)
            for c in range(8 - size + 1)
        }
        dark = [spot for spot, value in brightness.items() if value < 0.1]
        if not dark:  # no dark room: the dimmest spot
            dark = [min(brightness, key=brightness.get)]
        r, c = dark[rng.integers(len(dark))]
        masks[i, r : r + size, c : c + size] = True
        images[i][masks[i]] = 1.0
    x = images[..., None]
    return ImageTask(
        "planted_patch",
        x[:n_train],
        labels[:n_train],
        x[n_train:],
        labels[n_train:],
        masks[:n_train],
        masks[n_train:],
    )


def regions(task) -> np.ndarray:
    """Boolean masks of where the right explanation lies, for the test examples:
    `(n_test, length)` for `find_max` (the maximum) and `add_two_numbers` (the two
    marked steps), `(n_test, H, W)` for `planted_patch` (the patch; empty rows for
    images without one: select `task.y_test == 1` for the pointing game).

    Example:

    ```python
    task = kbm.explain.synthetic.find_max(n_test=4)
    kbm.explain.synthetic.regions(task).sum(axis=1)     # [1, 1, 1, 1]
    ```
    """
    if isinstance(task, ImageTask):
        return task.patch_test
    if not isinstance(task, Task):
        raise TypeError(
            f"`task` must be a synthetic Task or ImageTask. Received: {type(task).__name__}"
        )
    masks = np.zeros(task.x_test.shape[:2], bool)
    rows = np.arange(len(masks))[:, None]
    masks[rows, task.answer.reshape(len(masks), -1)] = True
    return masks


def attention_model(
    length: int | None,
    features: int,
    units: int = 8,
    score: str = "additive",
    seed: int = 0,
) -> keras.Model:
    """`Input(length, features) -> AttentionLayer(units, score) -> Dense(1)`, with
    NumPy-initialised weights (the same on every backend for one seed).

    The attention projection `W` starts small (normal, 0.1) and the head at zero, so
    attention starts nearly uniform and the head starts neutral: whatever the model
    attends to after training, it learned.

    Example:

    ```python
    model = kbm.explain.synthetic.attention_model(8, 1)
    ```
    """
    from keras_bigmodel.layers import AttentionLayer

    features = v.check_positive_int("features", features)
    units = v.check_positive_int("units", units)
    seed = v.check_seed("seed", seed)
    inputs = keras.Input((length, features), name="sequence")
    # Zeros first (no random kernel to draw, which JAX compiles per shape), NumPy next.
    context = AttentionLayer(units, score=score, kernel_initializer="zeros", name="attention")(
        inputs
    )
    outputs = keras.layers.Dense(1, kernel_initializer="zeros", name="value")(context)
    model = keras.Model(inputs, outputs, name=f"attention_{score}")
    rng = np.random.default_rng(seed)
    weights = []
    for variable in model.weights:
        shape = tuple(variable.shape)
        path = variable.path
        if path.endswith("bias") or path.startswith("value/"):
            weights.append(np.zeros(shape, "float32"))
        elif "/W/" in path:
            weights.append((0.1 * rng.normal(size=shape)).astype("float32"))
        else:  # V.kernel or the query: unit scale
            weights.append((rng.normal(size=shape) / np.sqrt(shape[0])).astype("float32"))
    model.set_weights(weights)
    return model


def train(
    model: keras.Model,
    task: Task,
    steps: int = 80,
    batch_size: int = 64,
    learning_rate: float = 0.1,
) -> float:
    """Trains `model` on `task` with Adam and mean squared error for `steps` batches
    (in order, no shuffling: the run is the same on every backend). Returns the test
    mean squared error divided by the test labels' variance (1.0 = no better than
    predicting the mean).

    Example:

    ```python
    relative_error = kbm.explain.synthetic.train(model, task)
    ```
    """
    steps = v.check_positive_int("steps", steps)
    batch_size = v.check_positive_int("batch_size", batch_size)
    learning_rate = v.check_number("learning_rate", learning_rate, minimum=0.0, min_inclusive=False)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    per_epoch = max(1, len(task.x_train) // batch_size)
    epochs = -(-steps // per_epoch)
    count = min(len(task.x_train), per_epoch * batch_size)
    model.fit(
        task.x_train[:count],
        task.y_train[:count],
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
    )
    predicted = np.asarray(keras.ops.convert_to_numpy(model(task.x_test, training=False)))
    return float(np.mean((predicted - task.y_test) ** 2) / np.var(task.y_test))


def solve(name: str, seed: int = 0, steps: int = 80, length: int = 8):
    """Makes the task `name` ("find_max" or "add_two_numbers"), builds
    `attention_model` for it and trains it. Returns `(model, task, relative_error)`.

    Example:

    ```python
    model, task, error = kbm.explain.synthetic.solve("find_max")
    weights = kbm.explain.attention_scores(model, task.x_test)
    (weights.argmax(axis=1) == task.answer).mean()          # 1.0
    ```
    """
    v.check_choice("name", name, TASKS)
    task = TASKS[name](length=length, seed=seed)
    model = attention_model(length, task.x_train.shape[-1], seed=seed)
    return model, task, train(model, task, steps=steps)
