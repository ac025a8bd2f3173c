"""Interleaved wall-clock timing, and the machine's measured matmul peak.

On a shared machine the load changes from second to second. Timing JAX for a
minute and then PyTorch for a minute would compare two different machines;
:func:`interleave` instead alternates short rounds of every contestant (in a
reversed order on every other round), so a burst of load hits all of them
about equally, and reports every round. Use the median of the rounds.
"""
from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping

__all__ = ["interleave", "median", "matmul_peak", "load_average"]

# A contestant runs ``iterations`` steps and returns once the last one has
# finished (for JAX: after ``jax.block_until_ready``).
Runner = Callable[[int], None]


def interleave(
    runners: Mapping[str, Runner], *, rounds: int, iterations: int, warmup: int = 1,
    pause: float = 0.0,
) -> dict[str, list[float]]:
    """Seconds per step of every runner, one entry per round, rounds interleaved.

    Args:
      runners: ``name -> run(iterations)``; each call must do ``iterations``
        steps and return when they are done.
      rounds: how many timed rounds (>= 1); round ``r`` runs every runner
        once, in the given order for even ``r`` and reversed for odd ``r``.
      iterations: steps per runner per round (>= 1).
      warmup: untimed calls ``run(1)`` of every runner before the first round
        (compilation, allocator and cache warm-up).
      pause: seconds to sleep before each timed run, so that the previous
        contestant's worker threads (OpenMP and Eigen threads spin for a
        while after their work ends) have gone idle and do not steal cores
        from the next one. Measured on 2 cores: without it both PyTorch
        (2275 vs 2709 img/s) and jaxcnn (1297 vs 1784) lose on LeNet-5.

    Returns:
      ``{name: [seconds per step in round 0, round 1, ...]}``.
    """
    if rounds < 1 or iterations < 1 or warmup < 0:
        raise ValueError(
            f"rounds and iterations must be >= 1 and warmup >= 0, got rounds={rounds}, "
            f"iterations={iterations}, warmup={warmup}"
        )
    names = list(runners)
    for name in names:
        for _ in range(warmup):
            runners[name](1)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(rounds):
        order = names if round_index % 2 == 0 else names[::-1]
        for name in order:
            if pause:
                time.sleep(pause)
            start = time.perf_counter()
            runners[name](iterations)
            seconds[name].append((time.perf_counter() - start) / iterations)
    return seconds


def median(values) -> float:
    """The median of a non-empty sequence of numbers."""
    return float(statistics.median(values))


def load_average() -> float | None:
    """The 1-minute load average (runnable processes), or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def matmul_peak(size: int = 2048, *, rounds: int = 5, with_torch: bool = True,
                pause: float = 0.0, torch_device: str = "cpu") -> dict:
    """Achieved fp32 GFLOP/s of a ``size x size`` matrix product, via XLA and via PyTorch.

    ``2 * size**3`` floating-point operations per product; the median over
    ``rounds`` interleaved rounds (``pause`` as in :func:`interleave`); PyTorch
    runs on ``torch_device`` (``"cpu"`` or ``"cuda"``). This is
    the practical peak the model
    benchmarks compare against (a large square GEMM is as close to the
    hardware's peak as either library gets).

    Returns:
      ``{"size": size, "xla_gflops": float, "torch_gflops": float | None,
      "peak_gflops": max of the two}``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=np.float32)
    b = rng.standard_normal((size, size), dtype=np.float32)
    a_jax, b_jax = jnp.asarray(a), jnp.asarray(b)
    product = jax.jit(jnp.matmul)

    def run_xla(iterations: int) -> None:
        for _ in range(iterations):
            out = product(a_jax, b_jax)
        jax.block_until_ready(out)

    runners = {"xla": run_xla}
    if with_torch:
        import torch

        a_torch, b_torch = torch.from_numpy(a).to(torch_device), torch.from_numpy(b).to(torch_device)
        synchronize = torch.cuda.synchronize if str(torch_device).startswith("cuda") else (lambda: None)

        def run_torch(iterations: int) -> None:
            for _ in range(iterations):
                torch.mm(a_torch, b_torch)
            synchronize()

        runners["torch"] = run_torch
    seconds = interleave(runners, rounds=rounds, iterations=1, warmup=1, pause=pause)
    flops = 2.0 * size**3
    gflops = {name: flops / median(values) / 1e9 for name, values in seconds.items()}
    return {
        "size": size,
        "xla_gflops": gflops["xla"],
        "torch_gflops": gflops.get("torch"),
        "peak_gflops": max(gflops.values()),
    }
