"""Time to accuracy: the same recipe trained by `jaxcnn train` and by PyTorch, in one run.

    python experiments/time_to_accuracy.py [--target 0.99] [--epochs 2] [--eval-every 100]
        [--optimizer sgd --lr 0.05 --momentum 0.9 --schedule cosine] [--seed 0] [--torch-seed 0]
        [--warm-cache] [--rounds 3] [--torch-first]

The course's recipe by default: LeNet-5 on MNIST, SGD with momentum 0.9, lr 0.05
with a cosine decay to 0 over the run, batch 128, no augmentation, inputs
standardised with MNIST's mean and std, an evaluation on the whole test split
every `--eval-every` steps. About 3-4 minutes on a 2-core CPU.

- jaxcnn: `python -m jaxcnn train ... --eval-every N --compilation-cache off`
  in a subprocess, as a user runs it (start-up and compilation included);
  `step_evals.jsonl` gives each evaluation's step and wall time. With
  `--warm-cache` the same command runs twice with a fresh compilation cache
  (`--compilation-cache DIR`): "jaxcnn cold" compiles everything, "jaxcnn
  warm" is the second run, as a user's next run of the command, which loads
  the compiled train and eval steps from the cache.
- PyTorch: `jaxcnn.bench.torch_models.torch_model("lenet5")` (the same layers,
  PyTorch's default initialisation) trained in this process on the same batches
  in the same order (`jaxcnn.data.batches` with the same seed), with the same
  normalisation, optimizer, schedule and evaluation points; wall time from
  loading the data (as jaxcnn's clock), evaluations included.
The table gives, for each, the first evaluated step at or above `--target`,
its wall time, and the last evaluation; then jaxcnn's / PyTorch's wall time.
Only ratios measured in one run mean anything (hosts differ). `--rounds R`
repeats it all R times, PyTorch first in every other round (the machine's
speed drifts over minutes, and whoever runs second would carry the drift),
and ends with the median ratio.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _parse(argv):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", type=float, default=0.99, help="test accuracy to reach")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--eval-every", type=int, default=100, help="steps between evaluations")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--momentum", type=float, default=0.9)
    parser.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    parser.add_argument("--seed", type=int, default=0, help="jaxcnn's seed (init and data order)")
    parser.add_argument("--torch-seed", type=int, default=0, help="PyTorch's init seed")
    parser.add_argument("--train-examples", type=int, default=None, help="smaller runs (tests)")
    parser.add_argument("--test-examples", type=int, default=None)
    parser.add_argument("--jaxcnn-flags", default="",
                        help="more `jaxcnn train` flags, e.g. '--warmup-epochs 0.2'")
    parser.add_argument("--workdir", default=None, help="jaxcnn's workdir (default: a temporary one)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat everything, alternating which library runs first; "
                             "prints the median ratio")
    parser.add_argument("--torch-first", action="store_true",
                        help="run PyTorch before jaxcnn (in the first round, with --rounds)")
    parser.add_argument("--warm-cache", action="store_true",
                        help="run jaxcnn twice with a fresh compilation cache: a cold and a warm row")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error(f"--rounds must be at least 1, got {args.rounds}")
    return args


def _run_jaxcnn(args, workdir: Path, compilation_cache: str = "off") -> dict:
    command = [sys.executable, "-m", "jaxcnn", "train", "--model", "lenet5", "--dataset", "mnist",
               "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
               "--optimizer", args.optimizer, "--lr", str(args.lr), "--momentum",
               str(args.momentum), "--schedule", args.schedule, "--no-augment",
               "--seed", str(args.seed), "--eval-every", str(args.eval_every),
               "--devices", "1", "--compilation-cache", compilation_cache, "--no-progress",
               "--workdir", str(workdir), *args.jaxcnn_flags.split()]
    for flag, value in (("--train-examples", args.train_examples),
                        ("--test-examples", args.test_examples)):
        if value is not None:
            command += [flag, str(value)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"jaxcnn train failed (exit {done.returncode}): {done.stderr.strip()[-800:]}")
    records = [json.loads(line) for line in (workdir / "step_evals.jsonl").read_text().splitlines()]
    return {"evals": [(r["step"], r["test_accuracy"], r["elapsed_seconds"]) for r in records],
            "process_seconds": wall}


def _run_torch(args) -> dict:
    import numpy as np
    import torch

    from jaxcnn import data
    from jaxcnn.bench.torch_models import torch_model

    torch.set_num_threads(os.cpu_count() or 1)
    started = time.perf_counter()  # like jaxcnn's clock: data loading onwards
    train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
    if args.train_examples:
        train_set = train_set.subset(slice(0, args.train_examples))
    if args.test_examples:
        test_set = test_set.subset(slice(0, args.test_examples))
    mean, std = data.normalization_stats("mnist", train_set)

    def to_torch(images):
        x = (images.astype(np.float32) / 255.0 - np.float32(mean)) / np.float32(std)
        return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))

    test_images, test_labels = to_torch(test_set.images), torch.from_numpy(test_set.labels.astype(np.int64))
    torch.manual_seed(args.torch_seed)
    model = torch_model("lenet5", 10)
    if args.optimizer == "sgd":
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=args.momentum)
    else:
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = data.num_batches(len(train_set), args.batch_size, drop_remainder=True)
    total = steps_per_epoch * args.epochs

    def lr_at(step):  # optax.cosine_decay_schedule(lr, total): lr at the update's count
        if args.schedule == "constant":
            return args.lr
        return 0.5 * args.lr * (1 + math.cos(math.pi * min(step, total) / total))

    def evaluate():
        model.eval()
        with torch.no_grad():
            correct = sum(int((model(test_images[i:i + 1000]).argmax(1)
                               == test_labels[i:i + 1000]).sum())
                          for i in range(0, len(test_labels), 1000))
        model.train()
        return correct / len(test_labels)

    evals, step = [], 0
    for epoch in range(args.epochs):
        for images, labels in data.batches(train_set, args.batch_size, seed=args.seed, epoch=epoch,
                                           shuffle=True, drop_remainder=True):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step)
            loss = torch.nn.functional.cross_entropy(model(to_torch(images)),
                                                     torch.from_numpy(labels.astype(np.int64)))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % args.eval_every == 0 or step == total:
                evals.append((step, evaluate(), time.perf_counter() - started))
    return {"evals": evals, "process_seconds": None}


def _first_at(evals, target):
    return next(((step, seconds) for step, accuracy, seconds in evals if accuracy >= target),
                (None, None))


def _table(results: dict, target: float) -> list[str]:
    lines = [f"{'library':<11} {'first step >= ' + format(target, '.2%'):>20} {'wall s there':>13} "
             f"{'last step':>10} {'last acc':>9} {'wall s':>8}"]
    for name, result in results.items():
        step, seconds = _first_at(result["evals"], target)
        last_step, last_accuracy, last_seconds = result["evals"][-1]
        lines.append(f"{name:<11} {('not reached' if step is None else str(step)):>20} "
                     f"{('-' if seconds is None else f'{seconds:.1f}'):>13} {last_step:>10} "
                     f"{last_accuracy:>9.2%} {last_seconds:>8.1f}")
    return lines


def _run_round(args, scratch: Path, workdir: Path, torch_first: bool) -> tuple[dict, list[str]]:
    """One of each run (jaxcnn cold and warm, or jaxcnn; PyTorch), PyTorch first if ``torch_first``."""
    if args.warm_cache:
        cache = str(scratch / "xla")  # fresh each round: the first run is cold
        runs = {"jaxcnn cold": (workdir / "cold", cache), "jaxcnn warm": (workdir / "warm", cache)}
    else:
        runs = {"jaxcnn": (workdir, "off")}
    results = {}
    if torch_first:
        results["pytorch"] = _run_torch(args)
    for name, (run_dir, compilation_cache) in runs.items():
        results[name] = _run_jaxcnn(args, run_dir, compilation_cache)
        print(f"{name} done ({results[name]['process_seconds']:.1f} s as a process)", flush=True)
    if not torch_first:
        results["pytorch"] = _run_torch(args)
    return {name: results[name] for name in [*runs, "pytorch"]}, list(runs)


def _ratios(results: dict, names: list[str], target: float) -> dict:
    """jaxcnn run name -> its time to ``target`` over PyTorch's (None where one did not reach it)."""
    _, torch_seconds = _first_at(results["pytorch"]["evals"], target)
    ratios = {}
    for name in names:
        _, jax_seconds = _first_at(results[name]["evals"], target)
        ratios[name] = (None if jax_seconds is None or torch_seconds is None
                        else jax_seconds / torch_seconds)
    return ratios


def main(argv=None) -> int:
    args = _parse(argv)
    print(f"LeNet-5 on MNIST, {args.optimizer} lr {args.lr}"
          f"{f' momentum {args.momentum}' if args.optimizer == 'sgd' else ''} "
          f"({args.schedule}), batch {args.batch_size}, {args.epochs} epochs, no augmentation, "
          f"evaluation every {args.eval_every} steps; target {args.target:.2%}", flush=True)
    all_ratios = []
    for round_index in range(args.rounds):
        # Alternate which library goes first, so a change of load falls on both alike.
        torch_first = args.torch_first != (round_index % 2 == 1)
        if args.rounds > 1:
            print(f"round {round_index + 1} of {args.rounds} "
                  f"({'PyTorch' if torch_first else 'jaxcnn'} first)", flush=True)
        with tempfile.TemporaryDirectory() as scratch:
            workdir = Path(args.workdir or Path(scratch) / "jaxcnn") / f"round{round_index + 1}"
            results, names = _run_round(args, Path(scratch), workdir, torch_first)
        for line in _table(results, args.target):
            print(line)
        ratios = _ratios(results, names, args.target)
        all_ratios.append(ratios)
        for name, ratio in ratios.items():
            if ratio is not None:
                print(f"time to {args.target:.2%}: {name} / PyTorch = {ratio:.2f}")
            else:
                print(f"time to {args.target:.2%}: {name} / PyTorch not compared (not reached)")
        for name, result in results.items():
            print(f"{name} evaluations (step, accuracy, wall s): "
                  + ", ".join(f"({s}, {a:.4f}, {t:.1f})" for s, a, t in result["evals"]))
    if args.rounds > 1:
        for name in all_ratios[0]:
            values = [r[name] for r in all_ratios if r[name] is not None]
            if values:
                print(f"median over {len(values)} rounds: {name} / PyTorch = "
                      f"{statistics.median(values):.2f} ({', '.join(f'{v:.2f}' for v in values)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
