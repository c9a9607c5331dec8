"""Keeps TensorFlow's native log lines off the terminal when this process is our CLI.

TensorFlow's C++ runtime writes lines such as "failed call to cuInit" straight to
file descriptor 2 when it loads and when it first runs an op, before absl logging
is configured, so TF_CPP_MIN_LOG_LEVEL does not stop them. Only when the process
is the `keras-bigmodel` command (or `python -m keras_bigmodel`), fd 2 is pointed
at /dev/null and Python's `sys.stderr` keeps the real terminal, so the user sees
our messages and Python warnings and nothing else. Set
KERAS_BIGMODEL_NATIVE_LOGS=1 to keep the native lines. Imports nothing heavy.
"""

from __future__ import annotations

import os
import sys


def is_cli_process() -> bool:
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    orig = getattr(sys, "orig_argv", [])
    return argv0 in ("keras-bigmodel", "keras-bigmodel.exe") or orig[1:3] == ["-m", "keras_bigmodel"]


def silence_native_stderr() -> None:
    if os.environ.get("KERAS_BIGMODEL_NATIVE_LOGS") == "1" or "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding,
                               errors="backslashreplace")
    except (OSError, ValueError, AttributeError):
        pass  # no usable fd 2 (e.g. an embedded interpreter): leave things as they are


if is_cli_process():
    silence_native_stderr()
