"""The training loop's images/s next to the bare `train.train_step`'s, measured in one process.

    python experiments/loop_overhead.py [--model lenet5] [--rounds 3] [--train-examples 12800]

Each round runs, back to back on the same machine:
  - step:  `train.train_step` alone, the state built as README shows
    (`models.get`, `make_optimizer("adam", ...)`, `create_train_state`), on one
    batch already on the device: no input pipeline, no host work;
  - loop:  `train_and_evaluate` (the main job's code path) for 2 epochs of
    `--train-examples` MNIST images, one device, augmentation as configured:
    epoch 2's `images_per_second` (epoch 1 holds the compile). That figure
    counts batching, host-side shuffling, preprocessing/augmentation, the
    steps, prefetching and the metric reads, not evaluation or checkpoints;
  - loop, no augmentation: the same with `augment=False`.
Rounds alternate so that load from other jobs falls on all three alike; the
table prints each round's img/s and the loop/step ratios, then the medians.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time


def _bare_step_images_per_second(model_name: str, batch_size: int, steps: int) -> float:
    import jax
    import jax.numpy as jnp

    from jaxcnn import models, train
    from jaxcnn.bench.model_bench import random_batch_and_state

    tx = train.make_optimizer("adam", 1e-3)
    state, images, labels, _ = random_batch_and_state(model_name, models.get(model_name), tx,
                                                      batch_size)
    images, labels = jnp.asarray(images), jnp.asarray(labels)
    for _ in range(3):  # compile and warm up
        state, metrics = train.train_step(state, images, labels)
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = train.train_step(state, images, labels)
    jax.block_until_ready(metrics)
    return steps * batch_size / (time.perf_counter() - start)


def _loop_images_per_second(model_name: str, train_examples: int, augment: bool) -> float:
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.loop import train_and_evaluate

    config = TrainConfig(model=model_name, dataset="mnist", epochs=2, devices=1,
                         train_examples=train_examples, test_examples=1000, augment=augment)
    with tempfile.TemporaryDirectory(prefix="jaxcnn-loop-overhead-") as workdir:
        record = train_and_evaluate(config, workdir, progress=False)
    return record["images_per_second"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5", help="a zoo model that takes MNIST images")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds")
    parser.add_argument("--train-examples", type=int, default=12800,
                        help="images per loop epoch (batch 128: 100 steps)")
    args = parser.parse_args(argv)
    from jaxcnn.native.malloc import keep_freed_memory

    keep_freed_memory()  # as train_and_evaluate does for the loop
    batch_size = 128
    steps = args.train_examples // batch_size
    rows = []
    for round_index in range(1, args.rounds + 1):
        step = _bare_step_images_per_second(args.model, batch_size, steps)
        loop = _loop_images_per_second(args.model, args.train_examples, augment=True)
        plain = _loop_images_per_second(args.model, args.train_examples, augment=False)
        rows.append((step, loop, plain))
        print(f"round {round_index}: step {step:7.0f} img/s | loop {loop:7.0f} img/s "
              f"({loop / step:.2f}x) | loop, no augmentation {plain:7.0f} img/s "
              f"({plain / step:.2f}x)", flush=True)
    step, loop, plain = (statistics.median(column) for column in zip(*rows))
    print(f"median : step {step:7.0f} img/s | loop {loop:7.0f} img/s ({loop / step:.2f}x) | "
          f"loop, no augmentation {plain:7.0f} img/s ({plain / step:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
