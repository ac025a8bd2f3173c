"""`TrainConfig`: every knob of a training run, validated, and saved as ``config.json``.

The defaults are the main job: LeNet-5 on MNIST (read offline from the repo's
``data/mnist``), Adam (lr 1e-3) on a cosine schedule, batch 128, 8 epochs,
random 2-pixel shifts (the run and its result: README.md and
experiments/README.md); the shifts because without them the run overfits.
SGD+momentum at lr 0.05 started at the full rate kills this He-initialised
LeNet's conv2 ReLUs in 2 of 10 seeds; with ``warmup_epochs=0.1`` none of 10
collapsed (experiments/PERFORMANCE.md, "Seed robustness of the classic SGD
recipe"), so that is the documented SGD recipe, and Adam, the measured
8-epoch run, stays the default.

Each field carries its command-line help in its metadata (``help``, and
optionally ``flag``, ``metavar``, ``parse``, ``choices``, ``default_text``):
``jaxcnn train`` generates one flag per field that has ``help``
(:func:`jaxcnn.cli.build_parser`), so a new field with help text is a new flag.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jaxcnn.functional.conv import DEFAULT_CONV_IMPL, IMPLS as CONV_IMPLS
from jaxcnn.train.optim import OPTIMIZERS, SCHEDULES

PARALLEL_MODES = ("pmap", "sharded")
WEIGHT_DECAY_TARGETS = ("weights", "all")
# Which Flax front end runs the steps: linen (jaxcnn.train) or NNX (jaxcnn.nnx).
APIS = ("linen", "nnx")
# Computation dtypes of a model (parameters, optimizer state and statistics stay float32).
DTYPES = ("float32", "bfloat16")
CONFIG_FILENAME = "config.json"
# On a CPU-only machine `--devices N` simulates N host devices with this XLA flag.
HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def parse_devices(text: str) -> int | str:
    """``"4"`` -> 4; ``"all"`` and ``"auto"`` stay words (see ``TrainConfig.devices``)."""
    if text in ("all", "auto"):
        return text
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a device count, all or auto; got {text!r}") from None


def parse_float_list(text: str) -> tuple[float, ...]:
    """``"30,60"`` -> ``(30, 60)`` (integral values as ints); ValueError names the expected form."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ValueError(f"expected comma-separated epochs such as 30,60; got {text!r}") from None
    return tuple(int(v) if v.is_integer() else v for v in values)


def _option(default=dataclasses.MISSING, *, help: str, default_factory=dataclasses.MISSING,
            **cli) -> dataclasses.Field:
    """A config field with its command-line help (see the module docstring)."""
    return dataclasses.field(default=default, default_factory=default_factory,
                             metadata={"help": help, **cli})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. All fields are plain JSON values (see :meth:`to_dict`).

    Data
      model: a name from ``jaxcnn.models.names()``; model_kwargs: extra keyword
        arguments for ``models.get`` (``num_classes`` comes from the dataset).
      dtype: the model's computation dtype, "float32" or "bfloat16"
        (``models.get(model, dtype=...)``; parameters stay float32, so
        checkpoints are interchangeable and a run may resume in the other).
      conv_impl: the model's convolution implementation
        (``models.get(model, conv_impl=...)``, one of
        ``jaxcnn.functional.conv.IMPLS``; default ``"auto"``).
      dataset: a name from ``jaxcnn.data.names()``; data_dir: where the files
        are (None: ``$JAXCNN_DATA_DIR``, then the repo's ``data/``, then TFDS).
      train_examples / test_examples: use only the first N examples of a split
        (quick runs and smoke tests); None uses all of it.
      augment: random shifts of training images (crops of a zero-padded copy:
        4 pixels + horizontal flips for cifar10, 2 pixels without flips for
        the digit and clothing datasets); None picks it per dataset
        (:func:`jaxcnn.data.augmentation_for`: on for cifar10, mnist and
        fashion_mnist, off for the 8x8 digits).

    Optimization
      epochs, batch_size (training drops the last partial batch, so every step
        sees ``batch_size`` images), eval_batch_size.
      optimizer: one of ``OPTIMIZERS``; lr: base learning rate; momentum and
        nesterov (sgd only; ignored by the others), weight_decay (through Optax: L2 for sgd/adam/adadelta,
        decoupled for adamw).
      schedule: one of ``SCHEDULES``; decay_epochs and decay_factor ("step":
        lr *= decay_factor at each listed epoch); warmup_epochs
        ("warmup_cosine"); plateau_patience and plateau_factor ("plateau": lr *=
        plateau_factor once test accuracy has not improved for
        plateau_patience epochs, the AlexNet recipe).
      weight_decay_on: "weights" (the conv/dense kernels only, as the slides'
        ``R(W) = lambda sum W^2``; :func:`jaxcnn.functional.weight_mask`) or
        "all" (also biases and batch-norm scales/shifts).
      recompute_batch_stats: after the last epoch, replace the batch-norm
        running averages by the population statistics over this many training
        batches (:func:`jaxcnn.train.recompute_batch_stats`; 0: off).

    Execution
      seed: one integer for init, dropout, data order and augmentation.
      devices: 1 trains with ``jax.jit`` on one device; N > 1 is data parallel
        over N devices with ``parallel`` = "pmap" or "sharded" (jit over a
        device Mesh); batch_size must be divisible by devices. "all": every
        local device; "auto" (default): all on a GPU/TPU, 1 on the CPU (see
        :meth:`resolved`).
      api: "linen" (the steps of :mod:`jaxcnn.train`) or "nnx" (the same model
        as an NNX module, stepped by :mod:`jaxcnn.nnx`; same metrics and
        checkpoints, so a run may resume with the other api).
      checkpoint_every_steps: also checkpoint every this many steps inside an
        epoch (0: only at epoch ends), so a killed run loses little;
        keep_checkpoints: how many checkpoints to keep.
      eval_every_steps: also evaluate on the test split every this many steps
        and record it in ``step_evals.jsonl`` with the wall time since the run
        started (0: only at epoch ends, and no such file).

    A config is immutable, hashable and compared by value. The field groups
    that matter to a resumed run are properties: :attr:`resume_changeable`
    and :attr:`model_and_optimizer_fields`.
    """

    model: str = _option("lenet5", help="model name, e.g. lenet5, resnet20, alexnet, vgg16 (an "
                         "unknown name lists them all)")
    dataset: str = _option("mnist", help="mnist, fashion_mnist, cifar10 or digits")
    data_dir: str | None = _option(
        None, metavar="DIR", help="directory holding the dataset files",
        default_text="$JAXCNN_DATA_DIR, then the repo's data/ folder, then TFDS")
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    conv_impl: str = _option(DEFAULT_CONV_IMPL, choices=CONV_IMPLS, metavar="IMPL",
                             help="the model's convolution implementation (auto: oneDNN on the "
                             "CPU where it applies, else XLA's or im2col)")
    dtype: str = _option(
        "float32", choices=DTYPES,
        help="computation dtype: bfloat16 runs convolutions, dense layers and activations in "
        "bfloat16 (mixed precision); parameters, optimizer state, batch-norm statistics, "
        "softmax and the loss stay float32, and checkpoints are the same for both")
    train_examples: int | None = _option(
        None, parse=int, metavar="N", default_text="all",
        help="use only the first N training examples (quick runs)")
    test_examples: int | None = _option(
        None, parse=int, metavar="N", default_text="all",
        help="use only the first N test examples")
    augment: bool | None = _option(
        None, parse=bool, default_text="on except for the 8x8 digits",
        help="random shifts of training images (cifar10: 4 pixels + horizontal flips; others: "
        "2 pixels, no flips)")

    epochs: int = _option(8, parse=int, metavar="N", help="number of epochs")
    batch_size: int = _option(128, parse=int, metavar="N",
                              help="training batch size (global, over all devices)")
    eval_batch_size: int = _option(1000, parse=int, metavar="N", help="evaluation batch size")
    optimizer: str = _option("adam", choices=OPTIMIZERS, help="optimizer")
    lr: float = _option(1e-3, parse=float, metavar="X", help="base learning rate")
    momentum: float = _option(0.9, parse=float, metavar="X", help="SGD momentum")
    nesterov: bool = _option(False, parse=bool, help="Nesterov momentum (sgd)")
    weight_decay: float = _option(0.0, parse=float, metavar="X",
                                  help="weight decay (L2; decoupled for adamw)")
    weight_decay_on: str = _option(
        "weights", choices=WEIGHT_DECAY_TARGETS,
        help="which parameters weight decay applies to: weights (conv/dense kernels, the "
        "slides' R(W)) or all (also biases and batch-norm parameters)")
    schedule: str = _option("cosine", choices=SCHEDULES, help="learning-rate schedule")
    decay_epochs: tuple[float, ...] = _option(
        (), parse=parse_float_list, metavar="E1,E2",
        help="epochs at which the step schedule multiplies the lr by --decay-factor")
    decay_factor: float = _option(0.1, parse=float, metavar="X", help="step schedule factor")
    warmup_epochs: float = _option(0, parse=float, metavar="E",
                                   help="linear warm-up length in epochs (SGD with momentum at lr 0.05 "
                                   "needs 0.1 on LeNet-5, else some seeds die)")
    plateau_patience: int = _option(
        2, parse=int, metavar="N",
        help="plateau schedule: epochs without test-accuracy improvement before the lr is reduced")
    plateau_factor: float = _option(0.1, parse=float, metavar="X",
                                    help="plateau schedule: lr multiplier at each reduction")

    seed: int = _option(0, parse=int, help="seed for init, dropout, data order, augmentation")
    devices: int | str = _option(
        "auto", parse=parse_devices, metavar="N|all|auto",
        help="devices for data-parallel training: N (1 = plain jit), all (every local device), "
        "or auto (all on a GPU/TPU, 1 on the CPU); on a CPU-only machine N host devices are "
        f"simulated with XLA_FLAGS={HOST_DEVICE_FLAG}=N")
    parallel: str = _option("sharded", choices=PARALLEL_MODES,
                            help="multi-device strategy: pmap, or jit over a sharded device mesh")
    api: str = _option("linen", choices=APIS,
                       help="Flax front end that runs the steps: linen, or nnx (the same model as "
                       "an NNX module, jaxcnn.nnx); same metrics and checkpoints")
    checkpoint_every_steps: int = _option(
        200, parse=int, flag="--checkpoint-every", metavar="STEPS",
        help="also checkpoint every STEPS steps inside an epoch (0: epoch ends only)")
    keep_checkpoints: int = _option(3, parse=int, metavar="N", help="checkpoints to keep")
    eval_every_steps: int = _option(
        0, parse=int, flag="--eval-every", metavar="STEPS",
        help="also evaluate on the test split every STEPS steps, into step_evals.jsonl with the "
        "wall time since the start (time to accuracy); 0: epoch ends only")
    recompute_batch_stats: int = _option(
        0, parse=int, metavar="BATCHES",
        help="after training, recompute the batch-norm statistics as population estimates "
        "(E[mu_B], m/(m-1) E[sigma_B^2]) over this many training batches, report the test "
        "accuracy before/after and save them in the final checkpoint; 0: off")

    def __post_init__(self):
        # Normalise JSON-ish values (lists from config.json) before validating.
        object.__setattr__(self, "decay_epochs", tuple(self.decay_epochs))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        self._validate()

    def __hash__(self) -> int:
        # model_kwargs is a dict: hash the JSON form, which equal configs share.
        return hash(json.dumps(self.to_dict(), sort_keys=True))

    # ------------------------------------------------------------ field groups
    @property
    def resume_changeable(self) -> tuple[str, ...]:
        """Fields a resumed run may change: they do not alter the state's structure (the
        device count and conv implementation reorder float sums; dtype changes the
        computation's precision, not the float32 checkpoint)."""
        return ("epochs", "data_dir", "eval_batch_size", "devices", "parallel", "conv_impl", "api",
                "dtype",
                "checkpoint_every_steps", "keep_checkpoints", "recompute_batch_stats",
                "eval_every_steps")

    @property
    def model_and_optimizer_fields(self) -> tuple[str, ...]:
        """Fields that define the model and the optimizer (not the data or the devices)."""
        return ("model", "model_kwargs", "conv_impl", "dtype", "epochs", "optimizer", "lr", "momentum",
                "nesterov", "weight_decay", "weight_decay_on", "schedule", "decay_epochs",
                "decay_factor", "warmup_epochs", "plateau_patience", "plateau_factor")

    def model_and_optimizer(self) -> TrainConfig:
        """This config with every field outside :attr:`model_and_optimizer_fields` at its default.

        Equal for two runs that build the same model and optimizer, so it keys
        the cache that lets them share one module, one optimizer and the jitted
        steps compiled for them.
        """
        return TrainConfig(**{name: getattr(self, name)
                              for name in self.model_and_optimizer_fields})

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "keep_checkpoints",
                     "plateau_patience"):
            _require_int(name, getattr(self, name), minimum=1)
        if self.devices not in ("all", "auto"):
            _require_int("devices", self.devices, minimum=1)
        for name in ("checkpoint_every_steps", "seed", "recompute_batch_stats",
                     "eval_every_steps"):
            _require_int(name, getattr(self, name), minimum=0)
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), minimum=1)
        _require_choice("optimizer", self.optimizer, OPTIMIZERS)
        _require_choice("schedule", self.schedule, SCHEDULES)
        _require_choice("parallel", self.parallel, PARALLEL_MODES)
        _require_choice("conv_impl", self.conv_impl, CONV_IMPLS)
        _require_choice("weight_decay_on", self.weight_decay_on, WEIGHT_DECAY_TARGETS)
        _require_choice("api", self.api, APIS)
        _require_choice("dtype", self.dtype, DTYPES)
        _require_number("lr", self.lr, low=0.0, low_inclusive=False)
        _require_number("momentum", self.momentum, low=0.0, high=1.0, high_inclusive=False)
        _require_number("weight_decay", self.weight_decay, low=0.0)
        _require_number("warmup_epochs", self.warmup_epochs, low=0.0)
        _require_number("decay_factor", self.decay_factor, low=0.0, high=1.0,
                        low_inclusive=False)
        _require_number("plateau_factor", self.plateau_factor, low=0.0, high=1.0,
                        low_inclusive=False, high_inclusive=False)
        for name in ("nesterov",):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.augment is not None and not isinstance(self.augment, bool):
            raise ValueError(f"augment must be true, false or null (auto), got {self.augment!r}")
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"model must be a model name, got {self.model!r}")
        if not isinstance(self.dataset, str) or not self.dataset:
            raise ValueError(f"dataset must be a dataset name, got {self.dataset!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ValueError(f"data_dir must be a path string or null, got {self.data_dir!r}")
        if "num_classes" in self.model_kwargs:
            raise ValueError("model_kwargs must not set num_classes: it comes from the dataset")
        for field in ("conv_impl", "dtype"):
            if field in self.model_kwargs:
                raise ValueError(f"model_kwargs must not set {field}: use the {field} field")
        for epoch in self.decay_epochs:
            _require_number("decay_epochs entry", epoch, low=0.0, low_inclusive=False)
        if list(self.decay_epochs) != sorted(set(self.decay_epochs)):
            raise ValueError(
                f"decay_epochs must be strictly increasing, got {list(self.decay_epochs)}"
            )
        if self.schedule == "step" and not self.decay_epochs:
            raise ValueError('schedule "step" needs decay_epochs, e.g. decay_epochs=(30, 60)')
        if self.schedule != "step" and self.decay_epochs:
            raise ValueError(
                f'decay_epochs applies to schedule "step" only, got schedule {self.schedule!r}'
            )
        if self.decay_epochs and self.decay_epochs[-1] >= self.epochs:
            raise ValueError(
                f"decay_epochs must be < epochs ({self.epochs}), got {list(self.decay_epochs)}"
            )
        if self.warmup_epochs >= self.epochs:
            raise ValueError(
                f"warmup_epochs ({self.warmup_epochs}) must be < epochs ({self.epochs})"
            )
        if self.schedule == "warmup_cosine" and self.warmup_epochs == 0:
            raise ValueError('schedule "warmup_cosine" needs warmup_epochs > 0')
        if self.optimizer == "sgd" and self.nesterov and self.momentum == 0:
            raise ValueError("nesterov=True needs momentum > 0, got momentum=0")
        if isinstance(self.devices, str):
            return  # checked against the device count by resolved()
        if self.batch_size % self.devices or self.eval_batch_size % self.devices:
            raise ValueError(
                f"batch_size ({self.batch_size}) and eval_batch_size ({self.eval_batch_size}) "
                f"must be divisible by devices ({self.devices})"
            )

    def check_names(self) -> None:
        """Raise ValueError unless ``model`` and ``dataset`` are registered names.

        Separate from construction so a config can be built (and tested) without
        importing the model zoo and the data package.
        """
        from jaxcnn import data, models

        if self.model not in models.names():
            raise ValueError(
                f"unknown model {self.model!r}; choose one of: {', '.join(models.names())}"
            )
        if self.dataset not in data.names():
            raise ValueError(
                f"unknown dataset {self.dataset!r}; choose one of: {', '.join(data.names())}"
            )

    # -------------------------------------------------------------- JSON I/O
    def resolved(self) -> TrainConfig:
        """This config with ``devices`` as a number: ``"all"`` is every local device,
        ``"auto"`` is every local device on an accelerator and 1 on the CPU (where
        several devices are only simulated). Raises ValueError when the batch sizes
        do not divide by that number."""
        if not isinstance(self.devices, str):
            return self
        import jax

        if self.devices == "auto" and jax.default_backend() == "cpu":
            return self.replace(devices=1)
        return self.replace(devices=jax.local_device_count())

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["decay_epochs"] = list(self.decay_epochs)
        return values

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"unknown config keys {unknown}; valid keys: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def save(self, workdir: str | Path) -> Path:
        """Write ``<workdir>/config.json`` (creating workdir) and return its path."""
        path = Path(workdir) / CONFIG_FILENAME
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, workdir: str | Path) -> TrainConfig:
        """Read ``<workdir>/config.json``; FileNotFoundError when there is none."""
        path = Path(workdir) / CONFIG_FILENAME
        if not path.is_file():
            raise FileNotFoundError(
                f"no {CONFIG_FILENAME} in {workdir}: is it the workdir of a `jaxcnn train` run?"
            )
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from None
        if not isinstance(values, dict):
            raise ValueError(f"{path} must hold a JSON object, got {type(values).__name__}")
        return cls.from_dict(values)


def default_workdir(config: TrainConfig) -> Path:
    """``runs/<model>_<dataset>`` (relative to the current directory)."""
    return Path("runs") / f"{config.model}_{config.dataset}"


def _require_int(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def _require_choice(name: str, value, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(choices)}")


def _require_number(name, value, *, low=None, high=None, low_inclusive=True,
                    high_inclusive=True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        left = "[" if low_inclusive else "("
        right = "]" if high_inclusive and high is not None else ")"  # inf is never accepted
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{right}"
        raise ValueError(f"{name} must be in {span}, got {value}")
