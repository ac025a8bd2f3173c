"""Peak resident memory of a training run, jaxcnn vs PyTorch, each in a fresh process.

    jaxcnn bench --memory --models resnet20 --batch-size 128

One process per library and model runs ``steps`` training steps (jaxcnn's
``train_step`` with SGD-momentum as README shows it; PyTorch's twin with
``torch.optim.SGD``) on random images of the model's input shape, then reports
its peak resident set (Linux ``VmHWM``; ``ru_maxrss`` elsewhere). A fresh
process per measurement, because a process's peak never goes down and the two
libraries would otherwise share one. The figure includes each library's
runtime (Python, XLA or ATen, their thread pools) -- what a user's training
process costs.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys

__all__ = ["peak_memory_mb", "measure_training_memory"]


def peak_memory_mb() -> float:
    """This process's peak resident memory so far, in MB (10^6 bytes)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1e6 if sys.platform == "darwin" else peak * 1024 / 1e6  # bytes on macOS


def measure_training_memory(library: str, model: str, batch_size: int, *, steps: int = 10,
                            malloc_tuning: bool = True, timeout: float = 900) -> dict:
    """Run ``steps`` training steps of ``model`` with ``library`` in a fresh process.

    Args:
      library: ``"jaxcnn"`` or ``"pytorch"``.
      model: a zoo name with a PyTorch twin (:data:`jaxcnn.bench.torch_models.TORCH_MODELS`).
      batch_size: images per step.
      steps: training steps after the first (the compiled or warmed-up one).
      malloc_tuning: False runs jaxcnn with ``JAXCNN_MALLOC_TUNING=0`` (glibc's
        defaults instead of :func:`jaxcnn.native.malloc.keep_freed_memory`).

    Returns:
      ``{"library", "model", "batch_size", "steps", "malloc_tuning", "peak_mb", "before_mb"}``:
      the peak resident set of the process at the end, and right after the
      imports (the libraries' own share).

    Raises:
      ValueError: an unknown library; RuntimeError: the child process failed.
    """
    if library not in ("jaxcnn", "pytorch"):
        raise ValueError(f"library must be 'jaxcnn' or 'pytorch', got {library!r}")
    from jaxcnn import models

    shape = ",".join(str(size) for size in models.input_shape(model))
    command = [sys.executable, "-m", "jaxcnn.bench.memory", "--library", library, "--model",
               model, "--batch-size", str(batch_size), "--steps", str(steps),
               "--input-shape", shape]
    env = dict(os.environ, JAXCNN_MALLOC_TUNING="1" if malloc_tuning else "0")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"the {library} memory run of {model} failed: "
                           f"{done.stderr.strip()[-1000:]}")
    return {**json.loads(done.stdout.strip().splitlines()[-1]),
            "malloc_tuning": malloc_tuning if library == "jaxcnn" else None}


def _train_jaxcnn(model_name: str, shape, batch_size: int, steps: int) -> None:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxcnn import models, train
    from jaxcnn.native.malloc import keep_freed_memory

    keep_freed_memory()  # as `jaxcnn train` runs
    model = models.get(model_name)
    state = train.create_train_state(model, train.make_optimizer("sgd", 0.01, momentum=0.9),
                                     jax.random.PRNGKey(0), jnp.zeros((1, *shape)))
    rng = np.random.default_rng(0)
    images = jnp.asarray(rng.standard_normal((batch_size, *shape), np.float32))
    labels = jnp.asarray(rng.integers(0, 10, batch_size), jnp.int32)
    for _ in range(steps + 1):
        state, metrics = train.train_step(state, images, labels)
    jax.block_until_ready(metrics)


def _train_pytorch(model_name: str, shape, batch_size: int, steps: int) -> None:
    import torch

    from jaxcnn.bench.torch_models import torch_model  # imports neither jax nor flax

    torch.set_num_threads(os.cpu_count() or 1)
    height, width, channels = shape
    model = torch_model(model_name, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, channels, height, width, generator=generator)
    labels = torch.randint(0, 10, (batch_size,), generator=generator)
    for _ in range(steps + 1):
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="one library's training memory (a child of "
                                     "jaxcnn bench --memory)")
    parser.add_argument("--library", choices=("jaxcnn", "pytorch"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--input-shape", required=True, help="H,W,C (the model's)")
    args = parser.parse_args(argv)
    shape = tuple(int(size) for size in args.input_shape.split(","))
    if args.library == "jaxcnn":
        import jax  # noqa: F401  (the import's own memory counts as "before")
    else:
        import torch  # noqa: F401
    before = peak_memory_mb()
    train = _train_jaxcnn if args.library == "jaxcnn" else _train_pytorch
    train(args.model, shape, args.batch_size, args.steps)
    print(json.dumps({"library": args.library, "model": args.model,
                      "batch_size": args.batch_size, "steps": args.steps,
                      "before_mb": before, "peak_mb": peak_memory_mb()}))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
