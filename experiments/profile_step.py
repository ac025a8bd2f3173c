"""Where a train step's time goes: XLA's per-operation profile, and batch norm's share.

    python experiments/profile_step.py [--model resnet20] [--batch-size 128] [--steps 10] [--top 25]
    python experiments/profile_step.py --model resnet20 --batch-norm-share [--rounds 7]

Default mode: `jax.profiler` traces --steps calls of `train.train_step` (SGD
with momentum, random images, the state built as README shows, after 5 warm-up
steps) and prints the op time per step of each XLA operation group, largest
first: `jaxcnn_onednn_conv_fwd` / `_bwd_data` / `_bwd_weights` are the oneDNN
convolutions, `ynn_fusion` YNNPACK's dots and reductions, the other names XLA's
loop fusions (elementwise work: batch norm, ReLU, pooling and their
derivatives). Op times can add up to more than the wall time: XLA runs
independent operations concurrently.

--batch-norm-share: times the train step as it is against the same model with
every batch norm replaced by `x * scale + bias` (no statistics, no
normalisation: an upper bound for what any faster batch-norm kernel could
save), in alternating rounds in one process (both programs compiled first),
and prints the medians. The replaced model is only a timing device: it is not
batch norm.

Both apply the malloc setting the `jaxcnn` command uses first. Results:
experiments/PERFORMANCE.md, "Session 4".
"""
from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import re
import statistics
import sys
import tempfile
import time


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="a zoo model (default: resnet20)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=10, help="steps traced or timed per round")
    parser.add_argument("--top", type=int, default=25, help="operation groups to print")
    parser.add_argument("--batch-norm-share", action="store_true",
                        help="time the step with batch norm against batch norm replaced")
    parser.add_argument("--rounds", type=int, default=7, help="rounds for --batch-norm-share")
    args = parser.parse_args(argv)
    for name in ("batch_size", "steps", "top", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    return args


def _state_and_batch(model_name: str, batch_size: int):
    """The zoo model's state (SGD with momentum) and one random batch, on the device."""
    import jax.numpy as jnp

    from jaxcnn import models, train
    from jaxcnn.bench.model_bench import random_batch_and_state

    tx = train.make_optimizer("sgd", 0.01, momentum=0.9)
    state, images, labels, _ = random_batch_and_state(
        model_name, models.get(model_name), tx, batch_size)
    return state, jnp.asarray(images), jnp.asarray(labels)


def _op_group(name: str) -> str:
    """``jaxcnn_onednn_conv_fwd.3`` -> ``jaxcnn_onednn_conv_fwd``: one row per kind of operation."""
    return re.sub(r"\.\d+$", "", name)


def profile(model_name: str, batch_size: int, steps: int) -> tuple[dict, float]:
    """``({operation group: ms per step}, wall ms per step)`` from a trace of ``steps`` steps."""
    import jax

    from jaxcnn import train

    state, images, labels = _state_and_batch(model_name, batch_size)
    for _ in range(5):
        state, metrics = train.train_step(state, images, labels)
    jax.block_until_ready(metrics)
    with tempfile.TemporaryDirectory() as trace_dir:
        started = time.perf_counter()
        with jax.profiler.trace(trace_dir, create_perfetto_trace=True):
            for _ in range(steps):
                state, metrics = train.train_step(state, images, labels)
            jax.block_until_ready(metrics)
        wall_ms = (time.perf_counter() - started) * 1e3 / steps
        trace_file = glob.glob(f"{trace_dir}/**/*.trace.json.gz", recursive=True)[0]
        trace = json.load(gzip.open(trace_file))
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    totals = collections.Counter()
    for event in events:
        # XLA's operations carry their HLO name; the runtime's and Python's events do not.
        hlo_op = (event.get("args") or {}).get("hlo_op")
        if event.get("ph") == "X" and hlo_op:
            totals[_op_group(hlo_op)] += event["dur"] / 1e3 / steps
    return dict(totals), wall_ms


def _identity_batch_norm(x, params, state, **_):
    return x * params["scale"] + params["bias"], state


def batch_norm_share(model_name: str, batch_size: int, steps: int, rounds: int) -> dict:
    """``{variant: {"ms": [ms per step, one per round], "first_loss": the first step's loss}}``.

    Variants: ``"batch norm"`` (the step as it is) and ``"batch norm replaced"``.
    """
    import jax

    import jaxcnn.nn.batch_norm as nn_batch_norm
    from jaxcnn import train
    from jaxcnn.train.xla_options import step_compiler_options

    state, images, labels = _state_and_batch(model_name, batch_size)
    original = nn_batch_norm.batch_norm
    compiled = {}
    for variant, function in (("batch norm", original), ("batch norm replaced", _identity_batch_norm)):
        nn_batch_norm.batch_norm = function  # read when the step is traced, just below

        def step(state, images, labels):  # a new function per variant: a new trace
            return train.train_step.__wrapped__(state, images, labels)

        try:
            compiled[variant] = jax.jit(step, compiler_options=step_compiler_options()).lower(
                state, images, labels).compile()
        finally:
            nn_batch_norm.batch_norm = original
    first_loss = {}
    states = {}
    for variant, run in compiled.items():
        states[variant], metrics = run(state, images, labels)
        first_loss[variant] = float(metrics["loss"])
    times = {variant: [] for variant in compiled}
    for _ in range(rounds + 1):  # the first round warms up and is dropped
        for variant, run in compiled.items():
            time.sleep(0.3)  # let the other program's threads go idle
            started = time.perf_counter()
            for _ in range(steps):
                states[variant], metrics = run(states[variant], images, labels)
            jax.block_until_ready(metrics)
            times[variant].append((time.perf_counter() - started) * 1e3 / steps)
    return {variant: {"ms": values[1:], "first_loss": first_loss[variant]}
            for variant, values in times.items()}


def main(argv=None) -> int:
    args = _parse(argv)
    from jaxcnn.native.malloc import keep_freed_memory

    keep_freed_memory()  # as `jaxcnn train` runs; before JAX starts its threads
    if args.batch_norm_share:
        times = batch_norm_share(args.model, args.batch_size, args.steps, args.rounds)
        print(f"{args.model} train step, batch {args.batch_size}, {args.rounds} alternating rounds "
              f"of {args.steps} steps (ms per step)")
        for variant, result in times.items():
            print(f"{variant:<20} median {statistics.median(result['ms']):8.1f}  rounds "
                  + " ".join(f"{v:.0f}" for v in result["ms"])
                  + f"  (first step's loss {result['first_loss']:.4f})")
        return 0
    totals, wall_ms = profile(args.model, args.batch_size, args.steps)
    print(f"{args.model} train step, batch {args.batch_size}: {wall_ms:.1f} ms wall per step "
          f"under the profiler; op time per step by operation group ({len(totals)} groups, "
          f"{sum(totals.values()):.1f} ms in all)")
    for name, ms in sorted(totals.items(), key=lambda item: -item[1])[:args.top]:
        print(f"{ms:9.2f} ms  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
