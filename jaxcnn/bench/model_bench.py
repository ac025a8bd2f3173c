"""Train-step and eval-step throughput of a zoo model, side by side with its PyTorch twin.

JAX side: exactly what a user gets -- ``models.get(name)``,
``train.make_optimizer("sgd", lr, momentum=0.9)``, ``train.create_train_state``
and the jitted ``train.train_step`` / ``train.eval_step``. PyTorch side: the
twin from :mod:`jaxcnn.bench.torch_models` (same architecture, asserted same
parameter count), ``torch.optim.SGD(momentum=0.9)``, a step of zero_grad,
forward, cross-entropy, backward, optimizer step and batch accuracy (the same
metrics the JAX step returns); eval is ``model.eval()`` + ``inference_mode``.

Both run on random data of the model's default input shape; all four
contestants (jax/torch x train/eval) are timed in interleaved rounds
(:func:`jaxcnn.bench.timing.interleave`).
"""
from __future__ import annotations

import math
import time

__all__ = ["benchmark_model", "random_batch_and_state", "TRAIN_FLOPS_PER_FORWARD_MAC"]

# A training step costs about three forward passes (forward, input gradient,
# weight gradient), and a multiply-add is two floating-point operations.
TRAIN_FLOPS_PER_FORWARD_MAC = 3 * 2
EVAL_FLOPS_PER_FORWARD_MAC = 2

LEARNING_RATE = 0.01
MOMENTUM = 0.9


def _throughput(seconds_per_round: list[float], batch_size: int, flops_per_step: float,
                peak_gflops: float | None) -> dict:
    from jaxcnn.bench.timing import median

    step = median(seconds_per_round)
    gflops = flops_per_step / step / 1e9
    return {
        "step_ms": 1e3 * step,
        "images_per_s": batch_size / step,
        "gflops": gflops,
        "peak_fraction": None if not peak_gflops else gflops / peak_gflops,
        "rounds_ms": [1e3 * s for s in seconds_per_round],
    }


def benchmark_model(
    name: str,
    *,
    batch_size: int = 128,
    rounds: int = 7,
    iterations: int = 3,
    warmup: int = 2,
    pause: float = 0.5,
    with_torch: bool = True,
    torch_channels_last: bool = False,
    torch_device: str = "cpu",
    peak_gflops: float | None = None,
    seed: int = 0,
    conv_impl: str | None = None,
) -> dict:
    """Time one model's train and eval steps (JAX, and PyTorch when ``with_torch``).

    Args:
      name: a zoo model name (:func:`jaxcnn.models.names`); with ``with_torch``
        it needs a twin in :data:`jaxcnn.bench.torch_models.TORCH_MODELS`.
      batch_size: images per step.
      rounds, iterations, warmup, pause: see :func:`jaxcnn.bench.timing.interleave`.
      with_torch: also time the PyTorch twin and report JAX/PyTorch ratios.
      torch_channels_last: run PyTorch in ``channels_last`` memory format
        (default: PyTorch's default NCHW).
      torch_device: where the PyTorch twin runs: ``"cpu"`` or ``"cuda"`` (the GPU
        JAX uses, for a like-for-like comparison on an accelerator).
      peak_gflops: the machine's measured matmul GFLOP/s, for ``peak_fraction``.
      seed: data and init seed.
      conv_impl: the model's ``conv_impl`` (``models.get(name, conv_impl=...)``);
        None: the model's default.

    Returns a dict (all times in milliseconds, medians over rounds)::

        {"model", "batch_size", "input_shape": [H, W, C], "params", "forward_macs",
         "conv_impl": the model's conv_impl,
         "jax": {"train": T, "eval": T, "first_train_step_ms", "first_eval_step_ms"},
         "torch": {"train": T, "eval": T, "threads", "channels_last"} | None,
         "ratio": {"train": jax img/s / torch img/s, "eval": ...} | None}

    where ``T = {"step_ms", "images_per_s", "gflops", "peak_fraction", "rounds_ms"}``;
    ``gflops`` counts ``6 * forward_macs`` per train step and ``2 * forward_macs``
    per eval step (forward MACs from :func:`jaxcnn.summary.summarize`).
    ``first_*_step_ms`` is the wall time of the first call in this process:
    tracing, compilation and one step.

    Raises ValueError for an unknown model or batch size < 1, and RuntimeError
    if the PyTorch twin's parameter count differs from the JAX model's.
    """
    import jax
    import jax.numpy as jnp

    from jaxcnn import models, summary, train
    from jaxcnn.bench.timing import interleave

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    model = models.get(name, **({} if conv_impl is None else {"conv_impl": conv_impl}))
    height, width, channels = models.input_shape(name)
    input_shape = (batch_size, height, width, channels)
    forward_macs = sum(row.macs for row in summary.summarize(model, input_shape, train=False))

    tx = train.make_optimizer("sgd", LEARNING_RATE, momentum=MOMENTUM)
    state, images, labels, num_classes = random_batch_and_state(name, model, tx, batch_size, seed)
    params = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state.params))
    images_jax, labels_jax = jnp.asarray(images), jnp.asarray(labels)

    start = time.perf_counter()
    state, metrics = train.train_step(state, images_jax, labels_jax)
    jax.block_until_ready(metrics)
    first_train = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(train.eval_step(state, images_jax, labels_jax))
    first_eval = time.perf_counter() - start

    holder = {"state": state}

    def jax_train(iterations: int) -> None:
        for _ in range(iterations):
            holder["state"], out = train.train_step(holder["state"], images_jax, labels_jax)
        jax.block_until_ready(out)

    def jax_eval(iterations: int) -> None:
        for _ in range(iterations):
            out = train.eval_step(holder["state"], images_jax, labels_jax)
        jax.block_until_ready(out)

    runners = {"jax_train": jax_train, "jax_eval": jax_eval}
    torch_info = None
    if with_torch:
        torch_runners, torch_info = _torch_runners(
            name, images, labels, num_classes, params, channels_last=torch_channels_last,
            device=torch_device,
        )
        runners.update(torch_runners)

    seconds = interleave(runners, rounds=rounds, iterations=iterations, warmup=warmup,
                         pause=pause)
    train_flops = TRAIN_FLOPS_PER_FORWARD_MAC * forward_macs
    eval_flops = EVAL_FLOPS_PER_FORWARD_MAC * forward_macs
    result = {
        "model": name,
        "batch_size": batch_size,
        "input_shape": [height, width, channels],
        "params": params,
        "forward_macs": forward_macs,
        "conv_impl": model.conv_impl,
        "jax": {
            "train": _throughput(seconds["jax_train"], batch_size, train_flops, peak_gflops),
            "eval": _throughput(seconds["jax_eval"], batch_size, eval_flops, peak_gflops),
            "first_train_step_ms": 1e3 * first_train,
            "first_eval_step_ms": 1e3 * first_eval,
        },
        "torch": None,
        "ratio": None,
    }
    if with_torch:
        result["torch"] = {
            "train": _throughput(seconds["torch_train"], batch_size, train_flops, peak_gflops),
            "eval": _throughput(seconds["torch_eval"], batch_size, eval_flops, peak_gflops),
            **torch_info,
        }
        result["ratio"] = {
            phase: result["jax"][phase]["images_per_s"] / result["torch"][phase]["images_per_s"]
            for phase in ("train", "eval")
        }
    return result


def random_batch_and_state(name: str, model, tx, batch_size: int, seed: int = 0):
    """A train state of ``model`` (zoo model ``name``) and one random batch of its input shape.

    Returns ``(state, images, labels, num_classes)``: the state from
    ``train.create_train_state(model, tx, PRNGKey(seed), zeros (1, H, W, C))``,
    ``images`` float32 ``(batch_size, H, W, C)`` standard normal and ``labels``
    int32 ``(batch_size,)`` in ``[0, num_classes)``, both NumPy arrays drawn from
    ``np.random.default_rng(seed)``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxcnn import models, train

    height, width, channels = models.input_shape(name)
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((batch_size, height, width, channels), dtype=np.float32)
    sample = jnp.zeros((1, height, width, channels))
    state = train.create_train_state(model, tx, jax.random.PRNGKey(seed), sample)
    num_classes = jax.eval_shape(lambda: state.apply_fn(state.variables(), sample)).shape[-1]
    labels = rng.integers(0, num_classes, batch_size).astype(np.int32)
    return state, images, labels, num_classes


def _torch_runners(name, images, labels, num_classes, jax_params, *, channels_last, device="cpu"):
    """``({"torch_train": run, "torch_eval": run}, info)`` for the twin of ``name`` on ``device``.

    On a CUDA device each run ends with ``torch.cuda.synchronize()`` (kernels are
    asynchronous there, as JAX's are until ``block_until_ready``).
    """
    import torch
    import torch.nn.functional as F

    from jaxcnn.bench.torch_models import torch_model

    torch.manual_seed(0)
    model = torch_model(name, num_classes)
    torch_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if torch_params != jax_params:
        raise RuntimeError(
            f"the PyTorch twin of {name!r} has {torch_params:,} parameters but the jaxcnn "
            f"model has {jax_params:,}; the comparison would not be like for like"
        )
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(device=device, memory_format=memory_format)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous(memory_format=memory_format).to(device)
    y = torch.from_numpy(labels).long().to(device)
    synchronize = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    optimizer = torch.optim.SGD(model.parameters(), lr=LEARNING_RATE, momentum=MOMENTUM)

    def torch_train(iterations: int) -> None:
        model.train()
        for _ in range(iterations):
            optimizer.zero_grad(set_to_none=True)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
            optimizer.step()
            accuracy = (logits.detach().argmax(dim=1) == y).float().mean()
        float(loss.detach()), float(accuracy)
        synchronize()

    def torch_eval(iterations: int) -> None:
        model.eval()
        with torch.inference_mode():
            for _ in range(iterations):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
                accuracy = (logits.argmax(dim=1) == y).float().mean()
        model.train()
        float(loss.detach()), float(accuracy)
        synchronize()

    info = {"threads": torch.get_num_threads(), "channels_last": channels_last,
            "version": torch.__version__, "device": str(device)}
    return {"torch_train": torch_train, "torch_eval": torch_eval}, info
