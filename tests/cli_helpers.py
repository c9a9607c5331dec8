"""Running `keras-bigmodel` in the test's own process."""

from __future__ import annotations

import keras_bigmodel_cli as cli


def run(capsys, *args):
    """`keras-bigmodel ARGS` in this process: (exit status, stdout, stderr)."""
    code = cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(capsys, *args):
    code, out, err = run(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1, (code, out[-2000:], err[-2000:])
    assert len(lines) == 1 and lines[0].startswith("keras-bigmodel: error: "), err
    return lines[0][len("keras-bigmodel: error: ") :]
