"""keras_bigmodel.fileio: atomic writes that never follow links, bounded reads of regular
files only, and the clean-up of temporary files whose writer died."""

import csv
import fcntl
import json
import os

import pytest

from keras_bigmodel import fileio


def test_atomic_write_replaces_a_link_and_never_writes_through_it(tmp_path):
    precious = tmp_path / "precious.txt"
    precious.write_text("keep me")
    link = tmp_path / "metrics.json"
    os.symlink(precious, link)
    fileio.write_json_atomic(link, {"accuracy": 0.5})
    assert precious.read_text() == "keep me"
    assert not os.path.islink(link) and json.loads(link.read_text()) == {"accuracy": 0.5}
    dangling = tmp_path / "out.csv"
    os.symlink(tmp_path / "nowhere" / "x.csv", dangling)
    with fileio.atomic_write(dangling, "w", newline="") as f:
        csv.writer(f).writerows([["a", "b"], [1, 2]])
    assert dangling.read_bytes() == b"a,b\r\n1,2\r\n" and not os.path.islink(dangling)
    assert sorted(os.listdir(tmp_path)) == ["metrics.json", "out.csv", "precious.txt"]


def test_a_failed_write_keeps_the_previous_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "picture.png"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with fileio.atomic_write(path) as f:
            f.write(b"half a pic")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["picture.png"]
    with pytest.raises(KeyboardInterrupt):
        with fileio.atomic_path(tmp_path / "new.tflite", suffix=".tflite") as tmp:
            assert tmp.endswith(".kbm-tmp.tflite") and os.path.getsize(tmp) == 0
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == ["picture.png"]


def test_destination_errors(tmp_path):
    (tmp_path / "exists.txt").write_text("x")
    os.symlink(tmp_path / "missing", tmp_path / "dangling")
    for name in ("exists.txt", "dangling"):
        with pytest.raises(FileExistsError, match="overwrite=False"):
            with fileio.atomic_write(tmp_path / name, "w", overwrite=False) as f:
                f.write("new")
    assert (tmp_path / "exists.txt").read_text() == "x"
    with fileio.atomic_write(tmp_path / "fresh.txt", "w", overwrite=False) as f:
        f.write("new")
    assert (tmp_path / "fresh.txt").read_text() == "new"
    with pytest.raises(IsADirectoryError):
        with fileio.atomic_write(tmp_path, "w"):
            pass
    with pytest.raises(FileNotFoundError, match="does not exist"):
        with fileio.atomic_write(tmp_path / "no" / "dir.txt", "w"):
            pass
    with pytest.raises(ValueError, match=r"`mode` must be 'wb' or 'w'"):
        with fileio.atomic_write(tmp_path / "x", "a"):
            pass
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(tmp_path / "fresh.txt").st_mode & 0o777 == 0o666 & ~umask


def test_stale_temporaries_are_removed_but_not_a_live_writers(tmp_path):
    stale = tmp_path / ".model.keras.abcd1234.kbm-tmp"
    stale.write_bytes(b"killed mid-save")
    unrelated = [tmp_path / ".model.keras.tmp", tmp_path / "notes.kbm-tmp.txt"]
    for path in unrelated:
        path.write_bytes(b"not ours")
    os.symlink(tmp_path / "notes.kbm-tmp.txt", tmp_path / ".x.abcdefgh.kbm-tmp")
    with fileio.atomic_write(tmp_path / "model.keras") as f:
        f.write(b"new")
        live = [
            n
            for n in os.listdir(tmp_path)
            if n.startswith(".model.keras.") and n.endswith(".kbm-tmp")
        ]
        assert live and not stale.exists()  # the write cleaned the dead writer's file
        assert fileio.clean_stale_temporaries(tmp_path) == []  # its own is locked
    locked = tmp_path / ".other.keras.zzzz9999.kbm-tmp"
    locked.write_bytes(b"")
    with open(locked, "rb") as held:  # a writer in another process holding its lock
        fcntl.flock(held, fcntl.LOCK_EX)
        assert fileio.clean_stale_temporaries(tmp_path) == []
    assert fileio.clean_stale_temporaries(tmp_path) == [str(locked)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [".model.keras.tmp", "notes.kbm-tmp.txt", ".x.abcdefgh.kbm-tmp", "model.keras"]
    )


def test_open_regular_refuses_what_is_not_a_regular_file(tmp_path):
    regular = tmp_path / "model.keras"
    regular.write_bytes(b"x" * 10)
    os.symlink(regular, tmp_path / "link.keras")
    os.mkfifo(tmp_path / "fifo.keras")
    with pytest.raises(fileio.UnsafePathError, match="is a symbolic link; refused"):
        fileio.open_regular(tmp_path / "link.keras")
    with fileio.open_regular(tmp_path / "link.keras", follow_symlinks=True) as f:
        assert f.read() == b"x" * 10
    for path in (tmp_path / "fifo.keras", "/dev/zero", tmp_path):
        with pytest.raises(fileio.UnsafePathError, match="is not a regular file; refused"):
            fileio.open_regular(path, follow_symlinks=True)
    with pytest.raises(fileio.UnsafePathError, match="is 10 bytes, over the 9-byte limit"):
        fileio.open_regular(regular, max_bytes=9)
    assert fileio.read_bounded(regular, 10) == b"x" * 10
    with open(regular, "rb") as f:  # a file that grew after its size was checked
        with pytest.raises(fileio.UnsafePathError, match="larger than the 5-byte limit"):
            fileio.read_bounded(f, 5)
    assert issubclass(fileio.UnsafePathError, OSError)
    assert issubclass(fileio.UnsafePathError, ValueError)
    with pytest.raises(FileNotFoundError):
        fileio.open_regular(tmp_path / "missing")
