"""jaxcnn.train: train state, jit / pmap / sharded steps, optimizers, checkpoints.

Public API (see each module's docstrings):
    state.py       TrainState, create_train_state
    steps.py       train_step, eval_step (jax.jit; train_step donates the state)
    optim.py       make_optimizer, make_schedule, Plateau, learning_rate_scale
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
