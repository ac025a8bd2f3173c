"""jaxcnn.train: train state, jit / pmap / sharded steps, optimizers, checkpoints.

Public API (see each module's docstrings):
    config.py      TrainConfig (every knob of a run; its fields make the CLI's flags)
    loop.py        train_and_evaluate, evaluate_workdir: the epoch loop and exact resume
    run_setup.py   setup_run, build_state, load_datasets: a run's parts, the model built once
    executors.py   Executor, OneDevice, Pmap, Sharded, make_executor: how steps use the devices
    state.py       TrainState, create_train_state
    steps.py       train_step, eval_step (jax.jit; train_step donates the state),
                   check_labels, LabelOutOfRangeError (the jit-safe label-range check)
    parallel.py    BATCH_AXIS, replicate, unreplicate, shard, pmap_train_step, pmap_eval_step,
                   synchronize_batch_norm
    sharded.py     make_mesh, make_global_mesh, shard_batch, replicate_state, partitionable,
                   sharded_train_step, sharded_eval_step
    distributed.py initialize, detected_cluster, is_main_process, local_rows: several processes
    launcher.py    launch_local, free_port: `jaxcnn launch` (local processes on loopback)
    optim.py       make_optimizer, make_schedule, Plateau, learning_rate_scale
    checkpoint.py  Checkpointer, CheckpointWarning, CheckpointWriteError
    batch_stats.py recompute_batch_stats, batch_moments (population batch-norm statistics)
"""
from jaxcnn.train.optim import (
    OPTIMIZERS,
    SCHEDULES,
    Plateau,
    learning_rate_scale,
    make_optimizer,
    make_schedule,
)
from jaxcnn.train.state import TrainState, create_train_state
from jaxcnn.train.steps import LabelOutOfRangeError, check_labels, eval_step, train_step
from jaxcnn.train.parallel import (
    BATCH_AXIS,
    pmap_eval_step,
    pmap_train_step,
    replicate,
    shard,
    synchronize_batch_norm,
    unreplicate,
)
from jaxcnn.train.sharded import (
    make_mesh,
    partitionable,
    replicate_state,
    shard_batch,
    sharded_eval_step,
    sharded_train_step,
)
from jaxcnn.train.checkpoint import CheckpointWarning, Checkpointer, CheckpointWriteError
from jaxcnn.train.batch_stats import batch_moments, recompute_batch_stats
