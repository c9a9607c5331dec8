"""The `keras-bigmodel` command's entry point (also `python -m keras_bigmodel`).

This module is deliberately outside the `keras_bigmodel` package: importing anything
in the package imports Keras (it registers its layers with Keras on import), which
takes many seconds. Here the whole command line is parsed, `--help`, `--version` and
argument errors are answered, and only then is Keras loaded, with the command's module
(`keras_bigmodel.cli.<module>`), imported lazily. Standard library only.

    keras-bigmodel list | show | build | train | evaluate | predict | explain |
                   verify | quantize | demo

A failure prints one line on stderr (`keras-bigmodel: error: ...`) and exits with
status 1; a command-line usage error exits with status 2 (argparse's usage message);
Ctrl-C exits with 130. `--debug` shows the traceback instead.

When this is the process's entry point (`main()` called without `argv`),
TensorFlow's native log lines, which its C++ runtime writes straight to file
descriptor 2 (and which TF_CPP_MIN_LOG_LEVEL does not stop before absl logging is set
up), are kept off the terminal: descriptor 2 goes to /dev/null while Python's
`sys.stderr` keeps the real terminal, so the user sees this command's messages and
Python warnings. Set KERAS_BIGMODEL_NATIVE_LOGS=1 to keep them. Nothing of this happens
on `import keras_bigmodel`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

__all__ = ["COMMANDS", "EXPLAIN_METHODS", "build_parser", "check_paths", "main"]

PROG = "keras-bigmodel"
EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# command -> (module in keras_bigmodel.cli, function); imported only when run
COMMANDS = {
    "list": ("catalog", "run_list"),
    "show": ("catalog", "run_show"),
    "build": ("catalog", "run_build"),
    "train": ("train", "run_train"),
    "evaluate": ("evaluate", "run_evaluate"),
    "predict": ("predict", "run_predict"),
    "explain": ("explain", "run_explain"),
    "verify": ("files", "run_verify"),
    "quantize": ("quantize", "run_quantize"),
    "demo": ("demo", "run_demo_command"),
}
# keras_bigmodel.explain.METHODS, repeated here so that --help needs no Keras
# (tests/test_cli.py checks that the two lists agree).
EXPLAIN_METHODS = (
    "auto",
    "saliency",
    "smoothgrad",
    "integrated_gradients",
    "input_x_gradient",
    "gradient_shap",
    "deeplift",
    "occlusion",
    "gradcam",
    "gradcam++",
    "layercam",
    "scorecam",
    "attention",
)
MAX_MESSAGE = 1200
_BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch", "numpy": "NumPy"}


# ------------------------------------------------------------------ argument types
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}") from None
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _image_size(text: str) -> tuple[int, int]:
    parts = text.lower().replace("*", "x").split("x")
    try:
        dims = [int(p) for p in parts]
    except ValueError:
        dims = []
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"expected HEIGHTxWIDTH (e.g. 32x32) or one size for both, got {text!r}"
        )
    return dims[0], dims[1]


def _columns(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",")]
    if not all(names):
        raise argparse.ArgumentTypeError(
            f"expected comma-separated column names (e.g. island,sex), got {text!r}"
        )
    return names


def _key_value(text: str) -> tuple[str, object]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(
            f"expects KEY=VALUE, e.g. --set num_classes=3; got {text!r}"
        )
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw  # a plain string, e.g. --set cell=gru
    return key.strip(), value


# -------------------------------------------------------------------------- parser
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows an option's default when it has a meaningful one; keeps epilogs' line breaks."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            default not in (None, False, argparse.SUPPRESS)
            and "default" not in text
            and action.option_strings
        ):
            text += " (default: %(default)s)"
        return text


def _version() -> str:
    from importlib import metadata

    def version(name):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    ours = version("keras-bigmodel")
    if ours is None:  # running from a source tree that is not installed
        here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "keras_bigmodel")
        ours = "(not installed)"
        try:
            with open(os.path.join(here, "version.py"), encoding="utf-8") as f:
                for line in f:
                    if line.startswith("__version__"):
                        ours = line.split("=", 1)[1].strip().strip("\"'")
        except OSError:
            pass
    backend = backend_name()
    parts = [f"Keras {version('keras') or 'not installed'}"]
    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if package:
        parts.append(f"{_BACKEND_NAMES[backend]} {version(package) or 'not installed'}")
    return f"{PROG} {ours} ({', '.join(parts)}; backend {backend})"


class _VersionAction(argparse.Action):
    def __init__(
        self,
        option_strings,
        dest=argparse.SUPPRESS,
        default=argparse.SUPPRESS,
        help="print the versions of keras-bigmodel, Keras and the backend, and exit",
    ):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(_version())
        parser.exit()


def backend_name() -> str:
    """The Keras backend this process will use, as Keras decides it (KERAS_BACKEND, then
    keras.json), found without importing Keras."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json"), encoding="utf-8") as f:
            return str(json.load(f).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


_DATA_HELP = (
    "the data: a folder of images with one sub-folder per class (the folder names are "
    "the class names), a .npz file (arrays x and y; or x_<input> and y_<task> for several "
    "inputs or tasks), a .npy file of features (no labels), a .csv file (numeric feature "
    "columns and a label column), or 'digits' (scikit-learn's bundled 8x8 digits, offline)"
)


def _data_options(parser: argparse.ArgumentParser, digits: str) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", required=True, metavar="PATH", help=f"{_DATA_HELP}. {digits}")
    group.add_argument(
        "--label-column",
        action="append",
        metavar="NAME",
        help="CSV: the column holding the labels (default: 'label', or the columns a trained "
        "model recorded); repeat it for a multi-task model, one column per task",
    )
    group.add_argument(
        "--feature-columns",
        type=_columns,
        metavar="A,B,...",
        help="CSV: the feature columns, comma-separated (default: every column that is not a "
        "label, the id or dropped; for a trained model, the columns it recorded)",
    )
    group.add_argument(
        "--drop-columns",
        type=_columns,
        metavar="A,B,...",
        help="CSV: columns to leave out, comma-separated (ids, free text, leaks)",
    )
    group.add_argument(
        "--id-column",
        metavar="NAME",
        help="CSV: a column identifying the rows; never a feature, and predict writes it "
        "as the id of each row",
    )
    group.add_argument(
        "--missing",
        choices=["impute", "drop", "error"],
        default="impute",
        help="CSV: a missing value (empty, NA, NaN, ...) in a feature is imputed inside the "
        "model with an indicator (impute), its row is dropped (drop), or it is an error "
        "(error); with drop, rows without a label are dropped too",
    )
    group.add_argument(
        "--image-size",
        type=_image_size,
        metavar="HxW",
        help="images: resize every image to HEIGHTxWIDTH, e.g. 32x32 (default: no resizing; "
        "the images must then all have one size, or the size a trained model recorded; "
        "a model trained on an image folder resizes images of any size itself)",
    )
    group.add_argument(
        "--color-mode",
        choices=["grayscale", "rgb"],
        help="images: read them with 1 (grayscale) or 3 (rgb) channels (default: grayscale "
        "if every image is, or the mode a trained model recorded)",
    )
    group.add_argument(
        "--bad-images",
        choices=["refuse", "skip"],
        default="refuse",
        help="images: stop at an unreadable image with an error, or skip unreadable images "
        "and report how many",
    )
    group.add_argument(
        "--stream",
        action="store_true",
        help="images: read them from disk batch by batch instead of loading them all into "
        "memory (automatic above 1 GiB of pixels)",
    )
    group.add_argument(
        "--batch-size", type=_positive_int, default=32, metavar="N", help="examples per batch"
    )


def _model_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "model",
        metavar="MODEL",
        help="a trained preset directory (from 'keras-bigmodel train') or a .keras file",
    )


def build_parser() -> argparse.ArgumentParser:
    """The whole command line (no Keras import)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error instead of one line",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Attention pooling, multi-task heads, branch fusion and a model zoo for "
        "Keras 3: train the zoo's presets on your own images, arrays or CSV files, then "
        "evaluate, predict, explain, verify and quantize them.",
        epilog="Start with 'keras-bigmodel demo'. Run 'keras-bigmodel COMMAND --help' for a "
        "command's options. Failures print one line and exit with status 1 (2 for usage "
        "errors).",
        formatter_class=_Formatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    parser.add_argument(
        "--debug",
        action="store_true",
        help="show the full traceback of an error instead of one line",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    def command(name, help, description=None, epilog=None):
        return sub.add_parser(
            name,
            help=help,
            description=description or help,
            epilog=epilog,
            parents=[common],
            formatter_class=_Formatter,
        )

    command("list", "list the zoo's presets")

    p = command("show", "describe a preset: its config, layers and parameter count")
    p.add_argument("preset", metavar="PRESET", help="a preset name (see 'keras-bigmodel list')")

    p = command("build", "build a preset (untrained) and save it as a .keras file")
    p.add_argument("preset", metavar="PRESET", help="a preset name (see 'keras-bigmodel list')")
    p.add_argument("--out", required=True, metavar="FILE.keras", help="the .keras file to write")
    p.add_argument(
        "--set",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="override a config entry of the preset (a JSON value, e.g. --set "
        "input_shape=[32,32,3]); repeatable",
    )

    p = command(
        "train",
        "train a preset on your data and save a trained preset directory",
        epilog="examples:\n  keras-bigmodel train cnn --data photos/ --image-size 32x32 "
        "--epochs 10 --out my-cnn\n  keras-bigmodel train tabular --data penguins.csv "
        "--label-column species --out my-penguins\n  keras-bigmodel train tabular --data "
        "table.csv --label-column species --label-column sex --drop-columns year --set "
        "hidden_units=[32] --out my-mt",
    )
    p.add_argument(
        "preset",
        metavar="PRESET",
        help="the preset to train (see 'keras-bigmodel list'); its "
        "input shapes and classes are set from the data",
    )
    p.add_argument(
        "--out",
        required=True,
        metavar="DIR",
        help="the preset directory to write: model.keras, preset.json, data.json (class "
        "names, how the data was read) and metrics.json",
    )
    _data_options(p, "For 'digits', its 1,347-image training split.")
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=10,
        metavar="N",
        help="passes over the training data",
    )
    p.add_argument(
        "--validation-split",
        type=_fraction,
        default=0.2,
        metavar="F",
        help="fraction of each class held out to validate on (0: none)",
    )
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="stop when the validation loss (the training loss without validation) has not "
        "improved for --patience epochs, and keep the best weights",
    )
    p.add_argument(
        "--patience",
        type=_positive_int,
        default=3,
        metavar="N",
        help="epochs without improvement before --early-stopping stops",
    )
    p.add_argument(
        "--set",
        action="append",
        type=_key_value,
        metavar="KEY=VALUE",
        help="override a config entry of the preset (a JSON value, e.g. --set "
        "hidden_units=[32] for tabular, --set filters=16 for cnn; 'keras-bigmodel show "
        "PRESET' lists the keys); repeatable; the data sets the input shapes and classes",
    )
    p.add_argument(
        "--categorical-columns",
        type=_columns,
        metavar="A,B,...",
        help="CSV: numeric columns that are categories, comma-separated: integer codes (a "
        "grade 1..5, a year, a zip code) looked up inside the model like Keras's "
        "IntegerLookup instead of read as numbers (string columns are categorical anyway)",
    )
    p.add_argument(
        "--categorical-encoding",
        choices=["onehot", "embedding"],
        help="tabular: encode categorical columns one-hot (the preset's default) or with a "
        "trained embedding per column (--set embedding_dim=N sets its width)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the initial weights, the validation split and the shuffling",
    )

    heldout = "For 'digits', its 450-image test split."
    p = command(
        "evaluate",
        "accuracy, per-class precision and recall, and a confusion matrix on labelled data",
    )
    _model_argument(p)
    _data_options(p, heldout)
    p.add_argument(
        "--out",
        default="confusion_matrix.png",
        metavar="FILE.png",
        help="the confusion matrix picture (a multi-task model gets one per task, FILE-<task>.png)",
    )
    p.add_argument("--json", metavar="FILE.json", help="also write the metrics as JSON")

    p = command("predict", "write each example's predicted class and probabilities to a CSV")
    _model_argument(p)
    _data_options(p, heldout + " Labels are optional here.")
    p.add_argument(
        "--out",
        required=True,
        metavar="FILE.csv",
        help="the CSV to write: one row per example with its id, predicted class name, its "
        "probability and every class's probability (and the true class, if known)",
    )

    p = command(
        "explain",
        "draw what the model looks at for a few examples (Grad-CAM, saliency, attention, ...) "
        "as a PNG",
    )
    _model_argument(p)
    _data_options(p, heldout + " Labels are optional here.")
    p.add_argument("--out", required=True, metavar="FILE.png", help="the picture to write")
    p.add_argument(
        "--method",
        choices=EXPLAIN_METHODS,
        default="auto",
        help="the explanation method; auto: attention for a model with an AttentionLayer, "
        "Grad-CAM for images with a convolution, saliency otherwise (integrated gradients "
        "for tabular data)",
    )
    p.add_argument(
        "--output",
        metavar="TASK",
        help="the task to explain, for a multi-task model (default: its first task)",
    )
    p.add_argument(
        "--samples",
        type=_positive_int,
        default=8,
        metavar="N",
        help="examples to explain (at most 32), taken from each class in turn",
    )
    p.add_argument(
        "--evaluate",
        action="store_true",
        help="rank the methods that apply to the model by faithfulness and robustness "
        "metrics (deletion, insertion, ROAD, infidelity, max-sensitivity) on these examples; "
        "print the table and draw each method's deletion and insertion curves into --out",
    )

    p = command(
        "verify", "reload a model in safe mode and check that its predictions are unchanged"
    )
    _model_argument(p)
    p.add_argument(
        "--atol",
        type=_non_negative,
        default=1e-5,
        metavar="TOL",
        help="largest difference between predictions that still passes",
    )

    p = command(
        "quantize",
        "compress a trained model (int8 Keras, ONNX or LiteRT; optional pruning) and print "
        "its size, accuracy and latency before and after",
    )
    _model_argument(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="PATH",
        help="where to write: a .keras file, or a directory (a preset directory for "
        "--format keras; model.onnx or model.tflite with runtime.json otherwise), with the "
        "source's data.json",
    )
    p.add_argument(
        "--format",
        choices=["keras", "onnx", "litert"],
        default="keras",
        help="keras: Keras's int8/int4 weights (Dense, EinsumDense, Embedding); onnx / "
        "litert: int8 weights and activations calibrated on --data (convolutions too)",
    )
    p.add_argument(
        "--mode",
        choices=["int8", "int4"],
        default="int8",
        help="--format keras: the quantization of Dense, EinsumDense and Embedding weights",
    )
    p.add_argument(
        "--prune",
        type=_fraction,
        metavar="SPARSITY",
        help="first prune this share of the weights (e.g. 0.8) while fine-tuning on --data",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=2,
        metavar="N",
        help="--prune: epochs of fine-tuning",
    )
    _data_options(
        p,
        "Calibration, fine-tuning and accuracy; for 'digits', calibration and fine-tuning "
        "on its training split, accuracy on its test split. Optional for --format keras",
    )
    for action in p._actions:
        if action.dest == "data":
            action.required = False

    p = command(
        "demo",
        "the offline end-to-end demo: train, save, reload, verify, quantize and explain three "
        "presets on the bundled digits",
    )
    p.add_argument(
        "--out",
        default="bigmodel-demo",
        metavar="DIR",
        help="where the models, pictures and results.json go",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="one epoch per model: a fast smoke run, not the real figures",
    )
    p.add_argument(
        "--epochs",
        type=_positive_int,
        metavar="N",
        help="epochs for every model (default: each model's own)",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        metavar="N",
        help="seed of the initial weights and the shuffling",
    )
    return parser


# ---------------------------------------------------------------------------- main
def _quiet_native_stderr() -> None:
    """Points file descriptor 2 at /dev/null and `sys.stderr` at a copy of the real one."""
    if os.environ.get("KERAS_BIGMODEL_NATIVE_LOGS") == "1":
        return
    try:
        sys.stderr.flush()
        terminal = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        sys.stderr = os.fdopen(
            terminal,
            "w",
            buffering=1,
            encoding=sys.stderr.encoding or "utf-8",
            errors="backslashreplace",
        )
    except (OSError, ValueError, AttributeError):
        pass  # no usable descriptor 2 (an embedded interpreter): leave things as they are


def _one_line(error: BaseException) -> str:
    if isinstance(error, KeyError) and error.args and type(error) is KeyError:
        message = str(error.args[0])
    else:
        message = str(error)
    message = " ".join(message.split()) or type(error).__name__
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return message


def _fail(error: BaseException, debug: bool) -> int:
    if debug:
        raise error
    message = _one_line(error)
    if isinstance(error, MemoryError):
        message = (
            f"out of memory ({message}); try a smaller --batch-size, or --stream to read "
            f"images from disk batch by batch"
        )
    elif (
        not isinstance(error, (ValueError, TypeError, KeyError, OSError, RuntimeError, ImportError))
        and type(error).__name__ != "CommandError"
    ):
        message = f"{type(error).__name__}: {message} (run with --debug for the traceback)"
    print(f"{PROG}: error: {message}", file=sys.stderr, flush=True)
    return EXIT_FAILURE


def _loading_message(stream) -> str | None:
    """What the command is loading (Keras and its backend take seconds), for a terminal;
    None in pipes and logs (they stay clean) or when Keras is already loaded."""
    if "keras" in sys.modules or not (hasattr(stream, "isatty") and stream.isatty()):
        return None
    backend = backend_name()
    return f"{PROG}: loading Keras with the {_BACKEND_NAMES.get(backend, backend)} backend ..."


def check_paths(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths a command was given, checked before Keras is loaded
    (seconds), or None: a missing `--data` (other than the bundled 'digits') or model."""
    model = getattr(args, "model", None)
    if model is not None and not os.path.lexists(model):
        return f"No such file or directory: {model}"
    data = getattr(args, "data", None)
    if data is not None and data != "digits" and not os.path.lexists(data):
        parent = os.path.dirname(data) or "."
        hint = ""
        if os.path.isdir(parent):
            import difflib

            close = difflib.get_close_matches(os.path.basename(data), os.listdir(parent), n=1)
            hint = (
                f" (did you mean {os.path.join(os.path.dirname(data), close[0])}?)" if close else ""
            )
        return f"--data {data}: no such file or folder{hint}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Runs the command line; returns the exit status.

    Args:
        argv: The arguments (without the program name). `None` means this process's
            own arguments, and that this process is the command: TensorFlow's native
            log lines are then kept off the terminal (see the module docstring).

    Returns:
        0 on success, 1 on a failure (one line on stderr), 2 on a usage error, 130
        when interrupted.
    """
    is_process = argv is None
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version or a usage error (already printed)
        return e.code if isinstance(e.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    problem = check_paths(args)
    if problem is not None:
        print(f"{PROG}: error: {problem}", file=sys.stderr, flush=True)
        return EXIT_FAILURE
    if is_process:
        _quiet_native_stderr()
    import importlib
    import logging

    # TensorFlow's Python logger warns about tf.function retracing whenever several
    # models predict in one process; that is expected in a command line.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    module_name, function_name = COMMANDS[args.command]
    try:
        message = _loading_message(sys.stderr)
        if message:
            print(message, file=sys.stderr, flush=True)
        module = importlib.import_module(f"keras_bigmodel.cli.{module_name}")
        getattr(module, function_name)(args, sys.stdout)
    except KeyboardInterrupt as e:  # train says what it kept
        detail = f": {_one_line(e)}" if str(e) else ""
        print(f"{PROG}: interrupted{detail}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED
    except SystemExit:
        raise
    except BaseException as e:  # every failure is one line; --debug shows it
        return _fail(e, debug)
    sys.stdout.flush()
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
