"""`verify`: model files."""

from __future__ import annotations

import os

import zoo
from keras_bigmodel import data
from keras_bigmodel.cli._common import CommandError, say
from keras_bigmodel.verification import verify_file

__all__ = ["run_verify"]


def run_verify(args, out) -> None:
    """Reloads in safe mode; compares with the recorded probe predictions (preset
    directories) and with a second save/reload."""
    path, expected, probe = args.model, None, None
    if os.path.isdir(path):
        metadata = zoo.read_preset_metadata(path)
        probe = metadata.get("probe")
        expected = (probe or {}).get("outputs")
        zoo.load_preset(path, compile=False)  # the SHA-256 check of model.keras
        data.read_record(path)  # and of data.json (its SHA-256 is in preset.json)
        path = os.path.join(path, "model.keras")
    elif not os.path.lexists(path):
        raise CommandError(f"No such file or directory: {path}")
    say(out, f"verifying {path} ...")
    report = verify_file(path, expected=expected, atol=args.atol, probe=probe)
    recorded = report["probe_vs_recorded"]
    say(out, f"loaded in safe mode: {path} ({report['parameters']:,} parameters)")
    if recorded is not None:
        say(out, f"probe predictions vs recorded: max difference {recorded:.3g}")
    say(out, f"save/reload round trip: max difference {report['resave_vs_load']:.3g}")
    if not report["ok"]:
        raise CommandError(
            f"verification FAILED for {args.model}: predictions differ by more than {args.atol}"
        )
    say(out, "OK")
