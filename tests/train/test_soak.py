"""Load: many short trainings and many recompiles in one process keep memory bounded.

Each iteration runs a whole ``train_and_evaluate`` (LeNet-5 on 128 digits: data,
steps, evaluation, Orbax checkpoints, metrics file and curves.png) into a fresh
workdir, then jit-compiles a fresh function on an input shape it has not seen
in the last few iterations (a new executable each time; the old ones become
garbage). The resident set size is read after each iteration. After warm-up
(first compiles, allocator pools, caches filling) it must level off: the test
fails when the last third of the iterations sits clearly above the middle
third, i.e. when memory grows with the number of runs.
"""
from __future__ import annotations

import gc
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

ITERATIONS = 24
# Growth allowed between the middle and the last third (means over 8 iterations each).
# A leak of one train state per run (LeNet-5 + Adam: ~15 MB) would exceed it.
ALLOWED_GROWTH_MB = 24.0


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
def test_repeated_trainings_and_recompiles_keep_memory_bounded(tmp_path, capsys):
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.loop import train_and_evaluate

    config = TrainConfig(dataset="digits", epochs=1, batch_size=64, train_examples=128,
                         test_examples=64, eval_batch_size=64, checkpoint_every_steps=1)
    rss = []
    for iteration in range(ITERATIONS):
        workdir = tmp_path / f"run{iteration}"
        record = train_and_evaluate(config, workdir, progress=False)
        assert np.isfinite(record["test_loss"])
        shutil.rmtree(workdir)

        size = 5 + iteration % 7  # a new shape and a new function: a fresh compile
        step = jax.jit(lambda x, scale=float(iteration): jnp.tanh(x * scale).sum(axis=(1, 2)))
        value = step(jnp.ones((4, size, size, 3)))
        assert value.shape == (4, 3)
        del step, value
        gc.collect()
        rss.append(_rss_mb())

    third = ITERATIONS // 3
    middle, last = np.mean(rss[third:2 * third]), np.mean(rss[2 * third:])
    with capsys.disabled():
        print(f"\nsoak: RSS (MB) over {ITERATIONS} trainings + recompiles: "
              + " ".join(f"{v:.0f}" for v in rss)
              + f"; middle third {middle:.0f}, last third {last:.0f} (+{last - middle:.1f} MB)")
    assert last - middle < ALLOWED_GROWTH_MB, rss
