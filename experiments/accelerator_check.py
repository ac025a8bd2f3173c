"""The accelerator check: does jaxcnn compute correctly and fast on this machine's GPU/TPU?

    PYTHONPATH=. python experiments/accelerator_check.py --out accel_out          # < 8 min on one GPU
    PYTHONPATH=. python experiments/accelerator_check.py --quick --out /tmp/acc   # CPU smoke, ~1 min

Meant for a machine that already has JAX for CUDA (or TPU), PyTorch, flax, optax
and orbax installed, with jaxcnn taken from the working tree (no install, no
download: MNIST is read from the repository's ``data/mnist``). Four parts, each
printed as it finishes and written to ``OUT/accelerator_check.json``:

1. ``environment``: JAX/jaxlib/flax/torch versions, JAX's devices, PyTorch's CUDA device.
2. ``conv_agreement``: ``F.conv2d`` with every implementation (xla, im2col, auto)
   in float32 and bfloat16, forward and both gradients, against a float32
   reference computed at ``precision="highest"`` (GPUs run float32 convolutions
   in TF32 by default), over strided, padded, dilated and grouped geometries.
   Each error is the max abs difference divided by the reference's max abs
   value; the check fails above 2e-2 (float32/TF32) or 6e-2 (bfloat16).
3. ``training``: LeNet-5 on MNIST with Adam (lr 1e-3), float32 and bfloat16
   (``models.get("lenet5", dtype=...)``), the same steps and batches; the
   test accuracy of each and their difference (expected within ~0.5 points
   after 600 steps; reported, not asserted).
4. ``bench``: ``jaxcnn bench`` against PyTorch on the same device
   (``torch_device="cuda"`` when PyTorch sees a GPU): LeNet-5 at batch 128,
   ResNet-20 at 128 and 512, ResNet-50 at 64.

Exit status: 0 when every conv agreement is within tolerance and training
reached a finite loss, 1 otherwise (the JSON says which).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# (name, input NHWC, kernel HWIO, stride, padding, dilation, groups)
GEOMETRIES = (
    ("3x3 same", (8, 32, 32, 16), (3, 3, 16, 32), 1, 1, 1, 1),
    ("3x3 stride 2", (8, 32, 32, 16), (3, 3, 16, 32), 2, 1, 1, 1),
    ("7x7 stride 2 stem", (4, 64, 64, 3), (7, 7, 3, 16), 2, 3, 1, 1),
    ("1x1 projection", (8, 16, 16, 32), (1, 1, 32, 64), 2, 0, 1, 1),
    ("5x5 valid", (8, 28, 28, 1), (5, 5, 1, 20), 1, 0, 1, 1),
    ("3x3 dilated 2", (4, 24, 24, 8), (3, 3, 8, 8), 1, 2, 2, 1),
    ("3x3 grouped 4", (4, 16, 16, 16), (3, 3, 4, 16), 1, 1, 1, 4),
)
QUICK_GEOMETRIES = (GEOMETRIES[1], GEOMETRIES[6])  # strided, grouped
TOLERANCE = {"float32": 2e-2, "bfloat16": 6e-2}
BENCH_RUNS = (("lenet5", (128,)), ("resnet20", (128, 512)), ("resnet50", (64,)))


def environment() -> dict:
    import flax
    import jax
    import jaxlib

    info = {
        "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
        "backend": jax.default_backend(), "device_count": jax.device_count(),
        "devices": [str(device) for device in jax.devices()],
        "device_kind": jax.devices()[0].device_kind,
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["torch"] = info["torch_cuda"] = None
    return info


def _relative_error(got, expected) -> float:
    import numpy as np

    got, expected = np.asarray(got, np.float64), np.asarray(expected, np.float64)
    return float(np.max(np.abs(got - expected)) / max(np.max(np.abs(expected)), 1e-30))


def conv_agreement(geometries) -> list[dict]:
    """Every implementation and dtype against the float32 reference at highest precision."""
    import jax
    import jax.numpy as jnp

    import jaxcnn.functional as F

    results = []
    for name, x_shape, w_shape, stride, padding, dilation, groups in geometries:
        key_x, key_w, key_g = jax.random.split(jax.random.PRNGKey(len(results)), 3)
        x = jax.random.normal(key_x, x_shape, jnp.float32)
        w = jax.random.normal(key_w, w_shape, jnp.float32) / (w_shape[0] * w_shape[1] * w_shape[2]) ** 0.5
        options = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)

        def forward_and_grads(x, w, impl, dtype, precision=None):
            def conv(x, w):
                return F.conv2d(x.astype(dtype), w.astype(dtype), impl=impl, **options)

            if precision is not None:
                with jax.default_matmul_precision(precision):
                    y, vjp = jax.vjp(conv, x, w)
                    cotangent = jax.random.normal(key_g, y.shape, jnp.float32).astype(y.dtype)
                    return (y, *vjp(cotangent))

            y, vjp = jax.vjp(conv, x, w)
            cotangent = jax.random.normal(key_g, y.shape, jnp.float32).astype(y.dtype)
            dx, dw = vjp(cotangent)
            return y, dx, dw

        reference = jax.jit(lambda x, w: forward_and_grads(x, w, "xla", jnp.float32, "highest"))(x, w)
        for dtype_name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
            for impl in ("xla", "im2col", "auto"):
                got = jax.jit(lambda x, w: forward_and_grads(x, w, impl, dtype))(x, w)
                errors = {part: _relative_error(g, r) for part, g, r in zip(("y", "dx", "dw"), got, reference)}
                results.append({
                    "geometry": name, "impl": impl, "dtype": dtype_name, **errors,
                    "ok": max(errors.values()) <= TOLERANCE[dtype_name],
                })
    return results


def training(steps: int, batch_size: int, eval_images: int) -> dict:
    """LeNet-5 on MNIST, float32 and bfloat16, the same batches: test accuracy of each."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxcnn import data, models, train

    train_set, test_set = data.load("mnist", "train"), data.load("mnist", "test")
    mean, std = data.stats_for("mnist")
    test_images = data.normalize(test_set.images[:eval_images], mean, std)
    test_labels = jnp.asarray(test_set.labels[:eval_images])
    runs = {}
    for dtype_name, dtype in (("float32", jnp.float32), ("bfloat16", jnp.bfloat16)):
        model = models.get("lenet5", dtype=dtype)
        state = train.create_train_state(model, train.make_optimizer("adam", 1e-3), jax.random.PRNGKey(0),
                                         jnp.zeros((1, 28, 28, 1)))
        start, done, losses = time.perf_counter(), 0, []
        for epoch in range(1 + steps * batch_size // len(train_set)):
            for images, labels in data.batches(train_set, batch_size, seed=0, epoch=epoch, drop_remainder=True):
                if done == steps:
                    break
                state, metrics = train.train_step(state, data.normalize(images, mean, std), jnp.asarray(labels))
                losses.append(metrics["loss"])
                done += 1
        final_loss = float(np.mean(jax.device_get(losses[-50:])))
        evaluation = {"loss": 0.0, "accuracy": 0.0}
        for start_row in range(0, eval_images, 1000):
            rows = slice(start_row, min(start_row + 1000, eval_images))
            metrics = train.eval_step(state, test_images[rows], test_labels[rows])
            weight = (rows.stop - rows.start) / eval_images
            evaluation = {k: evaluation[k] + weight * float(metrics[k]) for k in evaluation}
        param_dtypes = sorted({str(leaf.dtype) for leaf in jax.tree.leaves(state.params)})
        runs[dtype_name] = {
            "steps": done, "seconds": time.perf_counter() - start, "final_train_loss": final_loss,
            "test_accuracy": evaluation["accuracy"], "test_loss": evaluation["loss"],
            "param_dtypes": param_dtypes,
        }
    runs["accuracy_gap_points"] = 100 * (runs["float32"]["test_accuracy"] - runs["bfloat16"]["test_accuracy"])
    runs["ok"] = all(np.isfinite(runs[d]["final_train_loss"]) for d in ("float32", "bfloat16"))
    return runs


def bench(quick: bool, torch_device: str | None) -> list[dict]:
    from jaxcnn.bench import BenchSettings, format_report, run_benchmark

    runs = (("lenet5", (8,)),) if quick else BENCH_RUNS
    reports = []
    for name, batch_sizes in runs:
        settings = BenchSettings(
            models=(name,), batch_sizes=batch_sizes, with_torch=torch_device is not None,
            torch_device=torch_device or "cpu",
            **(dict(rounds=2, iterations=1, warmup=1, pause=0.0, matmul_size=64) if quick
               else dict(rounds=5, iterations=5, warmup=2, pause=0.0, matmul_size=8192)),
        )
        report = run_benchmark(settings)
        print(format_report(report), flush=True)
        reports.append(report)
    return reports


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for accelerator_check.json (created)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes for a CPU smoke run (fewer geometries, 30 steps, a tiny bench)")
    parser.add_argument("--no-bench", action="store_true", help="skip the benchmark part")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    result = {"environment": environment()}
    print(json.dumps(result["environment"], indent=1), flush=True)
    start = time.perf_counter()
    result["conv_agreement"] = conv_agreement(QUICK_GEOMETRIES if args.quick else GEOMETRIES)
    worst = {}
    for row in result["conv_agreement"]:
        key = (row["impl"], row["dtype"])
        worst[key] = max(worst.get(key, 0.0), row["y"], row["dx"], row["dw"])
    print(f"conv agreement ({time.perf_counter() - start:.0f} s): worst relative error per impl/dtype")
    for (impl, dtype), error in sorted(worst.items()):
        print(f"  {impl:7s} {dtype:9s} {error:.2e}  (tolerance {TOLERANCE[dtype]:.0e})")

    steps, batch, eval_images = (20, 32, 500) if args.quick else (600, 128, 10_000)
    result["training"] = training(steps, batch, eval_images)
    for dtype in ("float32", "bfloat16"):
        run = result["training"][dtype]
        print(f"training {dtype}: {run['steps']} steps in {run['seconds']:.1f} s, train loss "
              f"{run['final_train_loss']:.4f}, test accuracy {100 * run['test_accuracy']:.2f}% "
              f"(params {', '.join(run['param_dtypes'])})", flush=True)
    print(f"float32 - bfloat16 test accuracy: {result['training']['accuracy_gap_points']:+.2f} points")

    if not args.no_bench:
        torch_device = None
        if result["environment"]["torch"] is not None:
            torch_device = "cuda" if result["environment"]["torch_cuda"] else "cpu"
        result["bench"] = bench(args.quick, torch_device)

    ok = all(row["ok"] for row in result["conv_agreement"]) and result["training"]["ok"]
    result["ok"] = ok
    (out / "accelerator_check.json").write_text(json.dumps(result, indent=1))
    print(f"{'OK' if ok else 'FAILED'}: results in {out / 'accelerator_check.json'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
