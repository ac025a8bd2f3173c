"""`TrainConfig`: every knob of a training run, validated, and saved as ``config.json``.

The defaults are the main job: LeNet-5 on MNIST (read offline from the repo's
``data/mnist``), Adam (lr 1e-3) on a cosine schedule, batch 128, 8 epochs,
random 2-pixel shifts: 99.45% test accuracy in 12.8 minutes on the project's
2-core CPU (experiments/README.md). Adam rather than SGD because with
He-initialised layers SGD+momentum at lr 0.05 kills this LeNet (dead ReLUs)
and at lr 0.01 it learns more slowly; the shifts because without them the run
overfits and ends at 99.19%.
"""
from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "adadelta")
SCHEDULES = ("constant", "step", "cosine", "warmup_cosine", "plateau")
PARALLEL_MODES = ("pmap", "sharded")
# Which Flax front end runs the steps: linen (jaxcnn.train) or NNX (jaxcnn.nnx).
APIS = ("linen", "nnx")
CONFIG_FILENAME = "config.json"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """A training run. All fields are plain JSON values (see :meth:`to_dict`).

    Data
      model: a name from ``jaxcnn.models.names()``; model_kwargs: extra keyword
        arguments for ``models.get`` (``num_classes`` comes from the dataset).
      dataset: a name from ``jaxcnn.data.names()``; data_dir: where the files
        are (None: ``$JAXCNN_DATA_DIR``, then the repo's ``data/``, then TFDS).
      train_examples / test_examples: use only the first N examples of a split
        (quick runs and smoke tests); None uses all of it.
      augment: random shifts of training images (crops of a zero-padded copy:
        4 pixels + horizontal flips for cifar10, 2 pixels without flips for
        the digit and clothing datasets); None picks it per dataset (on for
        cifar10, mnist and fashion_mnist, off for the 8x8 digits).

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

    Execution
      seed: one integer for init, dropout, data order and augmentation.
      devices: 1 trains with ``jax.jit`` on one device; N > 1 is data parallel
        over N devices with ``parallel`` = "pmap" or "sharded" (jit over a
        device Mesh); batch_size must be divisible by devices.
      api: "linen" (the steps of :mod:`jaxcnn.train`) or "nnx" (the same model
        as an NNX module, stepped by :mod:`jaxcnn.nnx`; same metrics and
        checkpoints, so a run may resume with the other api).
      checkpoint_every_steps: also checkpoint every this many steps inside an
        epoch (0: only at epoch ends), so a killed run loses little;
        keep_checkpoints: how many checkpoints to keep.
    """

    model: str = "lenet5"
    dataset: str = "mnist"
    data_dir: str | None = None
    model_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    train_examples: int | None = None
    test_examples: int | None = None
    augment: bool | None = None

    epochs: int = 8
    batch_size: int = 128
    eval_batch_size: int = 1000
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "cosine"
    decay_epochs: tuple[float, ...] = ()
    decay_factor: float = 0.1
    warmup_epochs: float = 0
    plateau_patience: int = 2
    plateau_factor: float = 0.1

    seed: int = 0
    devices: int = 1
    parallel: str = "sharded"
    api: str = "linen"
    checkpoint_every_steps: int = 200
    keep_checkpoints: int = 3

    def __post_init__(self):
        # Normalise JSON-ish values (lists from config.json) before validating.
        object.__setattr__(self, "decay_epochs", tuple(self.decay_epochs))
        object.__setattr__(self, "model_kwargs", dict(self.model_kwargs))
        self._validate()

    # ------------------------------------------------------------------ checks
    def _validate(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size", "devices", "keep_checkpoints",
                     "plateau_patience"):
            _require_int(name, getattr(self, name), minimum=1)
        for name in ("checkpoint_every_steps", "seed"):
            _require_int(name, getattr(self, name), minimum=0)
        for name in ("train_examples", "test_examples"):
            if getattr(self, name) is not None:
                _require_int(name, getattr(self, name), minimum=1)
        _require_choice("optimizer", self.optimizer, OPTIMIZERS)
        _require_choice("schedule", self.schedule, SCHEDULES)
        _require_choice("parallel", self.parallel, PARALLEL_MODES)
        _require_choice("api", self.api, APIS)
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
        right = "]" if high_inclusive else ")"
        span = f"{left}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{right}"
        raise ValueError(f"{name} must be in {span}, got {value}")
