"""kbm.save_model / kbm.load_model: atomic writes, clear errors, and files that a fresh
process reloads with plain Keras after importing only keras_bigmodel."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
from harness import forward
from keras_bigmodel.layers import AttentionLayer, Fusion, FusionConcat, MultiTaskHead


def user_model():
    """A user's model: plain Keras layers around every layer of the package."""
    seq = keras.Input(shape=(None, 6), name="sequence")
    vec = keras.Input(shape=(5,), name="vector")
    h = keras.layers.LSTM(8, return_sequences=True)(keras.layers.Masking()(seq))
    pooled = AttentionLayer(4)(h)
    fused = Fusion("gated", units=8)([pooled, keras.layers.Dense(8)(vec)])
    both = FusionConcat()([fused, vec])
    outputs = MultiTaskHead({"label": {"units": 3, "activation": "softmax"}, "score": 1})(both)
    return keras.Model({"sequence": seq, "vector": vec}, outputs)


def user_inputs():
    rng = np.random.default_rng(0)
    seq = rng.normal(size=(4, 7, 6)).astype("float32")
    seq[1, 5:] = 0.0
    return {"sequence": seq, "vector": rng.normal(size=(4, 5)).astype("float32")}


def test_fresh_process_reloads_with_plain_keras(tmp_path):
    model = user_model()
    x = user_inputs()
    model.compile("adam", {"label": "categorical_crossentropy", "score": "mse"})
    y = {"label": keras.utils.to_categorical([0, 1, 2, 1], 3), "score": np.ones((4, 1))}
    model.fit(x, y, epochs=2, verbose=0)
    path = tmp_path / "user.keras"
    model.save(path)
    np.savez(tmp_path / "io.npz", **x, **{f"out_{k}": v for k, v in forward(model, x).items()})
    script = textwrap.dedent(f"""
        import numpy as np, keras
        import keras_bigmodel  # registers the layers; nothing else is imported
        data = np.load({str(tmp_path / "io.npz")!r})
        model = keras.saving.load_model({str(path)!r}, safe_mode=True)
        out = model({{"sequence": data["sequence"], "vector": data["vector"]}})
        for k in ("label", "score"):
            diff = np.abs(keras.ops.convert_to_numpy(out[k]) - data["out_" + k]).max()
            assert diff <= 1e-6, (k, diff)
        print("RELOADED-OK")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=300)
    assert "RELOADED-OK" in done.stdout, done.stderr[-3000:]


def test_kbm_roundtrip_keeps_compile_state(tmp_path):
    model = user_model()
    model.compile("adam", {"label": "categorical_crossentropy", "score": "mse"},
                  metrics={"label": ["accuracy"]})
    path = kbm.save_model(model, tmp_path / "m.keras")
    restored = kbm.load_model(path)
    assert restored.optimizer.__class__.__name__ == "Adam"
    x = user_inputs()
    for k, v in forward(model, x).items():
        np.testing.assert_allclose(forward(restored, x)[k], v, atol=1e-6)


def test_sequential_and_subclassed_models_roundtrip(tmp_path):
    x = np.random.default_rng(1).normal(size=(3, 5, 4)).astype("float32")
    seq = keras.Sequential([keras.Input((None, 4)), AttentionLayer(3), keras.layers.Dense(2)])
    kbm.save_model(seq, tmp_path / "seq.keras")
    np.testing.assert_allclose(forward(kbm.load_model(tmp_path / "seq.keras"), x),
                               forward(seq, x), atol=1e-6)


class _Boom(RuntimeError):
    pass


def test_failed_save_leaves_previous_file_and_no_strays(tmp_path, monkeypatch):
    model = user_model()
    path = tmp_path / "m.keras"
    kbm.save_model(model, path)
    before = path.read_bytes()

    def half_write_then_fail(m, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"PK\x03\x04 half a file")
        raise _Boom("disk full")

    monkeypatch.setattr(keras.saving, "save_model", half_write_then_fail)
    with pytest.raises(_Boom):
        kbm.save_model(model, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.keras"]


def test_interrupted_save_leaves_no_strays(tmp_path, monkeypatch):
    def interrupted(m, filepath, **kwargs):
        open(filepath, "wb").close()
        raise KeyboardInterrupt

    monkeypatch.setattr(keras.saving, "save_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kbm.save_model(user_model(), tmp_path / "new.keras")
    assert os.listdir(tmp_path) == []


def test_saved_file_has_normal_permissions(tmp_path):
    path = kbm.save_model(user_model(), tmp_path / "m.keras")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_save_model_argument_errors(tmp_path):
    with pytest.raises(TypeError, match=r"`model` must be a keras.Model"):
        kbm.save_model("model", tmp_path / "m.keras")
    with pytest.raises(ValueError, match=r"`path` must end in '.keras'. Received: path="):
        kbm.save_model(user_model(), tmp_path / "m.h5")
    with pytest.raises(TypeError, match=r"`path` must be a str or os.PathLike"):
        kbm.save_model(user_model(), 42)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kbm.save_model(user_model(), tmp_path / "missing" / "m.keras")
    kbm.save_model(user_model(), tmp_path / "m.keras")
    with pytest.raises(FileExistsError, match="overwrite=False"):
        kbm.save_model(user_model(), tmp_path / "m.keras", overwrite=False)


def test_load_model_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="No model file"):
        kbm.load_model(tmp_path / "nope.keras")
    with pytest.raises(kbm.ModelFileError, match="is a directory"):
        kbm.load_model(tmp_path)
    junk = tmp_path / "junk.keras"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(kbm.ModelFileError, match="not a valid .keras archive"):
        kbm.load_model(junk)
    with pytest.raises(TypeError, match="`path` must be a str"):
        kbm.load_model(None)
    with pytest.raises(TypeError, match="`custom_objects` must be a dict"):
        kbm.load_model(junk, custom_objects=["x"])
    assert issubclass(kbm.ModelFileError, ValueError)
    assert issubclass(kbm.UnsafeModelError, ValueError)


def test_truncated_file_is_a_clear_error(tmp_path):
    path = kbm.save_model(user_model(), tmp_path / "m.keras")
    data = open(path, "rb").read()
    for cut in (len(data) // 3, len(data) - 30):
        broken = tmp_path / f"cut{cut}.keras"
        broken.write_bytes(data[:cut])
        with pytest.raises(kbm.ModelFileError):
            kbm.load_model(broken)
