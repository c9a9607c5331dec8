"""Images inside the model: the `ImagePreprocessing` front (resize + rescale), the
reader's raw pixels at each image's own size, a front model trained, saved, reloaded
through the hardened loader and predicting images of several sizes as the old path
(Pillow resize to the model's size, then [0, 1] pixels) does, and its exports at the
training size."""

import os

import keras
import numpy as np
import pytest
from data_files import digits_subset, read_png, write_image_folder, write_sized_folder
from PIL import Image

import keras_bigmodel as kbm
import zoo
from keras_bigmodel import data
from keras_bigmodel.data import DataError, load
from keras_bigmodel.data.image_preprocessing import (
    ImagePreprocessing,
    at_training_size,
    front_of,
    network_view,
    with_front,
)

NAMES = ["zero", "one", "two"]
SIZES = [(8, 8), (16, 16), (6, 5)]  # the model's size, bigger and smaller


def _numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _pillow(pixels, size):
    """Pillow's bilinear resize (what the reader does) of (h, w, 1) 0..255 values."""
    picture = Image.fromarray(np.asarray(pixels)[..., 0].astype("uint8"))
    return np.asarray(picture.resize((size[1], size[0]), Image.BILINEAR), "float32")[..., None]


def test_the_front_resizes_like_the_reader_and_rescales():
    """Against Pillow's bilinear resize (what the reader does), shrinking and
    enlarging; the model's own size is passed through unresized (exactly x * 1/255)."""
    layer = ImagePreprocessing(8, 8)
    images, _ = digits_subset(per_class=2)
    digits = np.round(images * 255.0)
    for size in ((32, 24), (5, 6)):
        raw = np.stack([_pillow(d, size) for d in digits])
        expected = np.stack([_pillow(r, (8, 8)) for r in raw]) / 255.0
        got = _numpy(layer(raw))
        assert got.shape == (len(raw), 8, 8, 1)
        assert np.abs(got - expected).max() < 3.0 / 255, (size, np.abs(got - expected).max())
    same = np.random.default_rng(0).uniform(0, 255, (2, 8, 8, 3)).astype("float32")
    np.testing.assert_array_equal(_numpy(layer(same)), same * np.float32(1 / 255))


@pytest.mark.backend_independent
def test_front_arguments_config_and_errors():
    layer = ImagePreprocessing(4, 6, scale=0.5, offset=-1.0, antialias=False, name="front")
    config = layer.get_config()
    assert {k: config[k] for k in ("height", "width", "scale", "offset", "antialias")} == {
        "height": 4,
        "width": 6,
        "scale": 0.5,
        "offset": -1.0,
        "antialias": False,
    }
    assert ImagePreprocessing.from_config(config).size == (4, 6)
    assert layer.compute_output_shape((None, None, None, 3)) == (None, 4, 6, 3)
    for kwargs, message in (
        ({"height": 0}, r"`height` must be an integer in \[1, 65536\]. Received: height=0"),
        ({"width": 2.5}, r"`width` must be an integer in \[1, 65536\]. Received: width=2.5"),
        ({"scale": -1}, r"`scale` must be > 0. Received: scale=-1"),
        ({"offset": "0"}, r"`offset` must be a number. Received: offset='0'"),
        ({"interpolation": "cubic"}, r"`interpolation` must be one of \['bilinear'"),
        ({"antialias": 1}, r"`antialias` must be True or False. Received: antialias=1"),
    ):
        with pytest.raises(ValueError, match=message):
            ImagePreprocessing(**{"height": 8, "width": 8, **kwargs})
    with pytest.raises(ValueError, match=r"takes images \(batch, height, width, channels\)"):
        ImagePreprocessing(8, 8)(np.zeros((2, 8, 8), "float32"))
    vector = zoo.build("multitask", compile=False, **zoo.get_preset("multitask").tiny)
    with pytest.raises(ValueError, match="with_front needs a functional model with one image"):
        with_front(vector)
    cnn = with_front(zoo.build("cnn", compile=False, **zoo.get_preset("cnn").tiny))
    with pytest.raises(ValueError, match="has an ImagePreprocessing front already"):
        with_front(cnn)
    with pytest.raises(ValueError, match=r"`pixels` must be one of \['unit', 'raw'\]"):
        data.LoadOptions(pixels="bytes")


@pytest.mark.backend_independent
def test_the_reader_keeps_each_images_size_and_raw_pixels(tmp_path):
    images, labels = digits_subset(per_class=3)
    root = write_sized_folder(tmp_path / "mixed", images, labels, NAMES, SIZES)
    with pytest.raises(DataError, match=r"images differ in size: .* resize them all with"):
        load(root)
    for memory_limit in (data.DEFAULT_MEMORY_LIMIT, 0):  # in memory, then streamed
        ds = load(root, own_sizes=True, pixels="raw", memory_limit=memory_limit)
        assert ds.input_shapes() == {"x": (None, None, 1)} and len(ds) == 9
        assert ds.summary().startswith("9 images (3 sizes grayscale) in 3 classes")
        groups = ds.size_groups()
        assert sorted(len(g) for g in groups) == [3, 3, 3]
        for group in groups:
            pixels = ds.take(group)
            expected = [read_png(os.path.join(root, ds.ids[i])) for i in group]
            np.testing.assert_array_equal(pixels, np.stack(expected))  # raw 0..255, unresized
            part = ds.subset(group)
            assert part.input_shapes() == {"x": expected[0].shape}
            np.testing.assert_array_equal(part.features(), pixels)
        with pytest.raises(DataError, match="images of 3 different sizes cannot be one batch"):
            ds.features()
    resized = load(root, image_size=(8, 8), pixels="raw")
    unit = load(root, image_size=(8, 8))
    np.testing.assert_allclose(resized.features() / 255.0, unit.features(), atol=1e-6)
    assert resized.info["scale"] == "1" and unit.info["scale"] == "1/255"
    expected = np.stack([read_png(os.path.join(root, i), (8, 8)) for i in resized.ids])
    np.testing.assert_array_equal(resized.features(), expected)
    digits = load("digits", subset="test", pixels="raw")
    np.testing.assert_array_equal(
        digits.features(), np.round(data.load_digits().x_test * 255.0).astype("float32")
    )


def test_a_trained_front_model_reloads_and_predicts_images_of_any_size(tmp_path):
    """Trained a few steps on raw 8x8 pixels, saved and reloaded by `kbm.load_model`:
    images of 16x16 and 6x5 (and 8x8) give what the old path gives, Pillow's resize to
    8x8 and [0, 1] pixels through the network without the front."""
    keras.utils.set_random_seed(0)
    images, labels = digits_subset(per_class=8)
    model = with_front(
        zoo.build("cnn", labels="sparse", **zoo.get_preset("cnn").tiny)
    )  # tiny: 8x8x1, 3 classes
    assert tuple(model.input.shape) == (None, None, None, 1)
    raw = np.round(images * 255.0).astype("float32")
    for _ in range(3):
        model.train_on_batch(raw, labels)
    path = kbm.save_model(model, str(tmp_path / "front.keras"))
    restored = kbm.load_model(path)
    assert front_of(restored).size == (8, 8)
    np.testing.assert_allclose(_numpy(restored(raw)), _numpy(model(raw)), atol=1e-6)
    root = write_sized_folder(tmp_path / "mixed", images[:9], labels[:9], NAMES, SIZES)
    network = network_view(restored)  # the old path's model: [0, 1] pixels at 8x8
    assert tuple(network.input.shape) == (None, 8, 8, 1) and front_of(network) is None
    for size in SIZES[1:]:
        files = sorted(
            os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".png")
        )
        own = [read_png(f) for f in files if read_png(f).shape[:2] == size]
        old = np.stack([_pillow(x, (8, 8)) for x in own]) / 255.0
        got = _numpy(restored(np.stack(own)))
        np.testing.assert_allclose(got, _numpy(network(old)), atol=0.02)
        assert got.shape == (3, 3)


@pytest.mark.tensorflow_only
def test_litert_export_takes_the_training_size(tmp_path):
    """A LiteRT file of a front model takes raw pixels of the training size and
    predicts as the model does (ONNX: tests/test_cli.py, through quantize)."""
    keras.utils.set_random_seed(1)
    model = with_front(zoo.build("cnn", compile=False, **zoo.get_preset("cnn").tiny))
    fixed = at_training_size(model)
    assert tuple(fixed.input.shape) == (None, 8, 8, 1) and at_training_size(fixed) is fixed
    raw = np.random.default_rng(1).uniform(0, 255, (4, 8, 8, 1)).astype("float32")
    path = kbm.compress.export_tflite(model, str(tmp_path / "front.tflite"), None)
    runtime = kbm.compress.open_runtime(path)
    np.testing.assert_allclose(runtime.predict(raw), _numpy(model(raw)), atol=1e-5)


@pytest.mark.backend_independent
def test_a_folder_of_one_size_read_at_own_sizes_is_an_ordinary_folder(tmp_path):
    images, labels = digits_subset(per_class=2)
    root = write_image_folder(tmp_path / "imgs", images, labels, NAMES, scale=2)
    ds = load(root, own_sizes=True, pixels="raw")  # one size: an ordinary folder
    assert ds.input_shapes() == {"x": (16, 16, 1)} and len(ds.size_groups()) == 1
