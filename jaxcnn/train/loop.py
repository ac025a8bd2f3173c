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

Several processes (:mod:`jaxcnn.train.distributed`): every process runs this
same loop on the same data order and reads only its rows of each batch; the
metrics are replicated, so every process holds the same ``Position``. Every
process takes part in checkpoints; process 0 alone prints, shows the progress
bar and writes ``config.json``, ``metrics.jsonl`` and ``curves.png``.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from tqdm.auto import tqdm

from jaxcnn import data
from jaxcnn.native.malloc import keep_freed_memory
from jaxcnn.train import distributed, steps
from jaxcnn.train import metrics as metrics_io
from jaxcnn.train.checkpoint import Checkpointer
from jaxcnn.train.config import TrainConfig
from jaxcnn.train.evaluation import (  # noqa: F401  (evaluate, evaluate_workdir: loop's API)
    CHECKPOINT_SUBDIR,
    evaluate,
    evaluate_dataset,
    evaluate_workdir,
    recompute_after_training,
)
from jaxcnn.train.prefetch import prefetch_to_device
from jaxcnn.train.run_setup import build_state, setup_run  # noqa: F401  (build_state: loop's API)
from jaxcnn.train.step_metrics import StepMetricsBuffer

# The host reads the steps' metrics every this many steps (and at checkpoints and
# epoch ends); in between, steps are dispatched without waiting for the device.
READ_EVERY_STEPS = 10
# Batches put on the device ahead of the step that uses them.
PREFETCH_BATCHES = 2


class TrainingDivergedError(RuntimeError):
    """The training loss (or the parameters) became NaN or infinite; the message names the step."""


@dataclasses.dataclass
class Position:
    """Where a run is, and the running sums of the epoch in progress (checkpoint metadata).

    ``epoch`` is the 0-based index of the epoch in progress and ``batch`` the
    next batch to train in it (0 at an epoch boundary). ``history`` holds the
    metrics records of the finished epochs, ``step_evals`` the ``--eval-every``
    records so far, and ``elapsed_seconds`` the run's wall time at the last
    checkpoint or evaluation.
    """

    epoch: int = 0
    batch: int = 0
    loss_sum: float = 0.0
    correct_sum: float = 0.0
    images: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0
    history: list = dataclasses.field(default_factory=list)
    elapsed_seconds: float = 0.0
    step_evals: list = dataclasses.field(default_factory=list)

    def next_epoch(self) -> Position:
        return Position(epoch=self.epoch + 1, history=list(self.history),
                        elapsed_seconds=self.elapsed_seconds, step_evals=list(self.step_evals))


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
        the fields in ``config.resume_changeable``. Without ``resume`` a workdir that
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

    Applies :func:`jaxcnn.native.malloc.keep_freed_memory` first (the run owns
    the process).
    """
    started = time.perf_counter()
    keep_freed_memory()  # the run owns the process: keep XLA's per-step buffers mapped
    config.check_names()
    workdir = Path(workdir)
    checkpoint_dir = workdir / CHECKPOINT_SUBDIR
    _check_workdir(config, workdir, checkpoint_dir, resume)
    run = setup_run(config)
    main = distributed.is_main_process()
    say = print if main else _silent
    if main:
        config.save(workdir)
    with Checkpointer(checkpoint_dir, max_to_keep=config.keep_checkpoints) as checkpointer:
        say(
            f"training {config.model} on {config.dataset} ({len(run.train_set)} train / "
            f"{len(run.test_set)} test images{data.describe_augmentation(run.augmentation)}): "
            f"{_count(config.epochs, 'epoch')} x {_count(run.steps_per_epoch, 'step')} of "
            f"{config.batch_size}, "
            f"{config.optimizer} lr {config.lr} ({config.schedule}), "
            f"{run.executor.description}{_batch_split(config.batch_size, run.executor)}; "
            f"workdir {workdir}",
            flush=True,
        )
        state, position = run.state, Position()
        if resume:
            restored = checkpointer.restore_latest(state)
            if restored is None:
                say(f"no checkpoint in {checkpoint_dir} yet: starting from scratch")
            else:
                state, metadata = restored
                if metadata.get("data_seed") != config.seed:
                    raise ValueError(
                        f"the checkpoint in {checkpoint_dir} was written with data seed "
                        f"{metadata.get('data_seed')}, the config says {config.seed}")
                position = Position(**metadata["position"])
                started -= position.elapsed_seconds  # the wall time of the run so far
                say(f"resuming at epoch {position.epoch + 1}, batch {position.batch} "
                    f"(step {int(state.step)})")
        if main:
            metrics_io.write_metrics(workdir, position.history)
            if config.eval_every_steps:
                metrics_io.write_step_evals(workdir, position.step_evals)
        runner = _EpochRunner(run, checkpointer, progress and main, workdir if main else None,
                              started)
        device_state = run.executor.place(state)
        while position.epoch < config.epochs:
            device_state = runner.run_epoch(device_state, position)
            position = position.next_epoch()
            if main:
                metrics_io.write_metrics(workdir, position.history)
                metrics_io.plot_curves(workdir, position.history)
            say(metrics_io.format_record(position.history[-1], config.epochs), flush=True)
        final = dict(position.history[-1])
        if config.recompute_batch_stats and state.batch_stats:
            final.update(_recompute_batch_stats(config, run.executor, device_state, runner,
                                                position, workdir))
    return final


def _recompute_batch_stats(config, executor, device_state, runner, position, workdir) -> dict:
    """``--recompute-batch-stats``: population statistics, before/after, into the final checkpoint."""
    last = position.history[-1]
    before = {"loss": last["test_loss"], "accuracy": last["test_accuracy"]}
    host, report = recompute_after_training(config, executor.to_host(device_state), runner.train_set,
                                            runner.test_set, runner.preprocess.eval, before, workdir)
    runner.checkpointer.save(position.epoch, executor.checkpoint_state(executor.place(host)), {
        "position": dataclasses.asdict(position), "data_seed": config.seed})
    return {"recomputed_test_loss": report["after"]["loss"],
            "recomputed_test_accuracy": report["after"]["accuracy"]}


class _EpochRunner:
    """One epoch of training, evaluation and checkpoints."""

    def __init__(self, run, checkpointer, progress: bool, log_dir: Path | None, started: float):
        """``log_dir``: where ``step_evals.jsonl`` goes (None in processes that do not log);
        ``started``: ``time.perf_counter()`` at the run's start."""
        self.log_dir, self.started = log_dir, started
        self.config, self.executor, self.checkpointer = run.config, run.executor, checkpointer
        self.preprocess, self.train_set, self.test_set = run.preprocess, run.train_set, run.test_set
        self.steps_per_epoch, self.plateau, self.progress = run.steps_per_epoch, run.plateau, progress
        self.augment_key = _augment_key(run.config.seed)

    def run_epoch(self, state, position: Position):
        """Train the rest of ``position.epoch``, evaluate, checkpoint; updates ``position``.

        ``train_seconds`` counts batching, preprocessing and the steps, not
        checkpoint writes or evaluation: the basis of ``images_per_second``.
        """
        config, epoch = self.config, position.epoch
        epoch_start = time.perf_counter() - position.epoch_seconds
        epoch_key = jax.random.fold_in(self.augment_key, epoch)
        # A process of a multi-process run reads only its rows of every batch.
        local_rows = getattr(self.executor, "local_rows", None)
        batch_iter = data.batches(self.train_set, config.batch_size, seed=config.seed,
                                  epoch=epoch, shuffle=True, drop_remainder=True,
                                  start_batch=position.batch,
                                  rows=None if local_rows is None else local_rows(config.batch_size))
        # The next batches go to the device (in the step's layout) while this step runs.
        batch_iter = prefetch_to_device(batch_iter, depth=PREFETCH_BATCHES,
                                        put=getattr(self.executor, "put_batch", None))
        # Step metrics stay on the device; the host reads them every READ_EVERY_STEPS
        # steps (the progress bar), before a checkpoint and at the epoch's end.
        buffer = StepMetricsBuffer()
        with tqdm(total=self.steps_per_epoch, initial=position.batch, unit="step",
                  desc=f"epoch {epoch + 1}/{config.epochs}", leave=False,
                  disable=not self.progress, dynamic_ncols=True) as bar:
            segment_start = time.perf_counter()
            for images, labels in batch_iter:
                step = epoch * self.steps_per_epoch + position.batch + 1
                batch_key = jax.random.fold_in(epoch_key, position.batch)
                state, step_metrics = self.executor.train_step(
                    state, self.preprocess.train(images, batch_key), labels)
                buffer.add(step, step_metrics, len(labels))
                position.batch += 1
                bar.update(1)
                inside = position.batch < self.steps_per_epoch
                save_now = _due(step, config.checkpoint_every_steps) and inside
                evaluate_now = _due(step, config.eval_every_steps) and inside
                if (save_now or evaluate_now or position.batch % READ_EVERY_STEPS == 0
                        or position.batch == self.steps_per_epoch):
                    self._read(buffer, position)
                    position.train_seconds += time.perf_counter() - segment_start
                    bar.set_postfix(_postfix(position), refresh=False)
                    if evaluate_now:  # before the save, so the checkpoint holds its record
                        self._record_step_eval(state, position, step)
                    if save_now:
                        position.epoch_seconds = time.perf_counter() - epoch_start
                        self._save(state, position, step)
                    segment_start = time.perf_counter()
            self._read(buffer, position)  # a run whose batches ended early

        test = evaluate_dataset(self.executor.eval_step, state, self.test_set,
                                config.eval_batch_size, self.preprocess.eval)
        test_loss, test_accuracy = test["loss"], test["accuracy"]
        if config.eval_every_steps:
            self._record_step_eval(state, position, (epoch + 1) * self.steps_per_epoch, test)
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
            **({"test_top5_accuracy": test["top5_accuracy"]} if "top5_accuracy" in test else {}),
        }))
        position.elapsed_seconds = time.perf_counter() - self.started
        self._save(state, position.next_epoch(), (epoch + 1) * self.steps_per_epoch)
        return state

    def _read(self, buffer: StepMetricsBuffer, position: Position) -> None:
        """Read the buffered steps' metrics into ``position``; stop on a bad label or divergence.

        The steps are checked in order, so the error names the first bad step,
        and it is raised before any checkpoint holds the state that followed.
        """
        flushed = buffer.flush()
        bad_label = flushed.first_label_error
        if bad_label is not None:
            raise steps.LabelOutOfRangeError(steps.label_error_message(
                bad_label[0], bad_label[1], self.train_set.num_classes))
        non_finite = flushed.first_non_finite
        if non_finite is not None:
            step, loss = non_finite
            at_step = dataclasses.replace(
                position, batch=step - position.epoch * self.steps_per_epoch - 1)
            self._diverged(step, at_step, f"the training loss is {loss}")
        position.loss_sum += flushed.loss_sum
        position.correct_sum += flushed.correct_sum
        position.images += flushed.images

    def _record_step_eval(self, state, position: Position, step: int, test: dict | None = None):
        """Evaluate (unless ``test`` is given) and append a ``step_evals.jsonl`` record."""
        if test is None:
            test = evaluate_dataset(self.executor.eval_step, state, self.test_set,
                                    self.config.eval_batch_size, self.preprocess.eval)
        position.elapsed_seconds = time.perf_counter() - self.started
        position.step_evals.append({
            "step": step,
            "epoch": position.epoch + position.batch / self.steps_per_epoch,
            "train_loss": position.loss_sum / position.images,
            "train_accuracy": position.correct_sum / position.images,
            "test_loss": test["loss"],
            "test_accuracy": test["accuracy"],
            "elapsed_seconds": position.elapsed_seconds,
        })
        if self.log_dir is not None:
            metrics_io.write_step_evals(self.log_dir, position.step_evals)

    def _save(self, state, position: Position, step: int) -> None:
        position.elapsed_seconds = time.perf_counter() - self.started
        saved = self.executor.checkpoint_state(state)
        # The loss of step s is computed before update s is applied, so a finite
        # loss does not prove the updated parameters finite: check before saving.
        if not _all_finite(saved.params):
            self._diverged(step, position, "the updated parameters are not finite")
        self.checkpointer.save(position.epoch, saved, {
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


# ------------------------------------------------------------------ helpers
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
    changed = [k for k in given
               if k not in config.resume_changeable and saved[k] != given[k]]
    if changed:
        details = "; ".join(f"{k} (saved {saved[k]!r}, given {given[k]!r})" for k in changed)
        raise ValueError(f"cannot change {details} when resuming {workdir}")


@jax.jit
def _tree_all_finite(tree):
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _all_finite(tree) -> bool:
    return bool(_tree_all_finite(tree))


def _batch_split(batch_size: int, executor) -> str:
    devices = getattr(executor, "num_devices", 1)
    if devices == 1:
        return ""
    return f", each global batch of {batch_size} split {devices} x {batch_size // devices}"


def _due(step: int, every: int) -> bool:
    """Whether something done every ``every`` steps (0: never) is due after ``step``."""
    return bool(every) and step % every == 0


def _silent(*args, **kwargs) -> None:
    """``print`` in the processes other than process 0 of a multi-process run."""


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
