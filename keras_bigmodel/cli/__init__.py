"""The `keras-bigmodel` command (also `python -m keras_bigmodel`).

    keras-bigmodel list
    keras-bigmodel show NAME
    keras-bigmodel build NAME --out FILE.keras [--set key=value ...]
    keras-bigmodel train NAME --data digits --epochs N --out DIR [--set key=value ...]
    keras-bigmodel evaluate FILE_OR_DIR
    keras-bigmodel verify FILE_OR_DIR
    keras-bigmodel quantize FILE --out FILE [--mode int8]
    keras-bigmodel explain FILE --out PNG [--method auto|saliency|gradcam|attention]
    keras-bigmodel demo [--quick] [--out DIR]

A mistake (unknown preset, bad --set, missing or refused file, wrong input shape)
prints one line on stderr and exits with status 1 (2 for command-line usage errors).
This module may import `zoo`; nothing in the library imports it.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def parse_set(items: list[str] | None) -> dict:
    """`--set key=value` pairs; values are JSON (numbers, lists, null, ...) or strings."""
    overrides = {}
    for item in items or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise CommandError(f"--set expects key=value, e.g. --set num_classes=3. Received: {item!r}")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        overrides[key.strip()] = value
    return overrides


def _load(path: str):
    """A .keras file or a preset directory, through the safe loaders."""
    import zoo
    import keras_bigmodel as kbm

    if os.path.isdir(path):
        return zoo.load_preset(path)
    if not os.path.exists(path):
        raise CommandError(f"No such file or directory: {path}")
    return kbm.load_model(path)


# ----------------------------------------------------------------------- commands
def cmd_list(args, out):
    import zoo

    names = zoo.list_presets()
    width = max(len(n) for n in names)
    for name in names:
        print(f"{name:<{width}}  {zoo.describe(name)['description']}", file=out)


def cmd_show(args, out):
    import zoo

    info = zoo.describe(args.name)
    model = zoo.build(args.name, compile=False)
    print(f"{info['name']}: {info['description']}", file=out)
    print(f"builder: {info['builder_path']}", file=out)
    print("config: " + json.dumps(info["config"], default=str), file=out)
    print("compile: " + json.dumps(info["compile"], default=str), file=out)
    model.summary(print_fn=lambda line, **kwargs: print(line, file=out))
    print(f"parameters: {model.count_params():,}", file=out)


def cmd_build(args, out):
    import zoo
    import keras_bigmodel as kbm

    if not args.out.endswith(".keras"):
        raise CommandError(f"--out must end in .keras. Received: {args.out}")
    model = zoo.build(args.name, **parse_set(args.set))
    kbm.save_model(model, args.out)
    print(f"built {args.name} ({model.count_params():,} parameters) -> {args.out}", file=out)


def cmd_train(args, out):
    import keras
    import zoo
    from keras_bigmodel.cli import digits as views
    from keras_bigmodel.data import load_digits

    if args.name not in views.TRAIN_OVERRIDES:
        zoo.get_preset(args.name)  # unknown names fail with close matches
        raise CommandError(
            f"Preset {args.name!r} has no digits view; trainable on digits: "
            f"{', '.join(sorted(views.TRAIN_OVERRIDES))}"
        )
    keras.utils.set_random_seed(args.seed)
    data = load_digits(seed=args.seed)
    model = zoo.build(args.name, **{**views.TRAIN_OVERRIDES[args.name], **parse_set(args.set)})
    x, y = views.model_inputs(model, data.x_train), views.model_targets(model, data.y_train)
    model.fit(x, y, epochs=args.epochs, batch_size=args.batch_size, verbose=progress_verbosity(out))
    zoo.save_preset(model, args.out)
    scores = views.accuracy(model, data.x_test, data.y_test)
    with open(os.path.join(args.out, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"data": "digits", "epochs": args.epochs, "test_accuracy": scores}, f, indent=2)
    shown = ", ".join(f"{k} {v:.3f}" for k, v in scores.items())
    print(f"trained {args.name} for {args.epochs} epochs: test {shown} -> {args.out}", file=out)


def cmd_evaluate(args, out):
    from keras_bigmodel.cli import digits as views
    from keras_bigmodel.data import load_digits

    model = _load(args.path)
    data = load_digits(seed=args.seed)
    scores = views.accuracy(model, data.x_test, data.y_test)
    for key, value in scores.items():
        print(f"{key}: {value:.4f}", file=out)


def cmd_verify(args, out):
    from keras_bigmodel.verification import verify_file

    path, expected = args.path, None
    if os.path.isdir(path):
        import zoo

        metadata = zoo.read_preset_metadata(path)
        expected = metadata.get("probe", {}).get("outputs")
        zoo.load_preset(path, compile=False)  # the SHA-256 check
        path = os.path.join(path, "model.keras")
    elif not os.path.exists(path):
        raise CommandError(f"No such file or directory: {path}")
    report = verify_file(path, expected=expected, atol=args.atol)
    recorded = report["probe_vs_recorded"]
    print(f"loaded in safe mode: {path} ({report['parameters']:,} parameters)", file=out)
    if recorded is not None:
        print(f"probe predictions vs recorded: max difference {recorded:.3g}", file=out)
    print(f"save/reload round trip: max difference {report['resave_vs_load']:.3g}", file=out)
    if not report["ok"]:
        raise CommandError(f"verification FAILED for {args.path}: predictions differ by more than {args.atol}")
    print("OK", file=out)


def cmd_quantize(args, out):
    import keras_bigmodel as kbm

    if os.path.isdir(args.path) or not os.path.exists(args.path):
        raise CommandError(f"quantize needs a .keras file. Received: {args.path}")
    if not args.out.endswith(".keras"):
        raise CommandError(f"--out must end in .keras. Received: {args.out}")
    model = kbm.compress.quantize(kbm.load_model(args.path), mode=args.mode)
    kbm.save_model(model, args.out)
    before, after = os.path.getsize(args.path), os.path.getsize(args.out)
    print(f"{args.mode}: {before:,} -> {after:,} bytes ({after / before:.2f}x) -> {args.out}", file=out)


def cmd_explain(args, out):
    import numpy as np

    import keras_bigmodel as kbm
    from keras_bigmodel.cli import digits as views
    from keras_bigmodel.data import load_digits

    if not args.out.lower().endswith(".png"):
        raise CommandError(f"--out must end in .png. Received: {args.out}")
    model = _load(args.path)
    data = load_digits(seed=args.seed)
    images = data.x_test[: args.samples]
    x = views.model_inputs(model, images)
    method = args.method
    if method == "auto":
        if kbm.explain.attention_layers(model):
            method = "attention"
        elif kbm.explain.conv_layers(model):
            method = "gradcam"
        else:
            method = "saliency"
    if method == "attention":
        scores = kbm.explain.attention_scores(model, x)
        sequences = x if getattr(x, "ndim", 0) == 3 else None
        kbm.explain.save_attention_plot(scores, args.out, sequences=sequences)
    else:
        predicted = model.predict(x, verbose=0)
        if isinstance(predicted, dict):
            if args.output is None:
                raise CommandError(f"the model has outputs {sorted(predicted)}; pick one with --output")
            predicted = predicted[args.output]
        classes = np.argmax(predicted, axis=-1).tolist()
        fn = kbm.explain.gradcam if method == "gradcam" else kbm.explain.saliency
        maps = fn(model, x, classes, output=args.output)
        if isinstance(maps, dict):
            maps = maps.get("image", next(iter(maps.values())))
        if maps.ndim == 2:  # vectors: show the 64 pixels as the 8x8 image they came from
            maps = maps.reshape(len(maps), 8, -1)
        kbm.explain.save_heatmap(maps, args.out, images=images if maps.shape[1:] == (8, 8) else None)
    print(f"{method} map of {len(images)} test digits -> {args.out}", file=out)


def cmd_demo(args, out):
    from keras_bigmodel.cli.demo import run_demo

    run_demo(out_dir=args.out, quick=args.quick, epochs=args.epochs, seed=args.seed, stream=out)


# ------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keras-bigmodel",
        description="Attention pooling, multi-task heads, branch fusion and a model zoo for Keras 3.",
    )
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("list", help="list the zoo's presets").set_defaults(func=cmd_list)

    p = sub.add_parser("show", help="describe a preset: config, summary, parameters")
    p.add_argument("name")
    p.set_defaults(func=cmd_show)

    p = sub.add_parser("build", help="build a preset and save it as .keras")
    p.add_argument("name")
    p.add_argument("--out", required=True, help="destination .keras file")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a config entry (JSON value)")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("train", help="train a preset on real data and save a preset directory")
    p.add_argument("name")
    p.add_argument("--data", choices=["digits"], default="digits",
                   help="training data (scikit-learn's bundled digits; offline)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--out", required=True, help="destination preset directory")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test accuracy of a .keras file or preset directory on digits")
    p.add_argument("path")
    p.add_argument("--data", choices=["digits"], default="digits")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("verify", help="reload in safe mode and compare predictions")
    p.add_argument("path")
    p.add_argument("--atol", type=float, default=1e-5)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("quantize", help="quantize a .keras file's weights (int8)")
    p.add_argument("path")
    p.add_argument("--out", required=True)
    p.add_argument("--mode", choices=["int8", "int4"], default="int8")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser("explain", help="write a saliency / Grad-CAM / attention PNG")
    p.add_argument("path")
    p.add_argument("--out", required=True, help="destination .png")
    p.add_argument("--method", choices=["auto", "saliency", "gradcam", "attention"], default="auto")
    p.add_argument("--output", help="the head to explain, for multi-output models")
    p.add_argument("--samples", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("demo", help="the offline end-to-end demo on the digits")
    p.add_argument("--out", default="bigmodel-demo", help="output directory")
    p.add_argument("--quick", action="store_true", help="one epoch per model (a smoke run)")
    p.add_argument("--epochs", type=int, help="epochs for every model")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_demo)
    return parser


def progress_verbosity(out=None) -> int:
    """Keras progress bars on a terminal; one line per epoch in logs and pipes."""
    out = out or sys.stdout
    return 1 if hasattr(out, "isatty") and out.isatty() else 2


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    out = sys.stdout
    # TensorFlow's Python logger warns about tf.function retracing whenever several
    # models predict in one process, as the demo's do; that is expected here.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        for name in ("epochs", "batch_size", "samples"):
            value = getattr(args, name, None)
            if value is not None and value < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1. Received: {value}")
        args.func(args, out)
    except CommandError as e:
        return _fail(args, e)
    except KeyboardInterrupt:
        print("keras-bigmodel: interrupted", file=sys.stderr)
        return 130
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        return _fail(args, e)
    return EXIT_OK


def _fail(args, error) -> int:
    if args.debug:
        raise error
    message = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    message = " ".join(message.split())  # one line, however the message was wrapped
    print(f"keras-bigmodel: error: {message}", file=sys.stderr)
    return EXIT_FAILURE
