"""`list`, `show` and `build`: the zoo's presets."""

from __future__ import annotations

import json

import keras_bigmodel as kbm
import zoo
from keras_bigmodel.cli._common import CommandError, say

__all__ = ["run_build", "run_list", "run_show"]


def run_list(args, out) -> None:
    """One line per preset: its name and description."""
    names = zoo.list_presets()
    width = max(len(n) for n in names)
    for name in names:
        say(out, f"{name:<{width}}  {zoo.describe(name)['description']}")


def run_show(args, out) -> None:
    """A preset's description, builder, config, compile settings and summary."""
    info = zoo.describe(args.preset)
    model = zoo.build(args.preset, compile=False)
    say(out, f"{info['name']}: {info['description']}")
    say(out, f"builder: {info['builder_path']}")
    say(out, "config: " + json.dumps(info["config"], default=str))
    say(out, "compile: " + json.dumps(info["compile"], default=str))
    trainable = zoo.get_preset(args.preset).data is not None
    say(out, f"trainable with 'keras-bigmodel train': {'yes' if trainable else 'no'}")
    model.summary(print_fn=lambda line, **kwargs: print(line, file=out))
    say(out, f"parameters: {model.count_params():,}")


def run_build(args, out) -> None:
    """Builds a preset with `--set` overrides and saves it (untrained)."""
    if not args.out.endswith(".keras"):
        raise CommandError(f"--out must end in .keras. Received: {args.out}")
    model = zoo.build(args.preset, **dict(args.set or []))
    kbm.save_model(model, args.out)
    say(out, f"built {args.preset} ({model.count_params():,} parameters) -> {args.out}")
