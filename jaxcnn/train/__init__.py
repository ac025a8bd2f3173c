"""jaxcnn.train: train state, jit / pmap / sharded steps, optimizers, checkpoints.

Public API (see each module's docstrings):
    state.py       TrainState, create_train_state
    steps.py       train_step, eval_step (jax.jit; train_step donates the state)
    parallel.py    BATCH_AXIS, replicate, unreplicate, shard, pmap_train_step, pmap_eval_step
    sharded.py     make_mesh, shard_batch, replicate_state, sharded_train_step, sharded_eval_step
    optim.py       make_optimizer, make_schedule, Plateau, learning_rate_scale
    checkpoint.py  Checkpointer, CheckpointWarning
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
from jaxcnn.train.steps import eval_step, train_step
from jaxcnn.train.parallel import (
    BATCH_AXIS,
    pmap_eval_step,
    pmap_train_step,
    replicate,
    shard,
    unreplicate,
)
from jaxcnn.train.sharded import (
    make_mesh,
    replicate_state,
    shard_batch,
    sharded_eval_step,
    sharded_train_step,
)
from jaxcnn.train.checkpoint import CheckpointWarning, Checkpointer
from jaxcnn.train.batch_stats import batch_moments, recompute_batch_stats
