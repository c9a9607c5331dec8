"""Preset directories are untrusted input: members must be regular files (never followed
links, FIFOs or devices), every field of preset.json is validated, `verify` never
crashes on bad recorded data, and saving replaces (never writes through) links."""

import hashlib
import json
import os

import hostile
import numpy as np
import pytest

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.verification import verify_file

UNSAFE = kbm.UnsafeModelError
CORRUPT = kbm.ModelFileError


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved `fusion` preset (the smallest), copied by each test that alters it."""
    directory = tmp_path_factory.mktemp("preset") / "fusion"
    zoo.save_preset(zoo.build("fusion"), directory)
    return {name: (directory / name).read_bytes() for name in ("model.keras", "preset.json")}


@pytest.fixture
def preset(saved, tmp_path):
    directory = tmp_path / "preset"
    directory.mkdir()
    for name, data in saved.items():
        (directory / name).write_bytes(data)
    return directory


def _edit_metadata(directory, edit):
    path = directory / "preset.json"
    metadata = json.loads(path.read_text())
    edit(metadata)
    path.write_text(json.dumps(metadata))


def test_a_saved_preset_loads_and_verifies(preset):
    model = zoo.load_preset(preset, compile=False)
    metadata = zoo.read_preset_metadata(preset)
    report = verify_file(
        preset / "model.keras", expected=metadata["probe"]["outputs"], probe=metadata["probe"]
    )
    assert report["ok"] and report["probe_vs_recorded"] <= 1e-6
    assert report["parameters"] == model.count_params() == metadata["parameters"]


@pytest.mark.parametrize("target", ["/proc/self/pagemap", "/dev/zero", "elsewhere"])
def test_a_linked_model_file_is_refused_not_followed(preset, tmp_path, target):
    """`model.keras -> /proc/self/pagemap` hung the hashing; a link to a real model
    elsewhere would load a file the directory does not hold."""
    if target == "elsewhere":
        target = str(tmp_path / "elsewhere.keras")
        os.replace(preset / "model.keras", target)
    else:
        os.remove(preset / "model.keras")
    os.symlink(target, preset / "model.keras")
    with pytest.raises(
        UNSAFE,
        match=r"model\.keras: is a symbolic link; refused \(a preset "
        r"directory holds regular files only\)",
    ):
        zoo.load_preset(preset)


def test_non_regular_members_are_refused(preset, tmp_path):
    os.remove(preset / "model.keras")
    os.mkfifo(preset / "model.keras")  # reading it would block forever
    with pytest.raises(UNSAFE, match=r"model\.keras: is not a regular file"):
        zoo.load_preset(preset)
    os.remove(preset / "model.keras")
    os.mkdir(preset / "model.keras")
    with pytest.raises(UNSAFE, match=r"model\.keras: is not a regular file"):
        zoo.load_preset(preset)
    os.replace(preset / "preset.json", tmp_path / "preset.json")
    os.symlink(tmp_path / "preset.json", preset / "preset.json")
    with pytest.raises(UNSAFE, match=r"preset\.json: is a symbolic link"):
        zoo.read_preset_metadata(preset)


def test_every_file_is_read_with_a_size_limit(preset):
    (preset / "preset.json").write_bytes(b" " * (2 * 1024 * 1024))
    with pytest.raises(UNSAFE, match=r"preset\.json: is 2097152 bytes, over the 1048576-byte"):
        zoo.read_preset_metadata(preset)


MALFORMED = [
    ("probe_list", lambda m: m.update(probe=[1, 2]), r"field 'probe' is a JSON object"),
    (
        "probe_batch_str",
        lambda m: m["probe"].update(batch="2"),
        r"'probe\.batch' is an "
        r"int >= 0\. Received: '2' \(str\)",
    ),
    (
        "probe_batch_zero",
        lambda m: m["probe"].update(batch=0),
        r"'probe\.batch' is an int "
        r"in \[1, 1024\]",
    ),
    (
        "probe_outputs",
        lambda m: m["probe"].update(outputs="x"),
        r"'probe\.outputs' is a "
        r"list or an object of lists",
    ),
    ("probe_no_seed", lambda m: m["probe"].pop("seed"), r"'probe\.seed' is an int"),
    ("parameters_bool", lambda m: m.update(parameters=True), r"'parameters' is an int >= 0"),
    ("sha_short", lambda m: m.update(model_sha256="abc"), r"'model_sha256' is 64 lowercase"),
    ("name_empty", lambda m: m.update(name=""), r"'name' is a non-empty string"),
    ("config_list", lambda m: m.update(config=[]), r"'config' is a JSON object"),
    ("no_name", lambda m: m.pop("name"), r"has no 'name' field"),
    (
        "newer_format",
        lambda m: m.update(format_version=99),
        r"format_version 99; this "
        r"keras-bigmodel reads up to 1",
    ),
    (
        "model_file",
        lambda m: m.update(model_file="../other.keras"),
        r"'model_file' is "
        r"'model\.keras'",
    ),
    ("created_with", lambda m: m.update(created_with=[]), r"'created_with' is a JSON obj"),
]


@pytest.mark.parametrize("edit, message", [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED])
def test_every_malformed_field_is_a_model_file_error(preset, edit, message):
    _edit_metadata(preset, edit)
    with pytest.raises(CORRUPT, match=message):
        zoo.read_preset_metadata(preset)
    with pytest.raises(CORRUPT, match=message):
        zoo.load_preset(preset)


def test_preset_json_that_is_not_an_object(preset):
    for text, message in (
        (b"[1, 2]", r"must hold a JSON object"),
        (b"{nope", r"not valid JSON"),
        (b"\xff\xfe", r"not valid JSON"),
        (
            b"[" * 100000,
            r"nested too deeply"
            r"|not valid JSON",
        ),
    ):
        (preset / "preset.json").write_bytes(text)
        with pytest.raises(CORRUPT, match=message):
            zoo.read_preset_metadata(preset)


def test_the_cli_verify_prints_one_line_for_a_malformed_probe(preset, capsys):
    from keras_bigmodel.cli import main

    _edit_metadata(preset, lambda m: m.update(probe="oops"))
    assert main(["verify", str(preset)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'probe' is a JSON object" in err


BAD_RECORDINGS = {
    "string": "not numbers",
    "ragged": [[1.0, 2.0], [3.0]],
    "wrong_keys": {"x": [1.0]},
    "nan": [[float("nan"), 0.0], [0.0, 0.0]],
    "overflow": [[1e400, 0.0], [0.0, 0.0]],
    "nested_dict": {"a": {"b": 1}},
    "wrong_shape": [[[1.0]] * 3] * 3,
    "bool": True,
    "huge_int": [[10**400, 0], [0, 0]],
}


def test_verify_never_raises_on_bad_recorded_data(preset):
    from keras_bigmodel import verification

    report = verify_file(preset / "model.keras", expected="not numbers")
    assert report["probe_vs_recorded"] == float("inf") and report["ok"] is False
    model = zoo.load_preset(preset, compile=False)
    first = verification.predictions(model, verification.probe_inputs(model))
    for name, recorded in BAD_RECORDINGS.items():
        expected = verification.from_json(recorded, first)
        difference = np.inf if expected is None else verification.max_difference(first, expected)
        assert difference == float("inf"), name
        assert verification.max_difference(first, recorded) == float("inf"), name


def test_mismatched_and_hostile_directories_are_refused(preset, tmp_path):
    sentinel = tmp_path / "SENTINEL"
    hostile_file = hostile.lambda_bytecode(str(tmp_path), str(sentinel))
    os.replace(hostile_file, preset / "model.keras")
    with pytest.raises(CORRUPT, match="does not match the SHA-256 recorded"):
        zoo.load_preset(preset)
    digest = hashlib.sha256((preset / "model.keras").read_bytes()).hexdigest()
    _edit_metadata(preset, lambda m: m.update(model_sha256=digest))
    with pytest.raises(UNSAFE, match="Lambda layer"):
        zoo.load_preset(preset)
    assert not sentinel.exists()


def test_saving_replaces_links_instead_of_writing_through_them(preset, tmp_path):
    outside = {name: tmp_path / f"outside-{name}" for name in ("model.keras", "preset.json")}
    for name, target in outside.items():
        target.write_bytes(b"precious")
        os.remove(preset / name)
        os.symlink(target, preset / name)
    zoo.save_preset(zoo.build("fusion"), preset)
    for name, target in outside.items():
        assert target.read_bytes() == b"precious"
        assert not os.path.islink(preset / name)
    assert zoo.load_preset(preset, compile=False).count_params() == 22
    assert sorted(os.listdir(preset)) == ["model.keras", "preset.json"]


def test_load_limits_apply_to_preset_directories(preset):
    with pytest.raises(kbm.ModelFileError, match=r"over the limit max_params=10"):
        zoo.load_preset(preset, limits=kbm.saving.LoadLimits(max_params=10))
    assert np.isfinite(
        zoo.load_preset(preset, limits=kbm.saving.LoadLimits(max_params=22)).count_params()
    )
