"""Every hostile file is refused before anything in it runs, and nothing is written."""

import os
import sys

import keras
import pytest

import keras_bigmodel as kbm
import zoo

sys.path.insert(0, os.path.dirname(__file__))
import hostile  # noqa: E402

UNSAFE = kbm.UnsafeModelError
CORRUPT = kbm.ModelFileError

CORPUS = [
    # (builder, expected error, what the message must name)
    (hostile.lambda_bytecode, UNSAFE, r"Lambda layer"),
    (hostile.foreign_module_import, UNSAFE, r"evil_payload\.Boom.*would import module 'evil_payload'"),
    (hostile.os_system_entry, UNSAFE, r"os\.system"),
    (hostile.unsafe_mode_switch, UNSAFE, r"keras\.config\.enable_unsafe_deserialization|Lambda"),
    (hostile.get_file_entry, UNSAFE, r"keras\.utils\.get_file"),
    (hostile.builtins_exec_function, UNSAFE, r"function 'exec'"),
    (hostile.tfsm_layer, UNSAFE, r"TFSMLayer"),
    (hostile.vocabulary_file, UNSAFE, r"vocabulary from the file '/etc/passwd'"),
    (hostile.non_modelling_keras_class, UNSAFE, r"keras\.callbacks\.CSVLogger.*not a Keras modelling class"),
    (hostile.legacy_hdf5, UNSAFE, r"legacy HDF5 full-model file"),
    (hostile.hdf5_named_keras, UNSAFE, r"legacy HDF5 full-model file"),
    (hostile.absolute_member, UNSAFE, r"absolute or '\.\.' path"),
    (hostile.dotdot_member, UNSAFE, r"'assets/\.\./\.\./escape\.txt' has an absolute or '\.\.' path"),
    (hostile.duplicate_member, UNSAFE, r"'config\.json' appears more than once"),
    (hostile.unexpected_member, UNSAFE, r"unexpected member 'run_me\.py'"),
    (hostile.symlink_member, UNSAFE, r"'assets/link' is a symbolic link"),
    (hostile.many_members, UNSAFE, r"holds 500\d members"),
    (hostile.zip_bomb_asset, UNSAFE, r"'assets/bomb' expands .* decompression bomb"),
    (hostile.zip_bomb_config, UNSAFE, r"'config\.json' declares \d+ bytes, over its"),
    (hostile.padded_weights, UNSAFE, r"padded beyond its weights"),
    (hostile.h5_external_link, UNSAFE, r"links to an external file \(/etc/passwd\)"),
    (hostile.h5_external_storage, UNSAFE, r"reads its data from other files"),
    (hostile.h5_compressed_dataset, UNSAFE, r"compressed or holds objects"),
    (hostile.npz_pickled_weights, UNSAFE, r"'evil\.npy' holds Python objects"),
    (hostile.deep_json, UNSAFE, r"nested (more than 200 deep|too deeply)"),
    (hostile.encrypted_member, UNSAFE, r"'assets/secret' is encrypted"),
    (hostile.malformed_json, CORRUPT, r"'config\.json' is not valid JSON"),
    (hostile.weights_not_hdf5, CORRUPT, r"model\.weights\.h5 is not an HDF5 file"),
    (hostile.missing_config, CORRUPT, r"has no config\.json"),
]


def _snapshot(directory):
    return {
        os.path.join(root, f): os.path.getmtime(os.path.join(root, f))
        for root, _, files in os.walk(directory) for f in files
    }


@pytest.mark.parametrize("builder, error, message", CORPUS, ids=[c[0].__name__ for c in CORPUS])
def test_hostile_file_is_refused_and_runs_nothing(builder, error, message, tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))  # where the foreign-module payload lives
    sentinel = tmp_path / "SENTINEL"
    path = builder(str(tmp_path), str(sentinel))
    assert not sentinel.exists()
    before = _snapshot(tmp_path)
    with pytest.raises(error, match=message):
        kbm.load_model(path)
    assert not sentinel.exists(), "the payload ran"
    assert _snapshot(tmp_path) == before, "the refused load wrote or touched files"
    assert "evil_payload" not in sys.modules
    # safe mode was not switched off behind our back
    from keras.src.saving import serialization_lib
    assert serialization_lib.in_safe_mode() is not False


def test_the_lambda_payload_is_live(tmp_path):
    """Control: the same file really runs code when loaded unsafely, so the refusal
    above is what protects the user."""
    sentinel = tmp_path / "SENTINEL"
    path = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    model = keras.saving.load_model(path, safe_mode=False)
    model(keras.ops.zeros((1, 4)))
    assert sentinel.exists()


def test_legacy_hdf5_loads_only_when_trusted(tmp_path):
    model = hostile.benign_model()
    path = str(tmp_path / "benign.h5")
    model.save(path)
    with pytest.raises(UNSAFE, match="trusted=True"):
        kbm.load_model(path)
    restored = kbm.load_model(path, trusted=True)
    x = keras.ops.ones((2, 4))
    assert keras.ops.convert_to_numpy(restored(x)).tolist() == keras.ops.convert_to_numpy(
        model(x)).tolist()


def test_preset_loading_and_cli_go_through_the_same_checks(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    zoo.save_preset(zoo.build("fusion"), tmp_path / "preset")
    hostile_file = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    os.replace(hostile_file, tmp_path / "preset" / "model.keras")
    # the preset's recorded hash no longer matches: refused before the model is opened
    with pytest.raises(CORRUPT, match="SHA-256"):
        zoo.load_preset(tmp_path / "preset")
    # a consistent but hostile preset directory is refused by the archive checks
    import hashlib
    import json
    meta_path = tmp_path / "preset" / "preset.json"
    meta = json.loads(meta_path.read_text())
    meta["model_sha256"] = hashlib.sha256((tmp_path / "preset" / "model.keras").read_bytes()).hexdigest()
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(UNSAFE, match="Lambda layer"):
        zoo.load_preset(tmp_path / "preset")
    assert not sentinel.exists()


def test_legitimate_archives_with_assets_and_custom_objects_load(tmp_path):
    inputs = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(inputs)
    model = keras.Model(inputs, ids)
    path = str(tmp_path / "lookup.keras")
    kbm.save_model(model, path)
    restored = kbm.load_model(path)
    assert restored.get_layer(index=1).get_vocabulary() == ["[UNK]", "a", "b", "c"]

    @keras.saving.register_keras_serializable(package="user_pkg")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    inputs = keras.Input((3,))
    custom = keras.Model(inputs, Doubler()(inputs))
    kbm.save_model(custom, tmp_path / "custom.keras")
    assert isinstance(kbm.load_model(tmp_path / "custom.keras").layers[-1], Doubler)


def test_backend_specific_optimizers_resolve_to_this_backends_class(tmp_path):
    """A model compiled on PyTorch names torch's Adam class; loading it anywhere gives
    the public optimizer of the loading backend, and nothing else rides along."""
    def edit(config):
        config["compile_config"]["optimizer"]["module"] = "keras.src.backend.torch.optimizers.torch_adam"
    path = hostile.with_config(str(tmp_path), "torch_adam.keras", edit)
    model = kbm.load_model(path)
    assert type(model.optimizer).__name__ == "Adam"
    backend = keras.backend.backend()
    assert backend == "torch" or "torch" not in type(model.optimizer).__module__

    def smuggle(config):
        config["compile_config"]["optimizer"].update(
            {"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Lambda"})
    with pytest.raises(UNSAFE, match="Lambda"):
        kbm.load_model(hostile.with_config(str(tmp_path), "smuggle.keras", smuggle))

    def rename(config):  # a registered layer where the optimizer belongs: not rewritten,
        config["compile_config"]["optimizer"].update(  # allowed, and fails cleanly
            {"module": "keras.src.backend.torch.optimizers.torch_adam",
             "registered_name": "keras_bigmodel>AttentionLayer"})
    with pytest.raises(CORRUPT, match="could not rebuild the model"):
        kbm.load_model(hostile.with_config(str(tmp_path), "rename.keras", rename))
