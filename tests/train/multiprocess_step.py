"""One ResNet-20 update on a fixed global batch, run as one process of a run (or alone).

    python tests/train/multiprocess_step.py OUT.npz DEVICES [COORDINATOR NUM_PROCESSES PROCESS_ID]

Each process puts only its rows of the batch on its devices (the executor's
``local_rows`` / ``put_batch``, as the training loop does); process 0 writes
the parameters before and after the step, and a checksum of the batch's
random shifts (augmentation on the assembled global batch), to ``OUT.npz``. Used by
tests/train/test_distributed.py to compare 2 processes x 2 devices with
1 process x 4 devices and with 1 device.
"""
import os
import sys

out, devices = sys.argv[1], int(sys.argv[2])
os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"

from jaxcnn.train import distributed  # noqa: E402  (XLA_FLAGS first)

if len(sys.argv) > 3:
    distributed.initialize(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]),
                           heartbeat_timeout_seconds=30, initialization_timeout_seconds=120)

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jaxcnn import data, models  # noqa: E402
from jaxcnn.train.config import TrainConfig  # noqa: E402
from jaxcnn.train.executors import make_executor  # noqa: E402
from jaxcnn.train.run_setup import build_state  # noqa: E402

BATCH = 16
config = TrainConfig(model="resnet20", dataset="digits", optimizer="sgd", lr=0.1, momentum=0.9,
                     batch_size=BATCH, eval_batch_size=BATCH, devices=devices,
                     parallel="sharded")
state, _ = build_state(config, 10, (8, 8, 1), steps_per_epoch=10)
executor = make_executor(config, models.get("resnet20", num_classes=10))
rng = np.random.default_rng(0)
images = rng.normal(size=(BATCH, 8, 8, 1)).astype(np.float32)
labels = rng.integers(0, 10, size=BATCH).astype(np.int32)
rows = getattr(executor, "local_rows", lambda size: slice(0, size))(BATCH)
put = getattr(executor, "put_batch", None)
batch = (images[rows], labels[rows]) if put is None else put((images[rows], labels[rows]))
# Augmentation on the assembled global batch (as the loop runs it): a checksum of
# the shifted images, which must not depend on how the batch is spread.
pixels = rng.integers(0, 256, size=(BATCH, 8, 8, 1)).astype(np.uint8)
preprocess = data.Preprocess((0.5,), (0.25,), augmentation=(2, False))
pixels = pixels[rows] if put is None else put(pixels[rows])
augmented = preprocess.train(pixels, jax.random.PRNGKey(7))
weights = (np.arange(augmented.size) % 7).reshape(augmented.shape).astype(np.float32)
checksum = jax.jit(lambda a, w: (a * w).sum())(augmented, weights)
before = jax.device_get(state.params)
new_state, metrics = executor.train_step(executor.place(state), *batch)
after = jax.device_get(executor.to_host(new_state).params)
if distributed.is_main_process():
    flat_before = np.concatenate([np.ravel(x) for x in jax.tree.leaves(before)])
    flat_after = np.concatenate([np.ravel(x) for x in jax.tree.leaves(after)])
    np.savez(out, before=flat_before, after=flat_after, loss=float(metrics["loss"]),
             processes=jax.process_count(), devices=jax.device_count(),
             augmented_checksum=float(checksum))
