"""The training loop: ``train_and_evaluate(config, workdir)``, the main job of jaxcnn.

Per epoch: train over the shuffled training split with a progress bar, evaluate
on the test split, print one summary line, rewrite ``<workdir>/metrics.jsonl``
and ``<workdir>/curves.png``, and checkpoint (also every
``config.checkpoint_every_steps`` steps inside the epoch).

Exact resume. A checkpoint holds the whole train state (params, batch_stats,
optimizer state incl. the plateau controller, step, dropout key) and, as its
metadata, the data-order seed and the :class:`Position`: epoch, next batch,
the running sums of the interrupted epoch's training metrics and the finished
epochs' records. Data
order depends only on (seed, epoch), augmentation keys on (seed, epoch, batch)
and dropout keys on (seed, step), so a run resumed from any checkpoint --
including one written mid-epoch before a ``kill -9`` -- computes the same
numbers as an uninterrupted run.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from jaxcnn import data, models
from jaxcnn.train import metrics as metrics_io
from jaxcnn.train import parallel, sharded, steps
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import TrainConfig
from jaxcnn.train.optim import Plateau, make_optimizer, make_schedule
from jaxcnn.train.state import create_train_state

CHECKPOINT_SUBDIR = "checkpoints"
# Training-image augmentation when it is on: (padding, flip) = random crops of a
# copy zero-padded by `padding` pixels on each side (random shifts of up to
# `padding` pixels), plus a random horizontal mirror where it keeps the class.
# Digits are not mirrored (a mirrored 2 is no 2).
AUGMENTATIONS = {"cifar10": (4, True)}
DEFAULT_AUGMENTATION = (2, False)
# On unless the config says otherwise (8x8 digits are too small to shift by 2).
AUGMENTED_BY_DEFAULT = ("cifar10", "mnist", "fashion_mnist")
# Config fields a resumed run may change (they do not alter the computation
# up to the float reordering of a different device count).
RESUME_CHANGEABLE = ("epochs", "data_dir", "eval_batch_size", "devices", "parallel", "api",
                     "checkpoint_every_steps", "keep_checkpoints")


class TrainingDivergedError(RuntimeError):
    """The training loss (or the parameters) became NaN or infinite; the message names the step."""


@dataclasses.dataclass
class Position:
    """Where a run is, and the running sums of the epoch in progress (checkpoint metadata).

    ``epoch`` is the 0-based index of the epoch in progress and ``batch`` the
    next batch to train in it (0 at an epoch boundary). ``history`` holds the
    metrics records of the finished epochs.
    """

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    correct_sum: float = 0.0
    images: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)

    def next_epoch(self) -> Position:
        return Position(epoch=self.epoch + 1, history=list(self.history))


def train_and_evaluate(
    config: TrainConfig,
    workdir: str | Path,
    *,
    resume: bool = False,
    progress: bool = True,
) -> dict:
    """Train ``config.model`` on ``config.dataset``, evaluating on the test split every epoch.

    Args:
      config: the run (see :class:`TrainConfig`); written to ``<workdir>/config.json``.
      workdir: receives ``config.json``, ``metrics.jsonl``, ``curves.png`` and
        ``checkpoints/``.
      resume: continue from the latest checkpoint in ``workdir`` (a fresh start
        when there is none yet). The config must equal the saved one except for
        the fields in ``RESUME_CHANGEABLE``. Without ``resume`` a workdir that
        already holds checkpoints is refused.
      progress: show a tqdm progress bar per epoch (the one-line epoch
        summaries are printed either way).

    Returns:
      The last epoch's metrics record: ``epoch``, ``train_loss``,
      ``train_accuracy``, ``test_loss``, ``test_accuracy`` (fractions in
      [0, 1]), ``epoch_seconds``, ``images_per_second``.

    Raises:
      ValueError: bad config (unknown model/dataset, batch larger than the
        training set, a changed config on resume, too few devices, ...).
      FileNotFoundError: missing data directory or data files.
      TrainingDivergedError: a non-finite loss; names the step and the last
        good checkpoint, which is kept (the bad state is never saved).
    """
    config.check_names()
    workdir = Path(workdir)
    checkpoint_dir = workdir / CHECKPOINT_SUBDIR
    _check_workdir(config, workdir, checkpoint_dir, resume)
    train_set, test_set = load_datasets(config)
    steps_per_epoch = data.num_batches(len(train_set), config.batch_size, drop_remainder=True)
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size ({config.batch_size}) is larger than the training set "
            f"({len(train_set)} images); use a smaller batch size"
        )
    executor = make_executor(config, num_classes=train_set.num_classes,
                             image_shape=train_set.image_shape)
    state, plateau = build_state(config, train_set.num_classes, train_set.image_shape,
                                 steps_per_epoch)
    config.save(workdir)
    mean, std = _normalization_stats(config.dataset, train_set)
    augment = config.augment if config.augment is not None else (
        config.dataset in AUGMENTED_BY_DEFAULT)
    augmentation = AUGMENTATIONS.get(config.dataset, DEFAULT_AUGMENTATION) if augment else None
    with Checkpointer(checkpoint_dir, max_to_keep=config.keep_checkpoints) as checkpointer:
        print(
            f"training {config.model} on {config.dataset} ({len(train_set)} train / "
            f"{len(test_set)} test images{_describe(augmentation)}): {config.epochs} "
            f"epochs x {steps_per_epoch} steps of {config.batch_size}, {config.optimizer} "
            f"lr {config.lr} ({config.schedule}), {executor.description}; workdir {workdir}",
            flush=True,
        )
        position = Position()
        if resume:
            restored = checkpointer.restore_latest(state)
            if restored is None:
                print(f"no checkpoint in {checkpoint_dir} yet: starting from scratch")
            else:
                state, metadata = restored
                if metadata.get("data_seed") != config.seed:
                    raise ValueError(
                        f"the checkpoint in {checkpoint_dir} was written with data seed "
                        f"{metadata.get('data_seed')}, the config says {config.seed}")
                position = Position(**metadata["position"])
                print(f"resuming at epoch {position.epoch + 1}, batch {position.batch} "
                      f"(step {int(state.step)})")
        metrics_io.write_metrics(workdir, position.history)
        runner = _EpochRunner(config, executor, checkpointer, _Preprocess(mean, std, augmentation),
                              train_set, test_set, steps_per_epoch, plateau, progress)
        device_state = executor.place(state)
        while position.epoch < config.epochs:
            device_state = runner.run_epoch(device_state, position)
            position = position.next_epoch()
            metrics_io.write_metrics(workdir, position.history)
            metrics_io.plot_curves(workdir, position.history)
            print(metrics_io.format_record(position.history[-1], config.epochs), flush=True)
    return dict(position.history[-1])


def build_state(config: TrainConfig, num_classes: int, image_shape, steps_per_epoch: int):
    """The initial single-device TrainState of ``config`` and its Plateau controller (or None).

    The optimizer is ``make_optimizer(config.optimizer, make_schedule(...))``
    with the schedule laid out over ``steps_per_epoch``; the state is
    initialised from ``config.seed`` on a ``(1, *image_shape)`` float32 input.
    """

    model, tx, plateau = _model_and_optimizer(
        _config_key(config, _MODEL_AND_OPTIMIZER_FIELDS), num_classes, steps_per_epoch)
    sample = jnp.zeros((1, *image_shape), jnp.float32)
    return create_train_state(model, tx, _init_key(config.seed), sample), plateau


# The fields that define the model and the optimizer (not the data or the devices).
_MODEL_AND_OPTIMIZER_FIELDS = (
    "model", "model_kwargs", "epochs", "optimizer", "lr", "momentum", "nesterov", "weight_decay",
    "schedule", "decay_epochs", "decay_factor", "warmup_epochs", "plateau_patience",
    "plateau_factor")


def _config_key(config: TrainConfig, fields) -> str:
    values = config.to_dict()
    return json.dumps({k: values[k] for k in fields}, sort_keys=True)


@functools.lru_cache(maxsize=16)
def _model_and_optimizer(key: str, num_classes: int, steps_per_epoch: int):
    # Cached so that equal configs give the *same* module and optax objects: they
    # are static parts of the TrainState, so the jitted steps compiled for one
    # run are reused by the next (a resumed run in the same process, tests).

    config = TrainConfig().replace(**json.loads(key))
    plateau = (Plateau(factor=config.plateau_factor, patience=config.plateau_patience)
               if config.schedule == "plateau" else None)
    schedule = make_schedule(
        config.schedule, base_lr=config.lr, steps_per_epoch=steps_per_epoch,
        epochs=config.epochs, decay_epochs=config.decay_epochs,
        decay_factor=config.decay_factor, warmup_epochs=config.warmup_epochs)
    tx = make_optimizer(
        config.optimizer, schedule, momentum=config.momentum,
        nesterov=config.nesterov and config.optimizer == "sgd",
        weight_decay=config.weight_decay, plateau=plateau)
    model = models.get(config.model, num_classes=num_classes, **config.model_kwargs)
    return model, tx, plateau


def load_datasets(config: TrainConfig):
    """``(train, test)`` ArrayDatasets of ``config.dataset``, cut to the configured sizes.

    Raises FileNotFoundError when ``config.data_dir`` is given but is not a
    directory (rather than silently falling back to another source).
    """

    if config.data_dir is not None and not Path(config.data_dir).is_dir():
        raise FileNotFoundError(f"data directory {config.data_dir} does not exist")
    train_set = data.load(config.dataset, "train", data_dir=config.data_dir)
    test_set = data.load(config.dataset, "test", data_dir=config.data_dir)
    if config.train_examples is not None:
        train_set = train_set.subset(slice(0, config.train_examples))
    if config.test_examples is not None:
        test_set = test_set.subset(slice(0, config.test_examples))
    return train_set, test_set


def evaluate(executor, state, dataset, batch_size: int, preprocess) -> tuple[float, float]:
    """Mean loss and accuracy of ``state`` over all of ``dataset`` (no example dropped).

    Batch means are weighted by batch size, so a final partial batch counts for
    what it holds. Returns Python floats ``(loss, accuracy)``.
    """

    loss_sum = correct_sum = 0.0
    for images, labels in data.batches(dataset, batch_size, shuffle=False):
        metrics = executor.eval_step(state, preprocess.eval(images), labels)
        loss_sum += _scalar(metrics["loss"]) * len(labels)
        correct_sum += _scalar(metrics["accuracy"]) * len(labels)
    return loss_sum / len(dataset), correct_sum / len(dataset)


def evaluate_workdir(workdir: str | Path, *, data_dir: str | None = None) -> dict:
    """Evaluate the latest checkpoint of the run in ``workdir`` on its test split (one device).

    Returns ``{"dataset", "test_loss", "test_accuracy", "test_images", "step"}``.
    Raises FileNotFoundError when ``workdir`` has no config.json or no checkpoint.
    """

    config = TrainConfig.load(workdir)
    if data_dir is not None:
        config = config.replace(data_dir=data_dir)
    config.check_names()
    checkpoint_dir = Path(workdir) / CHECKPOINT_SUBDIR
    if not checkpoint_dir.is_dir() or not any(checkpoint_dir.iterdir()):
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}: train first")
    _, test_set = load_datasets(config)
    # The optimizer-state structure does not depend on the schedule's length.
    template, _ = build_state(config, test_set.num_classes, test_set.image_shape, 1)
    with Checkpointer(checkpoint_dir, max_to_keep=config.keep_checkpoints) as checkpointer:
        restored = checkpointer.restore_latest(template)
    if restored is None:
        raise FileNotFoundError(f"no checkpoints in {checkpoint_dir}: train first")
    state, _ = restored
    mean, std = _normalization_stats(config.dataset, test_set)
    loss, accuracy = evaluate(_OneDevice(), state, test_set, config.eval_batch_size,
                              _Preprocess(mean, std, augmentation=None))
    return {"dataset": config.dataset, "test_loss": loss, "test_accuracy": accuracy,
            "test_images": len(test_set), "step": int(state.step)}


class _EpochRunner:
    """One epoch of training, evaluation and checkpoints."""

    def __init__(self, config, executor, checkpointer, preprocess, train_set, test_set,
                 steps_per_epoch, plateau, progress):
        self.config, self.executor, self.checkpointer = config, executor, checkpointer
        self.preprocess, self.train_set, self.test_set = preprocess, train_set, test_set
        self.steps_per_epoch, self.plateau, self.progress = steps_per_epoch, plateau, progress
        self.augment_key = _augment_key(config.seed)

    def run_epoch(self, state, position: Position):
        """Train the rest of ``position.epoch``, evaluate, checkpoint; updates ``position``.

        ``train_seconds`` counts batching, preprocessing and the steps, not
        checkpoint writes or evaluation: the basis of ``images_per_second``.
        """
        config, epoch = self.config, position.epoch
        epoch_start = time.perf_counter() - position.epoch_seconds
        epoch_key = jax.random.fold_in(self.augment_key, epoch)
        batch_iter = data.batches(self.train_set, config.batch_size, seed=config.seed,
                                  epoch=epoch, shuffle=True, drop_remainder=True,
                                  start_batch=position.batch)
        with tqdm(total=self.steps_per_epoch, initial=position.batch, unit="step",
                  desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                  disable=not self.progress, dynamic_ncols=True) as bar:
            step_start = time.perf_counter()
            for images, labels in batch_iter:
                step = epoch * self.steps_per_epoch + position.batch + 1
                batch_key = jax.random.fold_in(epoch_key, position.batch)
                state, step_metrics = self.executor.train_step(
                    state, self.preprocess.train(images, batch_key), labels)
                loss = _scalar(step_metrics["loss"])
                if not math.isfinite(loss):
                    self._diverged(step, position, f"the training loss is {loss}")
                position.batch += 1
                position.loss_sum += loss * len(labels)
                position.correct_sum += _scalar(step_metrics["accuracy"]) * len(labels)
                position.images += len(labels)
                position.train_seconds += time.perf_counter() - step_start
                bar.update(1)
                if position.batch % 10 == 0 or position.batch == self.steps_per_epoch:
                    bar.set_postfix(_postfix(position), refresh=False)
                every = config.checkpoint_every_steps
                if every and step % every == 0 and position.batch < self.steps_per_epoch:
                    position.epoch_seconds = time.perf_counter() - epoch_start
                    self._save(state, position, step)
                step_start = time.perf_counter()

        test_loss, test_accuracy = evaluate(self.executor, state, self.test_set,
                                            config.eval_batch_size, self.preprocess)
        if self.plateau is not None:
            host = self.plateau.observe(self.executor.to_host(state), test_accuracy)
            state = self.executor.place(host)
        position.epoch_seconds = time.perf_counter() - epoch_start
        position.history.append(metrics_io.check_record({
            "epoch": epoch + 1,
            "train_loss": position.loss_sum / position.images,
            "train_accuracy": position.correct_sum / position.images,
            "test_loss": test_loss,
            "test_accuracy": test_accuracy,
            "epoch_seconds": position.epoch_seconds,
            "images_per_second": position.images / max(position.train_seconds, 1e-9),
        }))
        self._save(state, position.next_epoch(), (epoch + 1) * self.steps_per_epoch)
        return state

    def _save(self, state, position: Position, step: int) -> None:
        host = self.executor.to_host(state)
        # The loss of step s is computed before update s is applied, so a finite
        # loss does not prove the updated parameters finite: check before saving.
        if not _all_finite(host.params):
            self._diverged(step, position, "the updated parameters are not finite")
        self.checkpointer.save(position.epoch, host, {
            "position": dataclasses.asdict(position), "data_seed": self.config.seed})

    def _diverged(self, step: int, position: Position, what: str):
        saved = self.checkpointer.steps()
        kept = (f"the last good checkpoint (step {saved[-1]}) is kept in "
                f"{self.checkpointer.directory}" if saved else "no checkpoint was written yet")
        raise TrainingDivergedError(
            f"training diverged at step {step} (epoch {position.epoch + 1}, batch "
            f"{position.batch + 1}): {what}; {kept}; try a smaller learning rate"
        )


def _postfix(position: Position) -> dict:
    return {
        "loss": f"{position.loss_sum / position.images:.4f}",
        "acc": f"{100 * position.correct_sum / position.images:.2f}%",
        "img/s": f"{position.images / max(position.train_seconds, 1e-9):.0f}",
    }


# ------------------------------------------------------------------ devices
def make_executor(config: TrainConfig, *, num_classes: int, image_shape=None):
    """How steps run: one device (jit), or ``config.devices`` devices with pmap or a mesh.

    Every executor has ``place(state)`` (single-device state -> its device
    layout), ``to_host(state)`` (back to one device, for saving and the
    plateau), ``train_step`` / ``eval_step`` taking global NHWC batches, and a
    ``description``. ``config.api == "nnx"`` gives :class:`jaxcnn.nnx.executor.NNXExecutor`
    (the NNX model built for ``image_shape``, the dataset's ``(H, W, C)``).
    """
    if config.api == "nnx":
        from jaxcnn.nnx.executor import NNXExecutor  # the NNX front end sits on top of train

        if image_shape is None:
            raise ValueError("api 'nnx' builds the model for the dataset's image_shape; pass it")
        _check_device_count(config)
        return NNXExecutor(config, num_classes, image_shape)
    if config.devices == 1:
        return _OneDevice()
    _check_device_count(config)
    if config.parallel == "pmap":
        return _Pmap(config, num_classes)
    return _Sharded(config.devices)


def _check_device_count(config: TrainConfig) -> None:
    available = jax.device_count()
    if config.devices > available:
        raise ValueError(
            f"devices={config.devices} but JAX sees {available} device(s); on a CPU set "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={config.devices} (the jaxcnn "
            "command does that itself) or use fewer devices"
        )


class _OneDevice:
    description = "1 device (jax.jit)"

    def __init__(self):
        # Looked up at construction (not import) time, so a patched step is seen.
        self.train_step, self.eval_step = steps.train_step, steps.eval_step

    def place(self, state):
        return state

    def to_host(self, state):
        return state


class _Pmap:
    """``jax.pmap`` over the first N devices, with BatchNorm synchronised over the batch axis.

    Training uses the model rebuilt with ``bn_axis_name="batch"`` (so batch
    statistics are global); single-device work uses the plain model (the
    variables are the same).
    """

    def __init__(self, config: TrainConfig, num_classes: int):
        self.devices, self.model_name = config.devices, config.model
        self.description = f"{self.devices} devices (jax.pmap)"
        model = models.get(config.model, num_classes=num_classes, **config.model_kwargs)
        self.plain_apply = model.apply
        self.synced_apply = (model.clone(bn_axis_name=parallel.BATCH_AXIS).apply
                             if hasattr(model, "bn_axis_name") else None)

    def place(self, state):
        if self.synced_apply is None and state.batch_stats:
            raise ValueError(
                f"model {self.model_name!r} has batch norm but no bn_axis_name option, so under "
                "pmap each device would normalise with its own statistics; use parallel "
                '"sharded" (--parallel sharded)'
            )
        apply_fn = self.synced_apply or self.plain_apply
        return parallel.replicate(state.replace(apply_fn=apply_fn), self.devices)

    def to_host(self, state):
        return parallel.unreplicate(state).replace(apply_fn=self.plain_apply)

    def train_step(self, state, images, labels):
        return parallel.pmap_train_step(state, parallel.shard(images, self.devices),
                                        parallel.shard(labels, self.devices))

    def eval_step(self, state, images, labels):
        if len(labels) % self.devices:  # the last partial batch: one device
            return steps.eval_step(self.to_host(state), images, labels)
        return parallel.pmap_eval_step(state, parallel.shard(images, self.devices),
                                       parallel.shard(labels, self.devices))


class _Sharded:
    """``jax.jit`` over a 1-D device mesh: replicated state, batch split along its first axis."""

    def __init__(self, devices: int):
        self.mesh = sharded.make_mesh(devices)
        self.description = f"{devices} devices (jax.jit over a sharded mesh)"

    def place(self, state):
        return sharded.replicate_state(self.mesh, state)

    def to_host(self, state):
        return jax.device_put(state, jax.devices()[0])

    def train_step(self, state, images, labels):
        return sharded.sharded_train_step(state, sharded.shard_batch(self.mesh, images),
                                          sharded.shard_batch(self.mesh, labels))

    def eval_step(self, state, images, labels):
        if len(labels) % self.mesh.devices.size:  # the last partial batch: one device
            return steps.eval_step(self.to_host(state), images, labels)
        return sharded.sharded_eval_step(state, sharded.shard_batch(self.mesh, images),
                                         sharded.shard_batch(self.mesh, labels))


# ------------------------------------------------------------------ helpers
class _Preprocess:
    """uint8 batches -> normalized float32 (jitted); ``train`` also augments.

    ``augmentation`` is None or ``(padding, flip)`` (see ``AUGMENTATIONS``).
    Augmentation runs on the uint8 pixels, so the padding is black (the
    background of MNIST; torchvision's CIFAR pipeline pads the same way).
    """

    def __init__(self, mean, std, augmentation: tuple[int, bool] | None):
        self.eval, self.train = _preprocess_functions(
            tuple(np.asarray(mean, np.float32).tolist()),
            tuple(np.asarray(std, np.float32).tolist()), augmentation)


@functools.lru_cache(maxsize=16)
def _preprocess_functions(mean: tuple, std: tuple, augmentation):
    # NumPy constants: normalize() validates std on concrete values.
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def train(images, key):
        if augmentation is not None:
            padding, flip = augmentation
            images = data.random_crop_flip(key, images, padding=padding)
            if not flip:  # mirror the mirrored ones back: a pure random shift
                _, flipped = data.crop_flip_params(key, images.shape[0], padding=padding)
                images = jnp.where(flipped[:, None, None, None], images[:, :, ::-1], images)
        return data.normalize(images, mean, std)

    return jax.jit(lambda images: data.normalize(images, mean, std)), jax.jit(train)


def _describe(augmentation) -> str:
    if augmentation is None:
        return ""
    padding, flip = augmentation
    return f", random {padding}-pixel shifts{' and flips' if flip else ''}"


def _init_key(seed: int):
    return jax.random.fold_in(jax.random.PRNGKey(seed), 0)


def _augment_key(seed: int):
    return jax.random.fold_in(jax.random.PRNGKey(seed), 1)


def _check_workdir(config: TrainConfig, workdir: Path, checkpoint_dir: Path, resume: bool):
    if workdir.exists() and not workdir.is_dir():
        raise ValueError(f"workdir {workdir} exists and is not a directory")
    has_checkpoints = checkpoint_dir.is_dir() and any(checkpoint_dir.iterdir())
    if not resume:
        if has_checkpoints:
            raise ValueError(
                f"{workdir} already holds checkpoints of a run; resume it (--resume) "
                "or choose another workdir"
            )
        return
    if not (workdir / "config.json").is_file():
        return
    saved, given = TrainConfig.load(workdir).to_dict(), config.to_dict()
    changed = [k for k in given if k not in RESUME_CHANGEABLE and saved[k] != given[k]]
    if changed:
        details = "; ".join(f"{k} (saved {saved[k]!r}, given {given[k]!r})" for k in changed)
        raise ValueError(f"cannot change {details} when resuming {workdir}")


def _normalization_stats(dataset_name: str, train_set):
    """Per-channel (mean, std) in [0, 1] pixel units: published constants, else measured."""

    try:
        return data.stats_for(dataset_name)
    except ValueError:  # no constants for this dataset: measure the training split
        return data.channel_stats(train_set)


def _scalar(value) -> float:
    # pmap returns one copy per device; the copies are equal after pmean.
    return float(np.asarray(value).reshape(-1)[0])


@jax.jit
def _tree_all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _all_finite(tree) -> bool:
    return bool(_tree_all_finite(tree))
