"""kbm.save_model / kbm.load_model: atomic writes, clear errors, round trips.

That a fresh process reloads these files with plain Keras after importing only
keras_bigmodel is checked in tests/security/test_hostile_files.py, by the one loading
process each backend run starts (test_fresh_process_reloads_with_plain_keras)."""

import json
import os
import zipfile

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
from keras_bigmodel import _compat
from keras_bigmodel.layers import AttentionLayer, MultiTaskHead


def assert_same_model(restored, model):
    """Same architecture (JSON-equal config) and every weight equal: the same outputs
    (which the contract harness compares for every layer and preset)."""
    assert json.dumps(restored.get_config(), sort_keys=True, default=str) == json.dumps(
        model.get_config(), sort_keys=True, default=str
    )
    weights = model.get_weights()
    assert len(restored.get_weights()) == len(weights)
    for a, b in zip(restored.get_weights(), weights):
        np.testing.assert_array_equal(a, b)


def test_kbm_roundtrip_keeps_compile_state(tmp_path):
    """Two heads, two losses, a metric and the optimizer survive kbm's save and load
    (a small model: on JAX every distinct variable shape costs an XLA compile)."""
    inputs = keras.Input((5,))
    heads = MultiTaskHead({"label": {"units": 3, "activation": "softmax"}, "score": 1})
    model = keras.Model(inputs, heads(keras.layers.Dense(4)(inputs)))
    model.compile(
        "adam",
        {"label": "categorical_crossentropy", "score": "mse"},
        metrics={"label": ["accuracy"]},
    )
    path = kbm.save_model(model, tmp_path / "m.keras")
    restored = kbm.load_model(path)
    assert restored.optimizer.__class__.__name__ == "Adam"
    assert restored.get_compile_config() == model.get_compile_config()
    assert_same_model(restored, model)


def test_sequential_models_roundtrip(tmp_path):
    seq = keras.Sequential([keras.Input((None, 4)), AttentionLayer(3), keras.layers.Dense(2)])
    restored = kbm.load_model(kbm.save_model(seq, tmp_path / "seq.keras"))
    assert isinstance(restored, keras.Sequential)
    assert_same_model(restored, seq)


class _Boom(RuntimeError):
    pass


def small_model():
    """A model that is cheap to build, for the tests about files rather than layers."""
    inputs = keras.Input((4,))
    return keras.Model(inputs, keras.layers.Dense(2)(inputs))


def test_failed_save_leaves_previous_file_and_no_strays(tmp_path, monkeypatch):
    model = small_model()
    path = tmp_path / "m.keras"
    kbm.save_model(model, path)
    before = path.read_bytes()

    def half_write_then_fail(m, fileobj):
        fileobj.write(b"PK\x03\x04 half a file")
        raise _Boom("disk full")

    monkeypatch.setattr(_compat, "save_model_to_file", half_write_then_fail)
    with pytest.raises(_Boom):
        kbm.save_model(model, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_interrupted_save_leaves_no_strays(tmp_path, monkeypatch):
    def interrupted(m, fileobj):
        fileobj.write(b"PK")
        raise KeyboardInterrupt

    monkeypatch.setattr(_compat, "save_model_to_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kbm.save_model(small_model(), tmp_path / "new.keras")
    assert os.listdir(tmp_path) == []


def test_saved_file_has_normal_permissions_and_replaces_a_link(tmp_path):
    precious = tmp_path / "precious.keras"
    precious.write_bytes(b"keep")
    os.symlink(precious, tmp_path / "m.keras")
    path = kbm.save_model(small_model(), tmp_path / "m.keras")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    assert precious.read_bytes() == b"keep" and not os.path.islink(path)
    assert kbm.load_model(path).count_params() == 10


def test_save_model_argument_errors(tmp_path):
    model = small_model()
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model"):
        kbm.save_model("model", tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"`path` must end in '.keras'. Received: path="):
        kbm.save_model(model, tmp_path / "m.h5")
    with pytest.raises(TypeError, match=r"`path` must be a str or os.PathLike"):
        kbm.save_model(model, 42)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kbm.save_model(model, tmp_path / "missing" / "m.keras")
    with pytest.raises(TypeError, match=r"`overwrite` must be a bool"):
        kbm.save_model(model, tmp_path / "m.keras", overwrite="no")
    kbm.save_model(model, tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        kbm.save_model(model, tmp_path / "m.keras", overwrite=False)
    assert os.listdir(tmp_path) == ["m.keras"]


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        kbm.load_model(tmp_path / "nope.keras")
    with pytest.raises(kbm.ModelFileError, match="is a directory"):
        kbm.load_model(tmp_path)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(kbm.ModelFileError, match=r"not a valid \.keras archive"):
        kbm.load_model(junk)
    with pytest.raises(TypeError, match="`path` must be a str"):
        kbm.load_model(None)
    with pytest.raises(TypeError, match="`custom_objects` must be a dict"):
        kbm.load_model(junk, custom_objects=["x"])
    assert issubclass(kbm.ModelFileError, ValueError)
    assert issubclass(kbm.UnsafeModelError, ValueError)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = kbm.save_model(small_model(), tmp_path / "m.keras")
    data = open(path, "rb").read()
    for cut in (len(data) // 3, len(data) - 30):
        broken = tmp_path / f"cut{cut}.keras"
        broken.write_bytes(data[:cut])
        with pytest.raises(kbm.ModelFileError):
            kbm.load_model(broken)


# Python-level (Keras's torch backend refuses '.' in a layer's name itself).
@pytest.mark.backend_independent
@pytest.mark.parametrize("name", ["..\\..\\evil", "..", "..evil", "C:evil", "tab\there"])
def test_a_layer_name_that_could_become_a_path_is_not_saved(tmp_path, name):
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name=name)(inputs))
    target = tmp_path / "model.keras"
    with pytest.raises(ValueError, match=r"holds a layer named .*cannot be saved safely"):
        kbm.save_model(model, str(target))
    assert os.listdir(tmp_path) == []


def test_path_like_layer_names_are_refused_by_the_check_itself(tmp_path):
    """Refused by kbm's config check (UnsafeModelError), not left to Keras failing to
    rebuild the model: a file whose layer name holds a backslash."""
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="dense")(inputs))
    path = str(tmp_path / "ok.keras")
    model.save(path)
    with zipfile.ZipFile(path) as zf:
        members = {i.filename: zf.read(i) for i in zf.infolist()}
    members["config.json"] = members["config.json"].replace(b'"dense"', b'"..\\\\x\\\\dense"')
    bad = str(tmp_path / "bad.keras")
    with zipfile.ZipFile(bad, "w") as zf:
        for member, data in members.items():
            zf.writestr(member, data)
    with pytest.raises(kbm.UnsafeModelError, match=r"named '\.\.\\\\x\\\\dense'.*separator"):
        kbm.load_model(bad)
