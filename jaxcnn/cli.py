"""The ``jaxcnn`` command (also ``python -m jaxcnn``).

    jaxcnn train [options]        train a model (defaults: LeNet-5 on MNIST, offline)
    jaxcnn eval --workdir DIR     evaluate the latest checkpoint of a run on its test split
    jaxcnn summary MODEL          print a model's layer table (shapes, params, MACs)
    jaxcnn bench [options]        time train/eval steps against PyTorch (see experiments/PERFORMANCE.md)
    jaxcnn launch --processes N -- train ...  run one training as N local processes (loopback)

Bad arguments exit with status 2 and one line on stderr (an explanation of
several lines, such as the places a dataset was looked for, keeps its lines),
speaking of settings by their flags (``--decay-epochs``); a diverged run, or a
workdir that cannot be written (disk full, permission denied), exits with
status 1; Ctrl-C exits with 130 and says how to resume. ``--debug`` anywhere
on the command line also prints the traceback; ``--version`` prints the version.
"""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import traceback
from pathlib import Path

from jaxcnn.cli_messages import flag_names, format_error
from jaxcnn.train.config import HOST_DEVICE_FLAG, TrainConfig, default_workdir

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
# jaxcnn train's multi-process flags (not part of the run's TrainConfig).
_PROCESS_FLAGS = ("coordinator", "num_processes", "process_id", "heartbeat_timeout")
DEFAULT_HEARTBEAT_SECONDS = 100  # jax.distributed's own default
_DEFAULTS = TrainConfig()


class _UsageError(Exception):
    """Raised instead of argparse's print-usage-and-exit, so the message stays one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{self.prog}: {message} (see --help)")


def _default_text(field) -> str:
    if "default_text" in field.metadata:
        return f"default: {field.metadata['default_text']}"
    value = getattr(_DEFAULTS, field.name)
    if isinstance(value, tuple):
        value = ",".join(str(v) for v in value) or "none"
    return f"default: {value}"


def _flag(name: str) -> str:
    """The command-line flag of TrainConfig field ``name``."""
    field = next(f for f in dataclasses.fields(TrainConfig) if f.name == name)
    return field.metadata.get("flag", "--" + name.replace("_", "-"))


def _argparse_type(parse):
    """``parse`` with argparse's error type, so a bad value is a one-line usage error."""
    if parse in (int, float):
        return parse  # argparse words these itself: "invalid int value: 'two'"

    def convert(text: str):
        try:
            return parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    return convert


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field with ``help`` metadata.

    The flag is ``--field-name`` (or the field's ``flag``), its destination the
    field name; ``parse=bool`` fields get ``--x/--no-x``; ``choices``,
    ``metavar`` and ``parse`` (the value type) come from the metadata, and the
    help text ends with the field's default.
    """
    for field in dataclasses.fields(TrainConfig):
        meta = field.metadata
        if "help" not in meta:
            continue
        flag = _flag(field.name)
        kwargs = {"dest": field.name, "help": f"{meta['help']}; {_default_text(field)}"}
        parse = meta.get("parse")
        if parse is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif parse is not None:
            kwargs["type"] = _argparse_type(parse)
        for key in ("choices", "metavar"):
            if key in meta:
                kwargs[key] = meta[key]
        parser.add_argument(flag, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    from jaxcnn import __version__

    parser = _Parser(prog="jaxcnn", description="Convolutional networks in functional JAX.",
                     epilog="--debug anywhere on the command line prints the traceback of an error.")
    parser.add_argument("--version", action="version", version=f"jaxcnn {__version__}")
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
    add_config_flags(train)
    add = train.add_argument
    add("--workdir", metavar="DIR", help="output directory; default: runs/<model>_<dataset>")
    add("--resume", action="store_true",
        help="continue the run in --workdir (default: runs/<model>_<dataset>) from its latest "
        "checkpoint with its saved config.json; flags given here override it, but only "
        f"{', '.join(_flag(name) for name in _DEFAULTS.resume_changeable)} may change")
    add("--no-progress", dest="no_progress", action="store_true",
        help="no progress bar (one summary line per epoch only)")
    add("--compilation-cache", dest="compilation_cache", metavar="DIR|off",
        help="keep compiled XLA programs here, so the next run of the same command starts "
        "without compiling; 'off' turns it off; default: $JAXCNN_COMPILATION_CACHE, else "
        "~/.cache/jaxcnn/xla")
    processes = train.add_argument_group(
        "several processes (one per host; jax.distributed)",
        "Give all three to join a multi-process run; on a Cloud TPU pod slice, under Slurm or "
        "Open MPI, or with JAX_COORDINATOR_ADDRESS set, the run joins without them. --devices "
        "then counts each process's devices and --batch-size is the global batch.")
    processes.add_argument("--coordinator", metavar="HOST:PORT",
                           help="address of process 0, which serves the runtime there; 'auto': "
                           "let jax.distributed detect the cluster (e.g. a GCE TPU VM pod)")
    processes.add_argument("--num-processes", dest="num_processes", metavar="N",
                           type=_positive_int, help="number of processes in the run")
    processes.add_argument("--process-id", dest="process_id", metavar="I", type=_natural_int,
                           help="this process's index, 0 .. N-1 (0 writes the logs)")
    processes.add_argument("--heartbeat-timeout", dest="heartbeat_timeout", metavar="SECONDS",
                           type=_positive_int,
                           help="a process silent this long counts as dead and the others stop "
                           f"with an error; default: {DEFAULT_HEARTBEAT_SECONDS}")
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
    summary.add_argument("--depth", type=int, default=None, metavar="D",
                         help="show rows nested fewer than D levels deep (1: top-level layers and "
                         "blocks, each block with the totals of its layers); default: all")
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

    launch = commands.add_parser(
        "launch", help="run `jaxcnn train` as N local processes of one multi-process run",
        description="Start N local processes on loopback (a free port), each running the "
        "given jaxcnn train command as one process of a multi-process run: for tests and "
        "demos of the multi-host path on one machine. Exits with the first failing "
        "process's status (the others are stopped) or 0.",
        epilog="example:\n"
        "  jaxcnn launch --processes 2 --devices-per-process 2 -- train --model resnet20 "
        "--dataset digits --epochs 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    launch.add_argument("--processes", required=True, type=_positive_int, metavar="N",
                        help="number of processes")
    launch.add_argument("--devices-per-process", dest="devices_per_process", type=_positive_int,
                        metavar="K", default=None,
                        help="CPU devices each process simulates (also its --devices); default: "
                        "the platform's")
    launch.add_argument("--port", type=_positive_int, default=None,
                        help="coordinator port on 127.0.0.1; default: a free one")
    launch.add_argument("train_command", nargs=argparse.REMAINDER, metavar="-- train ...",
                        help="the jaxcnn train command every process runs")
    launch.set_defaults(handler=_launch)
    return parser


def _int_at_least(minimum: int, words: str):
    """An argparse type: an int >= ``minimum``, else a one-line error ``expected <words>``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "a positive integer")
_natural_int = _int_at_least(0, "an integer >= 0")


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
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as err:
        print(str(err), file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as done:  # --help, --version
        return done.code if isinstance(done.code, int) else EXIT_OK
    from jaxcnn.native.malloc import keep_freed_memory

    keep_freed_memory()  # this process is ours: keep XLA's per-step buffers mapped
    args.debug = debug
    _quiet_third_party_logs(debug)
    flags = _command_flags(parser, args.command)
    try:
        return args.handler(args)
    except (ValueError, FileNotFoundError) as err:
        _report(args.command, err, flags, debug)
        return EXIT_USAGE
    except OSError as err:
        _report(args.command, err, flags, debug)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _command_flags(parser: argparse.ArgumentParser, command: str) -> dict[str, str]:
    """Field -> flag of ``command``'s sub-parser (see :mod:`jaxcnn.cli_messages`)."""
    for action in parser._actions:  # argparse has no public accessor for sub-parsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return flag_names(action.choices[command])
    return {}


def _report(command: str, err: BaseException, flags: dict[str, str], debug: bool,
            then: str = "") -> None:
    if debug:
        traceback.print_exception(err)
    print(format_error(command, err, flags) + then, file=sys.stderr)


def _quiet_third_party_logs(debug: bool) -> None:
    """Keep absl's log lines (TFDS, Orbax) off a normal run's terminal; --debug shows them.

    Their failures reach the user as jaxcnn's own one-line errors.
    """
    if not debug:
        logging.getLogger("absl").setLevel(logging.CRITICAL)


def _train(args) -> int:
    given = {k: v for k, v in vars(args).items()
             if k not in ("command", "handler", "workdir", "resume", "no_progress", "debug",
                          "compilation_cache", *_PROCESS_FLAGS)}
    if args.__dict__.get("resume"):
        # Without --workdir, the default workdir of the given (or default) model/dataset.
        workdir = Path(args.workdir) if "workdir" in args else default_workdir(
            TrainConfig(**{k: v for k, v in given.items() if k in ("model", "dataset")}))
        config = TrainConfig.load(workdir).replace(**given)
    else:
        config = TrainConfig(**given)
        workdir = Path(args.workdir) if "workdir" in args else default_workdir(config)
    if isinstance(config.devices, int):
        _simulate_host_devices(config.devices)  # before the runtime starts the devices
    _join_processes(args)
    _use_compilation_cache(args.__dict__.get("compilation_cache"))
    return run_training(config, workdir, resume=bool(args.__dict__.get("resume")),
                        progress=not args.__dict__.get("no_progress"),
                        debug=args.__dict__.get("debug", False))


def run_training(config: TrainConfig, workdir, *, resume: bool = False,
                 progress: bool = True, debug: bool = False) -> int:
    """``train_and_evaluate`` with the command line's error handling; returns an exit status.

    Used by ``jaxcnn train`` and the scripts in ``experiments/``: bad settings
    and missing data print one line (or the lines of a longer explanation) and
    return 2, a diverged run or an unwritable workdir (disk full, permission
    denied: the checkpoints already written are kept) returns 1, Ctrl-C
    returns 130 with the command that resumes. ``debug`` also prints tracebacks.
    """
    if isinstance(config.devices, int):
        _simulate_host_devices(config.devices)
    from jaxcnn.train.loop import TrainingDivergedError, train_and_evaluate

    _quiet_third_party_logs(debug)
    flags = _command_flags(build_parser(), "train")
    try:
        final = train_and_evaluate(config, workdir, resume=resume, progress=progress)
    except (ValueError, FileNotFoundError) as err:
        _report("train", err, flags, debug)
        return EXIT_USAGE
    except TrainingDivergedError as err:
        _report("train", err, flags, debug)
        return EXIT_FAILED
    except OSError as err:  # disk full, permission denied: what was saved is kept
        _report("train", err, flags, debug,
                then=f"; fix it, then continue with: jaxcnn train --workdir {workdir} --resume")
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: jaxcnn train --workdir {workdir} --resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    from jaxcnn.train.distributed import is_main_process

    if is_main_process():
        print(f"final test accuracy {100 * final['test_accuracy']:.2f}% "
              f"(loss {final['test_loss']:.4f}); outputs in {workdir}")
    return EXIT_OK


def _join_processes(args) -> None:
    """``--coordinator/--num-processes/--process-id`` (or a detected cluster) -> jax.distributed."""
    from jaxcnn.train import distributed

    settings = {name: args.__dict__.get(name) for name in _PROCESS_FLAGS}
    distributed.initialize(
        settings["coordinator"], settings["num_processes"], settings["process_id"],
        heartbeat_timeout_seconds=settings["heartbeat_timeout"] or DEFAULT_HEARTBEAT_SECONDS)


def _use_compilation_cache(setting: str | None) -> None:
    from jaxcnn.train import compilation_cache

    directory = compilation_cache.directory_for(setting)
    if directory is not None:
        compilation_cache.enable(directory)


def _launch(args) -> int:
    from jaxcnn.train.launcher import launch_local

    command = list(args.train_command)
    if command[:1] == ["--"]:
        command = command[1:]
    return launch_local(args.processes, command, devices_per_process=args.devices_per_process,
                        port=args.port)


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
    summary.print_summary(args.model, depth=args.depth, **kwargs)
    return EXIT_OK


def _bench(args) -> int:
    from jaxcnn.bench.runner import run_from_args

    return run_from_args(args)


def _simulate_host_devices(devices: int) -> None:
    """Ask XLA for ``devices`` CPU devices, which only works before jax starts its backend."""
    if devices <= 1 or HOST_DEVICE_FLAG in os.environ.get("XLA_FLAGS", ""):
        return
    if "jax" in sys.modules:
        from jax._src import xla_bridge  # no public API tells whether backends started

        if xla_bridge.backends_are_initialized():
            return
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" {HOST_DEVICE_FLAG}={devices}").strip()

