"""The checked loader still loads every legitimate file, its limits are named and can be
raised, safe mode is forced for the duration of a load, no module is imported, and
exhaustion while checking is a refusal, not a traceback."""

import sys

import hostile
import keras
import numpy as np
import pytest

import keras_bigmodel as kbm
from keras_bigmodel import _compat
from keras_bigmodel.saving import LoadLimits, ModelTooLargeError
from keras_bigmodel.security import check_config, config_check, inspect_archive, loading_guard

UNSAFE = kbm.UnsafeModelError
CORRUPT = kbm.ModelFileError


def _outputs(model, x):
    return keras.ops.convert_to_numpy(model(x))


# --------------------------------------------------------------- still loads (7)
def test_inline_vocabulary_lookup_and_assets_load(tmp_path):
    inputs = keras.Input((1,), dtype="string")
    ids = keras.layers.StringLookup(vocabulary=["a", "b", "c"])(inputs)
    path = kbm.save_model(keras.Model(inputs, ids), tmp_path / "lookup.keras")
    restored = kbm.load_model(path)
    assert restored.get_layer(index=1).get_vocabulary() == ["[UNK]", "a", "b", "c"]


def test_registered_and_custom_object_classes_load(tmp_path):
    @keras.saving.register_keras_serializable(package="user_pkg")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return 2 * x

    class Tripler(keras.layers.Layer):  # not registered: trusted through custom_objects
        def call(self, x):
            return 3 * x

    inputs = keras.Input((3,))
    model = keras.Model(inputs, Tripler()(Doubler()(inputs)))
    path = kbm.save_model(model, tmp_path / "custom.keras")
    with pytest.raises(UNSAFE, match=r"names the class .*Tripler .*neither part of Keras"):
        kbm.load_model(path)
    restored = kbm.load_model(path, custom_objects={"Tripler": Tripler})
    assert [type(layer) for layer in restored.layers[1:]] == [Doubler, Tripler]
    x = np.ones((2, 3), "float32")
    np.testing.assert_allclose(_outputs(restored, x), 6 * x)


def test_stateful_recurrent_model_loads_with_its_state_counted(tmp_path):
    """A stateful RNN creates its states from concrete zeros, which Keras disallows
    where variables are measured; it is measured stateless plus its states."""
    inputs = keras.Input(batch_shape=(2, 5, 3))
    rnn = keras.layers.SimpleRNN(
        4, stateful=True, recurrent_initializer="glorot_uniform", name="rnn"
    )
    model = keras.Model(inputs, rnn(inputs))
    path = kbm.save_model(model, tmp_path / "stateful.keras")
    report = inspect_archive(path)
    assert report.declared.params == model.count_params() + 2 * 4  # its state: (2, 4)
    restored = kbm.load_model(path)
    assert restored.get_layer("rnn").stateful
    for a, b in zip(restored.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_backend_specific_optimizers_resolve_to_this_backends_class(tmp_path):
    """A model compiled on PyTorch names torch's Adam class; loading it anywhere gives
    the public optimizer of the loading backend, and nothing else rides along."""

    def edit(config):
        config["compile_config"]["optimizer"]["module"] = (
            "keras.src.backend.torch.optimizers.torch_adam"
        )

    model = kbm.load_model(hostile.with_config(str(tmp_path), "torch_adam.keras", edit))
    assert type(model.optimizer).__name__ == "Adam"
    backend = keras.backend.backend()
    assert backend == "torch" or "torch" not in type(model.optimizer).__module__

    def smuggle(config):
        config["compile_config"]["optimizer"].update(
            {"module": "keras.src.backend.torch.optimizers.torch_adam", "class_name": "Lambda"}
        )

    with pytest.raises(UNSAFE, match="Lambda"):
        kbm.load_model(hostile.with_config(str(tmp_path), "smuggle.keras", smuggle))

    def rename(config):  # a registered layer's name where the optimizer belongs
        config["compile_config"]["optimizer"].update(
            {
                "module": "keras.src.backend.torch.optimizers.torch_adam",
                "registered_name": "keras_bigmodel>AttentionLayer",
            }
        )

    with pytest.raises(UNSAFE, match="the names disagree"):
        kbm.load_model(hostile.with_config(str(tmp_path), "rename.keras", rename))


def test_legacy_hdf5_loads_only_when_trusted(tmp_path):
    model = hostile.benign_model()
    path = str(tmp_path / "benign.h5")
    model.save(path)
    with pytest.raises(UNSAFE, match="trusted=True"):
        kbm.load_model(path)
    restored = kbm.load_model(path, trusted=True)
    x = np.ones((2, 4), "float32")
    np.testing.assert_array_equal(_outputs(restored, x), _outputs(model, x))


# ------------------------------------------------------------------- limits (2)
def test_a_limit_hit_is_named_and_raising_it_loads_the_file(tmp_path):
    path = hostile.benign_archive(str(tmp_path))  # 23 parameters, 3 layers
    with pytest.raises(ModelTooLargeError) as info:
        kbm.load_model(path, max_params=20)
    assert (info.value.limit, info.value.allowed, info.value.found) == ("max_params", 20, 23)
    assert "kbm.load_model(path, max_params=...)" in str(info.value)
    with pytest.raises(ModelTooLargeError, match=r"over the limit max_layers=2\."):
        kbm.load_model(path, limits=LoadLimits(max_layers=2))
    assert kbm.load_model(path, max_params=23).count_params() == 23
    assert kbm.load_model(path, limits=LoadLimits(max_params=None)).count_params() == 23


def test_limit_arguments_are_checked():
    with pytest.raises(
        TypeError,
        match=r"Unknown loading option 'max_param'\. Did you mean "
        r"'max_params'\?",
    ):
        kbm.load_model("x.keras", max_param=10)
    with pytest.raises(
        ValueError,
        match=r"`max_layers` must be a positive int or None\. "
        r"Received: max_layers=0",
    ):
        LoadLimits(max_layers=0)
    with pytest.raises(ValueError, match=r"`max_depth` must be a positive int\. Received"):
        LoadLimits(max_depth=None)
    with pytest.raises(TypeError, match=r"`limits` must be a keras_bigmodel\.LoadLimits"):
        kbm.load_model("x.keras", limits={"max_params": 1})
    assert LoadLimits().weights_bytes == 16 * LoadLimits().max_params + 16 * 2**20


def test_a_layer_that_cannot_be_measured_needs_max_params_none(tmp_path):
    """A layer that creates a variable from a concrete value cannot be built in a
    StatelessScope: the file is refused with the way out, not loaded unmeasured."""

    @keras.saving.register_keras_serializable(package="user_pkg")
    class Concrete(keras.layers.Layer):
        def build(self, input_shape):
            self.offset = keras.Variable(np.ones(input_shape[-1], "float32"))

        def call(self, x):
            return x + self.offset

    inputs = keras.Input((3,))
    path = kbm.save_model(keras.Model(inputs, Concrete()(inputs)), tmp_path / "concrete.keras")
    with pytest.raises(
        UNSAFE,
        match=r"cannot be measured without allocating .* load it with "
        r"max_params=None",
    ):
        kbm.load_model(path)
    assert isinstance(kbm.load_model(path, max_params=None).layers[-1], Concrete)


def test_exhaustion_while_checking_is_a_refusal(tmp_path, monkeypatch):
    path = hostile.benign_archive(str(tmp_path))
    for error in (MemoryError, RecursionError):

        def exhausted(self, config, error=error):
            raise error()

        monkeypatch.setattr(config_check._Walker, "run", exhausted)
        with pytest.raises(UNSAFE, match=f"checking the config exhausted {error.__name__}"):
            kbm.load_model(path)
    monkeypatch.undo()

    def out_of_memory(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(_compat, "load_model_from_file", out_of_memory)
    with pytest.raises(
        CORRUPT,
        match=r"Keras ran out of memory rebuilding the model "
        r"\(23 parameters\)",
    ):
        kbm.load_model(path)


# --------------------------------------------- safe mode and imports (1, 4)
def test_safe_mode_is_forced_during_the_load_and_restored(tmp_path, monkeypatch):
    """As if the host had called keras.config.enable_unsafe_deserialization(): Keras
    builds and loads in safe mode, and the host's setting is back afterwards."""
    seen = []
    for name in ("load_model_from_file", "model_from_config_json"):
        original = getattr(_compat, name)

        def spy(*args, original=original, name=name, **kwargs):
            seen.append((name, _compat.in_safe_mode()))
            return original(*args, **kwargs)

        monkeypatch.setattr(_compat, name, spy)
    path = hostile.benign_archive(str(tmp_path))
    with _compat.safe_mode_scope(False):  # the host's process-wide "unsafe" setting
        kbm.load_model(path)
        assert _compat.in_safe_mode() is False
    assert seen == [("model_from_config_json", True), ("load_model_from_file", True)]


def test_the_import_guard_blocks_what_the_file_names(tmp_path, monkeypatch):
    """Second line of defence: even if a check missed it, a module the file names
    cannot be imported during the load."""
    sentinel = tmp_path / "SENTINEL"
    hostile.plant(str(tmp_path), "kbm_planted_payload", str(sentinel))
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    with loading_guard({"kbm_planted_payload"}, "model.keras") as blocker:
        with pytest.raises(UNSAFE, match=r"tried to import the module 'kbm_planted_payload'"):
            __import__("kbm_planted_payload")
        import json  # noqa: F401  (already imported modules are unaffected)
    assert blocker.refused == ["kbm_planted_payload"]
    assert set(sys.modules) == before and not sentinel.exists()


def test_check_config_walks_wide_and_deep_configs_with_paths_only_for_errors():
    """The walk keeps parent links, not path strings: a config of 200,000 entries is
    checked, and a refusal deep inside still names its full path."""
    wide = {
        "class_name": "Functional",
        "module": "keras.src.models.functional",
        "registered_name": "Functional",
        "config": {
            "layers": [
                {
                    "class_name": "Dense",
                    "module": "keras.layers",
                    "registered_name": None,
                    "config": {"units": 1},
                }
                for _ in range(1000)
            ]
        },
    }
    findings = check_config(wide, limits=LoadLimits(max_layers=None))
    assert findings.layers == 1001
    node = leaf = {}
    for _ in range(50):
        node["k"] = {}
        node = node["k"]
    node["bad"] = {"class_name": "function", "module": "os", "config": "system"}
    wide["config"]["layers"][500]["config"]["junk"] = leaf
    with pytest.raises(UNSAFE, match=r"entry 'config\.layers\[500\]\.config\.junk(\.k){50}\.bad'"):
        check_config(wide, limits=LoadLimits(max_layers=None))
