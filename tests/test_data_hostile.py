"""Hostile data: each case the red team tried against the readers, refused with a
`DataError` naming the entry (or bounded), nothing read outside the data folder, nothing
written; the memory cases measured in ONE child process with `resource.getrusage`
(peak RSS), the 200,000-column CSV header among them."""

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
from cli_helpers import one_line_error, run
from data_files import digits_subset, write_image_folder
from PIL import Image

from keras_bigmodel import fileio
from keras_bigmodel.data import DataError, load

NAMES = ["zero", "one", "two"]


def folder(tmp_path, per_class=2):
    x, y = digits_subset(per_class=per_class)
    return write_image_folder(tmp_path / "imgs", x, y, NAMES)


# ------------------------------------------------------------------ file system
@pytest.mark.backend_independent
def test_links_out_of_the_folder_are_refused_naming_the_entry(tmp_path):
    root = folder(tmp_path)
    for target in ("/etc/passwd", "/dev/zero"):
        link = os.path.join(root, "one", "x.png")
        os.symlink(target, link)
        with pytest.raises(DataError, match=rf"{link} is a symbolic link to {target}, outside"):
            load(root)
        os.remove(link)
    linked_class = os.path.join(root, "usr")
    os.symlink("/usr/share", linked_class)
    with pytest.raises(DataError, match=rf"{linked_class} is a symbolic link to /usr/share"):
        load(root)
    os.remove(linked_class)
    # a link that stays inside the folder is an image like any other
    inside = os.path.join(root, "one", "again.png")
    os.symlink(os.path.join(root, "two", sorted(os.listdir(os.path.join(root, "two")))[0]), inside)
    assert len(load(root)) == 7


@pytest.mark.backend_independent
def test_link_loops_fifos_and_deep_trees_cannot_hang_the_walk(tmp_path):
    root = folder(tmp_path)
    os.symlink(".", os.path.join(root, "zero", "a"))
    os.symlink(".", os.path.join(root, "zero", "b"))
    os.mkfifo(os.path.join(root, "one", "fifo.png"))  # would block an open() for reading
    ds = load(root)
    assert len(ds) == 6 and ds.info["ignored"] == 3  # two linked folders, one FIFO
    fifo = str(tmp_path / "data.csv")
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"data.csv is not a regular file or a folder; refused"):
        load(fifo)
    deep = tmp_path / "deep" / "cls"
    (deep / "/".join("d" * 5)).mkdir(parents=True)
    with pytest.raises(DataError, match=r"is more than 3 folder levels below"):
        load(str(tmp_path / "deep"), max_depth=3)
    with pytest.raises(DataError, match=r"holds more than 4 entries; refused"):
        load(root, max_files=4)


@pytest.mark.backend_independent
def test_class_names_are_validated_and_unreadable_names_kept(tmp_path):
    x, y = digits_subset(per_class=1)
    np.savez(
        tmp_path / "nul.npz", x=x.reshape(3, -1), y=y, class_names=np.array(["a", "b\0x", "c"])
    )
    with pytest.raises(DataError, match=r"class name 'b\\\\x00x' holds a control character"):
        load(str(tmp_path / "nul.npz"))
    root = write_image_folder(tmp_path / "ctl", x, y, ["ok", "new\nline", "tab"])
    with pytest.raises(DataError, match=r"class name 'new\\\\nline' holds a control character"):
        load(root)
    np.savez(tmp_path / "huge.npz", x=np.zeros((2, 2)), y=np.array([0, 10**9]))
    with pytest.raises(DataError, match=r"holds the class index 1,000,000,000; at most 1,000,000"):
        load(str(tmp_path / "huge.npz"))
    # a file name that is not UTF-8 keeps its prediction (escaped), in an unlabelled folder
    flat = tmp_path / "flat"
    flat.mkdir()
    Image.fromarray(np.zeros((8, 8), "uint8")).save(flat / "ok.png")
    os.rename(flat / "ok.png", os.fsencode(flat) + b"/caf\xe9.png")
    ds = load(str(flat))
    assert ds.ids == ["caf\\xe9.png"]


@pytest.mark.backend_independent
def test_predictions_survive_formula_names_and_odd_file_names(tmp_path, capsys):
    x, y = digits_subset(per_class=4)
    names = ['=HYPERLINK("x")', "+one", "@two"]
    root = write_image_folder(tmp_path / "evil", x, y, names)
    os.rename(
        os.path.join(root, names[1], "0004.png"),
        os.fsencode(os.path.join(root, names[1])) + b"/-\xff.png",
    )
    model = tmp_path / "m"
    small = ["--epochs", "1", "--set", "filters=2", "--set", "dense_units=4"]
    code, _, err = run(
        capsys, "train", "cnn", "--data", root, *small, "--validation-split", "0", "--out", model
    )
    assert code == 0, err
    out = tmp_path / "p.csv"
    code, _, err = run(capsys, "predict", model, "--data", root, "--out", out)
    assert code == 0, err
    cells = [c for row in csv.reader(open(out, encoding="utf-8")) for c in row]
    assert not [c for c in cells if c[:1] in "=+@\t\r" or (c[:1] == "-" and not _number(c))]
    assert "'+one/-\\xff.png" in cells and '\'=HYPERLINK("x")' in cells
    assert fileio.spreadsheet_safe("-0.5") == "-0.5" and fileio.spreadsheet_safe("\tx") == "'\tx"
    # data.json is covered by the integrity check: an edited class name is caught
    record = json.load(open(model / "data.json"))
    record["class_names"]["label"][0] = "cat"
    json.dump(record, open(model / "data.json", "w"))
    assert "data.json does not match the SHA-256 recorded in preset.json" in one_line_error(
        capsys, "verify", model
    )
    assert "does not match the SHA-256" in one_line_error(
        capsys, "predict", model, "--data", root, "--out", tmp_path / "q.csv"
    )
    assert not (tmp_path / "q.csv").exists()


def _number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


# ------------------------------------------------------------------------ memory
def _bomb(path, gigabytes=1.2):
    """An .npz whose one member inflates to `gigabytes` of zeros (a few MB on disk)."""
    n = int(gigabytes * 1e9) // 256
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as z:
        with z.open("x.npy", "w", force_zip64=True) as f:
            header = io.BytesIO()
            np.lib.format.write_array_header_1_0(
                header, {"descr": "<f4", "fortran_order": False, "shape": (n, 64)}
            )
            f.write(header.getvalue())
            block, left = bytes(1 << 20), n * 256
            while left > 0:
                f.write(block[: min(left, len(block))])
                left -= len(block)
    return str(path)


def _declares(path, shape):
    """An .npz whose member's header declares `shape` float32 but holds 16 bytes."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": shape}
    )
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x.npy", header.getvalue() + bytes(16))
    return str(path)


def _sparse_npy(path, row_bytes=2_500_000_000):
    header = io.BytesIO()
    columns = row_bytes // 4
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (2, columns)}
    )
    with open(path, "wb") as f:
        f.write(header.getvalue())
        f.truncate(len(header.getvalue()) + 2 * columns * 4)  # a sparse file: no disk used
    return str(path)


CHILD = textwrap.dedent("""
    import json, resource, sys, time
    from keras_bigmodel import data
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    base, results = peak(), {}
    for name, path in json.loads(sys.argv[1]).items():
        start = time.perf_counter()
        try:
            ds = data.load(path)
            outcome = f"read {len(ds)} rows, {len(ds.info.get('feature_columns', []))} columns"
        except data.DataError as e:
            outcome = "DataError: " + str(e)
        except BaseException as e:
            outcome = f"{type(e).__name__}: {e}"
        results[name] = {"outcome": outcome, "grew": peak() - base}
    print("RESULTS" + json.dumps(results))
""")


@pytest.mark.once
def test_memory_and_time_bombs_are_refused_before_allocating(tmp_path):
    Image.new("L", (8000, 8000)).save(tmp_path / "big.png", optimize=True)
    (tmp_path / "bomb").mkdir()
    os.rename(tmp_path / "big.png", tmp_path / "bomb" / "big.png")
    wide = tmp_path / "wide.csv"
    with open(wide, "w") as f:
        f.write(",".join(f"c{i}" for i in range(200_000)) + "\n")
        f.write(",".join("1" for _ in range(200_000)) + "\n")
    cases = {
        "npz_bomb": _bomb(tmp_path / "bomb.npz"),
        "npz_declares_7gb": _declares(tmp_path / "declared.npz", (1_800_000_000,)),
        "sparse_npy_row": _sparse_npy(tmp_path / "sparse.npy"),
        "png_8000x8000": str(tmp_path / "bomb"),
        "csv_200k_columns": str(wide),
    }
    env = {**os.environ, "KERAS_BACKEND": "numpy"}
    child = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        capture_output=True, text=True, timeout=240, env=env,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    line = next(x for x in child.stdout.splitlines() if x.startswith("RESULTS"))
    results = json.loads(line[len("RESULTS") :])
    expected = {
        "npz_bomb": r"DataError: .*bomb.npz: array 'x' of shape \(4687500, 64\) needs "
        r"1,200,000,128 bytes, over the memory limit of 1,073,741,824 bytes",
        "npz_declares_7gb": r"DataError: .*needs 7,200,000,000 bytes, over the memory limit",
        "sparse_npy_row": r"DataError: .*one row of shape \(625000000,\) needs 2,500,000,000 bytes",
        "png_8000x8000": r"DataError: image .*big.png declares 8000x8000 pixels \(64,000,000\); "
        r"at most 16,777,216 are allowed \(max_image_pixels\)",
        "csv_200k_columns": r"read 1 rows, 200000 columns",
    }
    import re

    for name, pattern in expected.items():
        assert re.match(pattern, results[name]["outcome"]), (name, results[name])
        assert results[name]["grew"] < 200 * 2**20, (name, results[name])  # peak RSS growth
