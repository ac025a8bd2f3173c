"""Does the classic SGD recipe train from every seed?  Variants x seeds, S steps each.

    python experiments/seed_robustness.py --model lenet5 --seeds 0-9 \\
        --variants default,warmup,torch_init --steps 300
    python experiments/seed_robustness.py --model lenet5 --trace 3 --steps 50   # one seed, step by step

The recipe is `jaxcnn train --optimizer sgd --lr 0.05 --momentum 0.9 --schedule
cosine --no-augment` on MNIST at batch 128 (cosine laid out over --epochs, 1 by
default = 468 steps; every run stops after --steps). Each run is built with the
library's own `setup_run(config)` and stepped with `run.executor.train_step` on
`data.batches` in the loop's order, then evaluated on the test split. A run
whose final test accuracy is below 20% has "collapsed" (chance is 10%).

Variants (see VARIANTS):
  default      the recipe as it stands (He-normal convs, LeCun-normal dense layers)
  warmup       + a linear warm-up from 0 over --warmup-epochs (default 0.1 epoch = 47 steps)
  torch_init   every conv and dense kernel drawn as PyTorch's default does
               (`kernel_init="torch_uniform"`: U(+-1/sqrt(fan_in)))
  lecun_init   every conv and dense kernel LeCun normal (`kernel_init="lecun_normal"`)

Prints one table (variant x seed: loss at a few steps, final test accuracy,
collapsed yes/no) and a line per variant "k of N seeds collapsed". --trace
prints, for the first --steps steps of one seed and variant, the loss, the
global gradient norm, the largest |logit| and the fraction of dead ReLU units
per layer (units that output 0 for every image and position of the batch).

Runtime on the project's shared 2-core CPU: about 25 s per LeNet-5 run of 300
steps (~13 min for 3 variants x 10 seeds); about 80 s per ResNet-20 run of 150
steps (~27 min for 2 variants x 10 seeds). Results: experiments/PERFORMANCE.md,
"Seed robustness of the classic SGD recipe".
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
from collections.abc import Callable

# Variant name -> the TrainConfig fields it changes ({} = the recipe as it stands).
# warmup's length comes from --warmup-epochs.
VARIANTS: dict[str, dict] = {
    "default": {},
    "warmup": {"warmup_epochs": None},
    "torch_init": {"model_kwargs": {"kernel_init": "torch_uniform"}},
    "lecun_init": {"model_kwargs": {"kernel_init": "lecun_normal"}},
}
COLLAPSE_ACCURACY = 0.20
LOSS_AT = (1, 10, 50, 100)  # steps at which the table shows the training loss (and the last)


def recipe(model: str, seed: int, epochs: int = 1, lr: float = 0.05):
    """The classic SGD recipe (no augmentation) for ``model`` on MNIST, one device."""
    from jaxcnn.train.config import TrainConfig

    return TrainConfig(model=model, dataset="mnist", optimizer="sgd", lr=lr, momentum=0.9,
                       schedule="cosine", augment=False, epochs=epochs, seed=seed, devices=1)


def variant_config(config, variant: str, *, warmup_epochs: float):
    """``config`` with the changes of ``variant`` (a name in VARIANTS)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")
    changes = dict(VARIANTS[variant])
    if "warmup_epochs" in changes:
        changes["warmup_epochs"] = warmup_epochs
    if "model_kwargs" in changes:
        changes["model_kwargs"] = {**config.model_kwargs, **changes["model_kwargs"]}
    return dataclasses.replace(config, **changes)


def _train_batches(run, steps: int):
    """(step, images, labels) for the first ``steps`` steps in the loop's order (epochs, batches)."""
    import jax

    from jaxcnn import data

    config = run.config
    augment_key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 1)  # as the loop's
    step = 0
    for epoch in range(math.ceil(steps / run.steps_per_epoch)):
        epoch_key = jax.random.fold_in(augment_key, epoch)
        for batch, (images, labels) in enumerate(data.batches(
                run.train_set, config.batch_size, seed=config.seed, epoch=epoch,
                drop_remainder=True)):
            if step == steps:
                return
            step += 1
            yield step, run.preprocess.train(images, jax.random.fold_in(epoch_key, batch)), labels


def train_for(config, steps: int) -> dict:
    """Train ``config`` for ``steps`` steps; ``{"losses": {step: loss}, "accuracy": test accuracy}``."""
    import numpy as np

    from jaxcnn.train.evaluation import evaluate_dataset
    from jaxcnn.train.run_setup import setup_run

    run = setup_run(config)
    state = run.executor.place(run.state)
    losses = {}
    for step, images, labels in _train_batches(run, steps):
        state, metrics = run.executor.train_step(state, images, labels)
        if step in LOSS_AT or step == steps:
            losses[step] = float(np.asarray(metrics["loss"]))
    test = evaluate_dataset(run.executor.eval_step, state, run.test_set,
                            config.eval_batch_size, run.preprocess.eval)
    return {"losses": losses, "accuracy": test["accuracy"]}


def step_diagnostics(state, images, labels) -> dict:
    """Loss, global gradient norm, max |logit| and dead-ReLU fraction per layer, on one batch.

    A ReLU unit (a channel of a conv feature map, a neuron of a dense layer) is
    dead on the batch when its output is 0 for every image and position.
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import traverse_util

    from jaxcnn.functional.losses import softmax_cross_entropy

    variables = {"params": state.params}
    if state.batch_stats:
        variables["batch_stats"] = state.batch_stats

    def loss_fn(params):
        logits, captured = state.apply_fn(
            {**variables, "params": params}, images, train=True,
            mutable=["batch_stats", "intermediates"],
            capture_intermediates=lambda module, _: type(module).__name__ == "ReLU",
            rngs={"dropout": jax.random.PRNGKey(0)})
        return softmax_cross_entropy(logits=logits, labels=labels), (logits, captured)

    (loss, (logits, captured)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    dead = {}
    flat = traverse_util.flatten_dict(captured.get("intermediates", {}))
    for path, outputs in flat.items():
        activation = outputs[0]
        alive = jnp.any(activation > 0, axis=tuple(range(activation.ndim - 1)))
        dead["/".join(p for p in path[:-1])] = float(1.0 - jnp.mean(alive))
    return {"loss": float(loss), "grad_norm": float(optax.global_norm(grads)),
            "max_logit": float(jnp.max(jnp.abs(logits))), "dead": dead}


def trace(config, steps: int, print_fn: Callable = print) -> list[dict]:
    """Print (and return) :func:`step_diagnostics` before each of the first ``steps`` updates."""
    from jaxcnn.train.run_setup import setup_run

    run = setup_run(config)
    state = run.state
    rows = []
    for step, images, labels in _train_batches(run, steps):
        row = {"step": step, **step_diagnostics(state, images, labels)}
        rows.append(row)
        if step == 1:
            print_fn(f"{'step':>4} {'loss':>8} {'grad norm':>10} {'max|logit|':>10}  dead ReLU units: "
                     + " ".join(f"{name:>6}" for name in row["dead"]))
        print_fn(f"{step:4d} {row['loss']:8.3f} {row['grad_norm']:10.3f} {row['max_logit']:10.2f}  "
                 f"{'':16}" + " ".join(f"{v:6.0%}" for v in row["dead"].values()))
        state, _ = run.executor.train_step(state, images, labels)
    return rows


def format_table(results: dict[tuple[str, int], dict], steps: int) -> str:
    """The variant x seed table and one "k of N seeds collapsed" line per variant."""
    loss_steps = [s for s in LOSS_AT if s < steps] + [steps]
    header = (f"| variant | seed | " + " | ".join(f"loss@{s}" for s in loss_steps)
              + " | test acc | collapsed |")
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    by_variant: dict[str, list] = {}
    for (variant, seed), result in results.items():
        collapsed = result["accuracy"] < COLLAPSE_ACCURACY
        by_variant.setdefault(variant, []).append((seed, result["accuracy"], collapsed))
        losses = " | ".join(f"{result['losses'].get(s, float('nan')):.3f}" for s in loss_steps)
        lines.append(f"| {variant} | {seed} | {losses} | {result['accuracy']:.2%} | "
                     f"{'yes' if collapsed else 'no'} |")
    lines.append("")
    for variant, rows in by_variant.items():
        collapsed = [seed for seed, _, c in rows if c]
        accuracies = [a for _, a, _ in rows]
        lines.append(f"{variant}: {len(collapsed)} of {len(rows)} seeds collapsed"
                     + (f" (seeds {', '.join(map(str, collapsed))})" if collapsed else "")
                     + f"; test accuracy {min(accuracies):.2%} to {max(accuracies):.2%}")
    return "\n".join(lines)


def parse_seeds(text: str) -> list[int]:
    """``"0-9"`` -> 0..9; ``"0,3,5"`` -> [0, 3, 5]."""
    seeds = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="lenet5", help="model name (default: lenet5)")
    parser.add_argument("--seeds", default="0-9", type=parse_seeds,
                        help="seeds, e.g. 0-9 or 0,3 (default: 0-9)")
    parser.add_argument("--variants", default="default,warmup,torch_init",
                        type=lambda text: text.split(","),
                        help=f"comma-separated, from {', '.join(VARIANTS)} "
                        "(default: default,warmup,torch_init)")
    parser.add_argument("--steps", type=int, default=300, help="steps per run (default: 300)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs the cosine schedule is laid out over (default: 1)")
    parser.add_argument("--lr", type=float, default=0.05,
                        help="peak learning rate (default: 0.05, the recipe's)")
    parser.add_argument("--warmup-epochs", type=float, default=0.1,
                        help="warm-up length of the warmup variant (default: 0.1)")
    parser.add_argument("--trace", type=int, metavar="SEED", default=None,
                        help="instead of the table: step-by-step diagnostics of this seed for "
                        "the first variant")
    args = parser.parse_args(argv)
    for variant in args.variants:
        if variant not in VARIANTS:
            parser.error(f"unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}")

    if args.trace is not None:
        config = variant_config(recipe(args.model, args.trace, args.epochs, args.lr), args.variants[0],
                                warmup_epochs=args.warmup_epochs)
        trace(config, args.steps)
        return 0
    results = {}
    for variant in args.variants:
        for seed in args.seeds:
            start = time.perf_counter()
            config = variant_config(recipe(args.model, seed, args.epochs, args.lr), variant,
                                    warmup_epochs=args.warmup_epochs)
            results[variant, seed] = train_for(config, args.steps)
            print(f"{variant} seed {seed}: test accuracy {results[variant, seed]['accuracy']:.2%} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    print()
    print(format_table(results, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())
