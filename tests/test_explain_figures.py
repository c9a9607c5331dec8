"""The figures say what they show: explain() picks a method per model and input kind and
writes a PNG whose title names the model, method and class, whose panels say "true /
predicted", with labelled axes on sequences, the input in grey under a translucent map,
and a colour bar with its meaning. Checked on the Figure drawn and on the file written."""

import keras
import matplotlib
import numpy as np
import pytest
from explain_helpers import build_tiny, inputs_for
from PIL import Image

import keras_bigmodel as kbm
from keras_bigmodel.explain import figures

E = kbm.explain
RNG = np.random.default_rng(0)


@pytest.fixture
def drawn(monkeypatch):
    """Every Figure written, by path (the writer is wrapped, the file still written)."""
    written = {}
    original = figures._write_png

    def record(fig, path):
        written[str(path)] = fig
        return original(fig, path)

    monkeypatch.setattr(figures, "_write_png", record)
    return written


def texts(fig) -> list[str]:
    return [t.get_text() for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def colorbar_label(fig) -> str:
    labels = [
        ax.get_ylabel()
        for ax in fig.findobj(matplotlib.axes.Axes)
        if getattr(ax, "_colorbar", None) is not None
    ]
    assert len(labels) == 1, "one colour bar"
    return labels[0]


def check_png(path, min_width=500):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] >= min_width and image.size[1] >= 300
        pixels = np.asarray(image.convert("L"), dtype="float32")
    assert pixels.std() > 10  # not blank


def test_the_method_is_picked_per_model_and_input_kind():
    picked = {
        name: E.pick_method(build_tiny(name), output="task1" if name == "multitask" else None)
        for name in ("cnn", "attention_rnn", "rnn", "multitask", "crossmodal", "fusion")
    }
    assert picked == {
        "cnn": "gradcam",
        "attention_rnn": "attention",
        "rnn": "saliency",
        "multitask": "integrated_gradients",
        "crossmodal": "saliency",
        "fusion": "saliency",
    }


@pytest.mark.parametrize(
    "name, method, kind",
    [
        ("cnn", "gradcam", "image"),
        ("attention_rnn", "attention", "sequence"),
        ("crossmodal", "saliency", "image+sequence"),
        ("multitask", "integrated_gradients", "tabular"),
    ],
)
def test_explain_picks_the_method_and_writes_a_readable_png(name, method, kind, tmp_path, drawn):
    model = build_tiny(name)
    arrays = inputs_for(model)
    inputs = dict(zip(sorted(model.input), arrays)) if isinstance(model.input, dict) else arrays[0]
    output = "task1" if name == "multitask" else None
    labels = [1, 3]
    path = tmp_path / f"{name}.png"
    done = E.explain(model, inputs, path, labels=labels, output=output, model_name=f"tiny {name}")
    assert done["method"] == method and done["path"] == str(path)
    assert done["labels"] == labels and len(done["predicted"]) == 2
    assert done["class_index"] == done["predicted"]  # each example's predicted class
    assert "+".join(done["inputs"].values()) == kind
    check_png(path)
    fig = drawn[str(path)]
    words = " ".join(" ".join(texts(fig)).split())  # titles wrap to the figure's width
    label = figures.METHOD_LABELS[method][0]
    assert f"{label} of model 'tiny {name}'" in words  # the title: method and model ...
    if len(set(done["predicted"])) == 1:  # ... and the class explained
        assert f"class {done['predicted'][0]}" in words
    else:
        assert "each example's predict" in words  # predicted class / prediction
    for true, predicted in zip(labels, done["predicted"]):
        assert f"true: {true} / predicted: {predicted}" in words
    assert colorbar_label(fig)  # a colour bar that says what it shows
    if "sequence" in kind:
        assert "time step" in words and "feature" in words
    if method == "attention":
        assert "attention weight" in words
        np.testing.assert_allclose(done["maps"].sum(axis=1), 1.0, atol=1e-5)


def test_image_panels_draw_the_input_in_grey_under_a_translucent_map(tmp_path, drawn):
    maps = RNG.uniform(size=(3, 8, 8)).astype("float32")
    images = RNG.uniform(size=(3, 8, 8, 1)).astype("float32")
    path = E.save_heatmap(
        maps,
        tmp_path / "h.png",
        images=images,
        method="saliency",
        model_name="m",
        labels=[1, 2, 3],
        predicted=[1, 2, 0],
        explained=[1, 2, 0],
        class_names=list("abcd"),
    )
    check_png(path)
    fig = drawn[str(path)]
    words = texts(fig)
    assert "Saliency of model 'm': explaining each example's predicted class" in words
    assert "true: d / predicted: a (wrong)" in words  # class names, wrong ones flagged
    assert " ".join(colorbar_label(fig).split()).startswith("saliency |d logit / d input|")
    panels = [ax for ax in fig.findobj(matplotlib.axes.Axes) if ax.get_images()]
    assert len(panels) == 3
    for ax in panels:
        grey, heat = ax.get_images()
        assert grey.get_cmap().name == "gray" and heat.get_cmap().name == "inferno"
        alpha = np.asarray(heat.get_alpha())
        assert alpha.shape == (8, 8) and 0 < alpha.min() and alpha.max() < 1  # translucent


def test_sequence_maps_are_time_by_feature_pictures_beside_the_input(tmp_path, drawn):
    maps = RNG.uniform(size=(2, 6, 4)).astype("float32")
    sequences = RNG.uniform(size=(2, 6, 4)).astype("float32")
    path = E.save_sequence_map(
        maps,
        tmp_path / "s.png",
        sequences,
        method="integrated_gradients",
        model_name="rnn",
        explained=[0, 0],
    )
    check_png(path, min_width=400)
    fig = drawn[str(path)]
    words = texts(fig)
    assert "Integrated gradients of model 'rnn': explaining class 0" in words
    panels = [ax for ax in fig.findobj(matplotlib.axes.Axes) if ax.get_images()]
    assert len(panels) == 4  # input and map, per example
    for ax in panels:
        assert ax.get_ylabel() in ("time step", "") and ax.get_xlabel() == "feature"
        assert ax.get_images()[-1].get_array().shape == (6, 4)  # time x feature, no strips
    path = E.save_feature_bars(maps[:, 0], tmp_path / "f.png", sequences[:, 0], method="saliency")
    fig = drawn[str(path)]
    assert "importance" in texts(fig) and "feature" in texts(fig)


def test_figure_writers_refuse_bad_arguments(tmp_path):
    heat = RNG.uniform(size=(3, 8, 8))
    cases = [
        (ValueError, r"`path` must end in '.png'", E.save_heatmap, (heat, tmp_path / "h.jpg")),
        (TypeError, r"`path` must be a str or os.PathLike", E.save_heatmap, (heat, 3)),
        (
            ValueError,
            r"`heatmaps` must be finite",
            E.save_heatmap,
            (np.full((2, 2), np.nan), tmp_path / "n.png"),
        ),
        (
            ValueError,
            r"`scores` must be finite, of shape \(batch, time\)",
            E.save_attention_plot,
            (np.ones(3), tmp_path / "s.png"),
        ),
        (
            ValueError,
            r"`images` must match",
            E.save_heatmap,
            (heat, tmp_path / "m.png", np.ones((2, 8, 8))),
        ),
        (
            ValueError,
            r"`sequences` must have the maps' shape",
            E.save_sequence_map,
            (np.ones((2, 6, 4)), tmp_path / "q.png", np.ones((2, 5, 4))),
        ),
        (
            ValueError,
            r"`cmap` must name a matplotlib colour map.*Received: cmap='nope'",
            E.save_heatmap,
            (heat, tmp_path / "c.png", None, None, "nope"),
        ),
        (
            ValueError,
            r"`labels` must be 3 non-negative class indices",
            E.save_heatmap,
            (heat, tmp_path / "l.png"),
            {"labels": [1, 2]},
        ),
        (
            ValueError,
            r"`titles` must have one title per example \(3\)",
            E.save_heatmap,
            (heat, tmp_path / "t.png", None, ["a"]),
        ),
    ]
    for error, message, function, args, *kwargs in cases:
        with pytest.raises(error, match=message):
            function(*args, **(kwargs[0] if kwargs else {}))
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary left behind


def test_explain_refuses_bad_arguments(tmp_path):
    model = build_tiny("cnn")
    (x,) = inputs_for(model)
    path = tmp_path / "e.png"
    cases = [
        (
            ValueError,
            r"`method` must be one of \['auto', .*Received: method='lime'",
            {"method": "lime"},
        ),
        (ValueError, r"`labels` must be 2 class indices in \[0, 10\)", {"labels": [1, 10]}),
        (ValueError, r"`class_names` must name all 10 classes", {"class_names": ["a", "b"]}),
        (ValueError, r"`class_names` must be a list of strings", {"class_names": "abc"}),
        (ValueError, r"`model_name` must be a non-empty string", {"model_name": ""}),
        (ValueError, r"has no AttentionLayer", {"method": "attention"}),
    ]
    for error, message, kwargs in cases:
        with pytest.raises(error, match=message):
            E.explain(model, x, path, **kwargs)
    with pytest.raises(ValueError, match=r"`path` must end in '.png'"):
        E.explain(model, x, tmp_path / "e.svg")
    with pytest.raises(ValueError, match=r"at most 32 examples. Received: 33"):
        E.explain(model, np.zeros((33, 8, 8, 1), "float32"), path)
    with pytest.raises(ValueError, match="no convolutional layer"):
        E.explain(build_tiny("rnn"), inputs_for(build_tiny("rnn"))[0], path, method="gradcam")
    assert not path.exists()
    assert isinstance(model, keras.Model)
