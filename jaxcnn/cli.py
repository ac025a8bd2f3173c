"""The ``jaxcnn`` command (also ``python -m jaxcnn``).

    jaxcnn train [options]        train a model (defaults: LeNet-5 on MNIST, offline)
    jaxcnn eval --workdir DIR     evaluate the latest checkpoint of a run on its test split
    jaxcnn summary MODEL          print a model's layer table (shapes, params, MACs)
    jaxcnn bench [options]        time train/eval steps against PyTorch (see experiments/PERFORMANCE.md)

Bad arguments exit with status 2 and one line on stderr; a diverged run exits
with status 1; Ctrl-C exits with 130 and says how to resume.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from jaxcnn.train.config import APIS, OPTIMIZERS, PARALLEL_MODES, SCHEDULES, TrainConfig, \
    default_workdir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
_DEFAULTS = TrainConfig()
_HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so the message stays one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.prog}: {message} (see --help)")


def _default(name: str) -> str:
    value = getattr(_DEFAULTS, name)
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value) or "none"
    return f"default: {value}"


def _float_list(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated epochs such as 30,60; got {text!r}") from None
    return tuple(int(v) if v.is_integer() else v for v in values)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="jaxcnn", description="Convolutional networks in functional JAX.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    train = commands.add_parser(
        "train", help="train a model and evaluate it every epoch",
        description="Train a model and evaluate it on the test split after every epoch. "
        "The workdir receives config.json, metrics.jsonl, curves.png and checkpoints/.",
        epilog="examples:\n"
        "  jaxcnn train                                  # LeNet-5 on MNIST, offline\n"
        "  jaxcnn train --workdir runs/lenet5_mnist --resume\n"
        "  jaxcnn train --model resnet20 --dataset cifar10 --optimizer sgd --lr 0.1 \\\n"
        "      --weight-decay 1e-4 --schedule step --decay-epochs 82,123 --epochs 164 --augment",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        argument_default=argparse.SUPPRESS)
    # Defaults are SUPPRESSed so that only the flags actually given override the
    # config (TrainConfig's defaults, or the saved config on --resume); the help
    # text shows TrainConfig's defaults.
    add = train.add_argument
    add("--model", help="model name, e.g. lenet5, resnet20, alexnet, vgg16 (an unknown name "
        f"lists them all); {_default('model')}")
    add("--dataset", help=f"mnist, fashion_mnist, cifar10 or digits; {_default('dataset')}")
    add("--data-dir", dest="data_dir", metavar="DIR",
        help="directory holding the dataset files; default: $JAXCNN_DATA_DIR, then the "
        "repo's data/ folder, then TFDS")
    add("--epochs", type=int, metavar="N", help=f"number of epochs; {_default('epochs')}")
    add("--batch-size", dest="batch_size", type=int, metavar="N",
        help=f"training batch size (global, over all devices); {_default('batch_size')}")
    add("--eval-batch-size", dest="eval_batch_size", type=int, metavar="N",
        help=f"evaluation batch size; {_default('eval_batch_size')}")
    add("--optimizer", choices=OPTIMIZERS, help=f"optimizer; {_default('optimizer')}")
    add("--lr", type=float, metavar="X", help=f"base learning rate; {_default('lr')}")
    add("--momentum", type=float, metavar="X", help=f"SGD momentum; {_default('momentum')}")
    add("--nesterov", action=argparse.BooleanOptionalAction,
        help=f"Nesterov momentum (sgd); {_default('nesterov')}")
    add("--weight-decay", dest="weight_decay", type=float, metavar="X",
        help=f"weight decay (L2; decoupled for adamw); {_default('weight_decay')}")
    add("--schedule", choices=SCHEDULES,
        help=f"learning-rate schedule; {_default('schedule')}")
    add("--decay-epochs", dest="decay_epochs", type=_float_list, metavar="E1,E2",
        help=f"epochs at which the step schedule multiplies the lr by --decay-factor; "
        f"{_default('decay_epochs')}")
    add("--decay-factor", dest="decay_factor", type=float, metavar="X",
        help=f"step schedule factor; {_default('decay_factor')}")
    add("--warmup-epochs", dest="warmup_epochs", type=float, metavar="E",
        help=f"linear warm-up length in epochs; {_default('warmup_epochs')}")
    add("--plateau-patience", dest="plateau_patience", type=int, metavar="N",
        help="plateau schedule: epochs without test-accuracy improvement before the lr is "
        f"reduced; {_default('plateau_patience')}")
    add("--plateau-factor", dest="plateau_factor", type=float, metavar="X",
        help=f"plateau schedule: lr multiplier at each reduction; {_default('plateau_factor')}")
    add("--augment", action=argparse.BooleanOptionalAction,
        help="random shifts of training images (cifar10: 4 pixels + horizontal flips; "
        "others: 2 pixels, no flips); default: on except for the 8x8 digits")
    add("--train-examples", dest="train_examples", type=int, metavar="N",
        help="use only the first N training examples (quick runs); default: all")
    add("--test-examples", dest="test_examples", type=int, metavar="N",
        help="use only the first N test examples; default: all")
    add("--seed", type=int, help=f"seed for init, dropout, data order, augmentation; "
        f"{_default('seed')}")
    add("--devices", type=int, metavar="N",
        help="devices for data-parallel training (1 = plain jit); on a CPU-only machine N "
        f"host devices are simulated with XLA_FLAGS={_HOST_DEVICE_FLAG}=N; "
        f"{_default('devices')}")
    add("--parallel", choices=PARALLEL_MODES,
        help=f"multi-device strategy: pmap, or jit over a sharded device mesh; "
        f"{_default('parallel')}")
    add("--api", choices=APIS,
        help="Flax front end that runs the steps: linen, or nnx (the same model as an NNX "
        f"module, jaxcnn.nnx); same metrics and checkpoints; {_default('api')}")
    add("--checkpoint-every", dest="checkpoint_every_steps", type=int, metavar="STEPS",
        help="also checkpoint every STEPS steps inside an epoch (0: epoch ends only); "
        f"{_default('checkpoint_every_steps')}")
    add("--keep-checkpoints", dest="keep_checkpoints", type=int, metavar="N",
        help=f"checkpoints to keep; {_default('keep_checkpoints')}")
    add("--workdir", metavar="DIR", help="output directory; default: runs/<model>_<dataset>")
    add("--resume", action="store_true",
        help="continue the run in --workdir (default: runs/<model>_<dataset>) from its latest "
        "checkpoint with its saved config.json; flags given here override it, but only "
        "--epochs, --data-dir, --eval-batch-size, --devices, --parallel, --api, --checkpoint-every "
        "and --keep-checkpoints may change")
    add("--no-progress", dest="no_progress", action="store_true",
        help="no progress bar (one summary line per epoch only)")
    train.set_defaults(handler=_train)

    evaluate = commands.add_parser(
        "eval", help="evaluate the latest checkpoint of a training run",
        description="Evaluate the latest checkpoint in --workdir on the test split of the "
        "run's dataset.")
    evaluate.add_argument("--workdir", required=True, metavar="DIR",
                          help="workdir of a `jaxcnn train` run")
    evaluate.add_argument("--data-dir", dest="data_dir", metavar="DIR", default=None,
                          help="dataset directory, if it moved since training")
    evaluate.set_defaults(handler=_eval)

    summary = commands.add_parser(
        "summary", help="print a model's layers: output shapes, parameters, MACs",
        description="Print the layer table of a model from the zoo (shape evaluation "
        "only; nothing is trained).")
    summary.add_argument("model", help="model name, e.g. lenet5, alexnet, vgg16, resnet50")
    summary.add_argument("--input-shape", dest="input_shape", metavar="H,W,C", default=None,
                         type=_shape, help="input image shape; default: the model's own")
    summary.set_defaults(handler=_summary)

    from jaxcnn.bench.runner import add_arguments as add_bench_arguments

    bench = commands.add_parser(
        "bench", help="time train and eval steps against PyTorch, and conv layers per impl",
        description="Time jaxcnn's train and eval steps against the same model in PyTorch "
        "(interleaved rounds, medians), with GFLOP/s, the fraction of the measured matmul "
        "peak and the first step's compile time; --per-layer also times each conv layer's "
        "forward+backward per implementation.")
    add_bench_arguments(bench)
    bench.set_defaults(handler=_bench)
    return parser


def _shape(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected H,W,C such as 32,32,3; got {text!r}") from None
    if len(values) != 3 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected three positive ints H,W,C; got {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the ``jaxcnn`` command line; returns the process exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxcnn {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split())


def _train(args) -> int:
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "handler", "workdir", "resume", "no_progress")}
    if args.__dict__.get("resume"):
        # Without --workdir, the default workdir of the given (or default) model/dataset.
        workdir = Path(args.workdir) if "workdir" in args else default_workdir(
            TrainConfig(**{k: v for k, v in given.items() if k in ("model", "dataset")}))
        config = TrainConfig.load(workdir).replace(**given)
    else:
        config = TrainConfig(**given)
        workdir = Path(args.workdir) if "workdir" in args else default_workdir(config)
    return run_training(config, workdir, resume=bool(args.__dict__.get("resume")),
                        progress=not args.__dict__.get("no_progress"))


def run_training(config: TrainConfig, workdir, *, resume: bool = False,
                 progress: bool = True) -> int:
    """``train_and_evaluate`` with the command line's error handling; returns an exit status.

    Used by ``jaxcnn train`` and the scripts in ``experiments/``: bad settings
    and missing data print one line and return 2, a diverged run returns 1,
    Ctrl-C returns 130 with the command that resumes.
    """
    _simulate_host_devices(config.devices)
    from jaxcnn.train.loop import TrainingDivergedError, train_and_evaluate

    try:
        final = train_and_evaluate(config, workdir, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as err:
        print(f"jaxcnn train: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_USAGE
    except TrainingDivergedError as err:
        print(f"jaxcnn train: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: jaxcnn train --workdir {workdir} --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    print(f"final test accuracy {100 * final['test_accuracy']:.2f}% "
          f"(loss {final['test_loss']:.4f}); outputs in {workdir}")
    return EXIT_OK


def _eval(args) -> int:
    from jaxcnn.train.loop import evaluate_workdir

    result = evaluate_workdir(args.workdir, data_dir=args.data_dir)
    print(f"{result['dataset']} test: loss {result['test_loss']:.4f}, accuracy "
          f"{100 * result['test_accuracy']:.2f}% ({result['test_images']} images, "
          f"checkpoint step {result['step']})")
    return EXIT_OK


def _summary(args) -> int:
    from jaxcnn import summary

    kwargs = {} if args.input_shape is None else {"input_shape": (1, *args.input_shape)}
    summary.print_summary(args.model, **kwargs)
    return EXIT_OK


def _bench(args) -> int:
    from jaxcnn.bench.runner import run_from_args

    return run_from_args(args)


def _simulate_host_devices(devices: int) -> None:
    """Ask XLA for ``devices`` CPU devices, which only works before jax starts its backend."""
    if devices <= 1 or _HOST_DEVICE_FLAG in os.environ.get("XLA_FLAGS", ""):
        return
    if "jax" in sys.modules:
        from jax._src import xla_bridge  # no public API tells whether backends started

        if xla_bridge.backends_are_initialized():
            return
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" {_HOST_DEVICE_FLAG}={devices}").strip()

