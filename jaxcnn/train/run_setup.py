"""What a run is made of, built once from its config: data, model, optimizer, state, executor, input pipeline.

    run = setup_run(config)            # loads the data, builds the model once and hands it on
    run.state, run.plateau             # the initial single-device TrainState and its Plateau (or None)
    run.executor                       # how steps run on the devices (jaxcnn.train.executors)
    run.preprocess                     # uint8 -> float32 (jaxcnn.data.Preprocess), augmenting in train

:func:`build_state` alone gives the state of a config (a template to restore
a checkpoint into).
"""
from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp

from jaxcnn import data, models
from jaxcnn.train.config import TrainConfig
from jaxcnn.train.executors import Executor, make_executor
from jaxcnn.train.optim import Plateau, make_optimizer, make_schedule
from jaxcnn.functional.regularization import weight_mask
from jaxcnn.train.input_check import init_on_dataset_images
from jaxcnn.train.state import TrainState, create_train_state

__all__ = ["RunSetup", "setup_run", "build_state", "load_datasets"]


@dataclasses.dataclass
class RunSetup:
    """Everything :func:`jaxcnn.train.loop.train_and_evaluate` needs, built from one config.

    ``steps_per_epoch`` counts full training batches (the last partial one is
    dropped); ``augmentation`` is None or ``(padding, flip)``.
    """

    config: TrainConfig
    train_set: data.ArrayDataset
    test_set: data.ArrayDataset
    steps_per_epoch: int
    model: object
    state: TrainState
    plateau: Plateau | None
    executor: Executor
    augmentation: tuple[int, bool] | None
    preprocess: data.Preprocess


def setup_run(config: TrainConfig) -> RunSetup:
    """Load ``config``'s data and build its model (once), optimizer, state, executor and pipeline.

    Raises ValueError for a batch larger than the training set or too few
    devices, FileNotFoundError for a missing data directory.
    """
    config = config.resolved()  # devices "auto"/"all" -> a number
    train_set, test_set = load_datasets(config)
    steps_per_epoch = data.num_batches(len(train_set), config.batch_size, drop_remainder=True)
    if steps_per_epoch == 0:
        raise ValueError(
            f"batch_size ({config.batch_size}) is larger than the training set "
            f"({len(train_set)} images); use a smaller batch size"
        )
    model, tx, plateau = _model_and_optimizer(
        config.model_and_optimizer(), train_set.num_classes, steps_per_epoch)
    executor = make_executor(config, model, num_classes=train_set.num_classes,
                             image_shape=train_set.image_shape)
    state = _initial_state(model, tx, config, train_set.image_shape)
    augmentation = data.augmentation_for(config.dataset, config.augment)
    mean, std = data.normalization_stats(config.dataset, train_set)
    return RunSetup(config, train_set, test_set, steps_per_epoch, model, state, plateau,
                    executor, augmentation, data.Preprocess(mean, std, augmentation))


def build_state(config: TrainConfig, num_classes: int, image_shape, steps_per_epoch: int):
    """The initial single-device TrainState of ``config`` and its Plateau controller (or None).

    The model is ``models.get(config.model, num_classes=num_classes,
    conv_impl=config.conv_impl, **config.model_kwargs)``; the optimizer is
    ``make_optimizer(config.optimizer, make_schedule(...))`` with the schedule
    laid out over ``steps_per_epoch``; the state is initialised from
    ``config.seed`` on a ``(1, *image_shape)`` float32 input.
    """
    model, tx, plateau = _model_and_optimizer(
        config.model_and_optimizer(), num_classes, steps_per_epoch)
    return _initial_state(model, tx, config, image_shape), plateau


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


def _initial_state(model, tx, config: TrainConfig, image_shape) -> TrainState:
    sample = jnp.zeros((1, *image_shape), jnp.float32)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 0)
    # A model/input mismatch (e.g. AlexNet on 8x8 digits) is re-raised naming the
    # model, the input size it needs and the dataset's.
    return init_on_dataset_images(lambda: create_train_state(model, tx, key, sample),
                                  config.model, config.dataset, image_shape)


@functools.lru_cache(maxsize=16)
def _model_and_optimizer(config: TrainConfig, num_classes: int, steps_per_epoch: int):
    # Cached on config.model_and_optimizer() so that equal settings give the *same*
    # module and optax objects: they are static parts of the TrainState, so the jitted
    # steps compiled for one run are reused by the next (a resumed run in the same
    # process, tests).
    plateau = (Plateau(factor=config.plateau_factor, patience=config.plateau_patience)
               if config.schedule == "plateau" else None)
    schedule = make_schedule(
        config.schedule, base_lr=config.lr, steps_per_epoch=steps_per_epoch,
        epochs=config.epochs, decay_epochs=config.decay_epochs,
        decay_factor=config.decay_factor, warmup_epochs=config.warmup_epochs)
    tx = make_optimizer(
        config.optimizer, schedule, momentum=config.momentum,
        nesterov=config.nesterov and config.optimizer == "sgd",
        weight_decay=config.weight_decay, plateau=plateau,
        weight_decay_mask=weight_mask if config.weight_decay_on == "weights" else None)
    model = models.get(config.model, num_classes=num_classes, conv_impl=config.conv_impl,
                       dtype=config.dtype,
                       **config.model_kwargs)
    return model, tx, plateau
