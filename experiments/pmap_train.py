"""Data-parallel training over several devices: `jax.pmap` or `jax.jit` over a device mesh.

    python experiments/pmap_train.py                         # all local devices, pmap
    python experiments/pmap_train.py --parallel sharded      # jit + NamedSharding instead
    python experiments/pmap_train.py --devices 4 --smoke     # CPU: 4 simulated devices, ~1 min

On a TPU or multi-GPU host this trains the CIFAR-10 ResNet-20 recipe
(experiments/cifar10_resnet20.py) with the global batch of 128 split evenly
over the devices: gradients are averaged across devices and batch norm uses
the statistics of the global batch (pmap: the model's BatchNorm gets
``axis_name="batch"``; sharded: XLA's partitioner makes the batch mean global),
so the result matches a one-device run up to float reordering. Checkpoints are
saved from one copy and restore on any number of devices (--resume).

On a CPU-only machine ``--devices N`` makes XLA expose N host devices
(XLA_FLAGS=--xla_force_host_platform_device_count=N, set before JAX starts);
they share the same cores, so this shows the mechanics, not a speed-up.
--smoke runs the recipe for 2 epochs of 8 steps of 32 images on scikit-learn's
8x8 digits (or on CIFAR-10 files with --data-dir).
"""
from __future__ import annotations

import argparse
import os
import sys

HOST_DEVICE_FLAG = "--xla_force_host_platform_device_count"


def _requested_devices(argv: list[str]) -> int | None:
    # Read --devices before anything imports JAX: the flag must be in XLA_FLAGS
    # before the CPU backend starts.
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--devices", type=int, default=None)
    return parser.parse_known_args(argv)[0].devices


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    devices = _requested_devices(argv)
    if devices and devices > 1 and HOST_DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" {HOST_DEVICE_FLAG}={devices}").strip()

    import jax

    try:
        from experiments import cifar10_resnet20
        from experiments._runner import run_recipe
    except ImportError:  # run as a script: experiments/ is on sys.path
        import cifar10_resnet20
        from _runner import run_recipe

    def extra_arguments(parser):
        parser.add_argument("--devices", type=int, default=None,
                            help="number of devices (default: all local devices)")
        parser.add_argument("--parallel", choices=("pmap", "sharded"), default="pmap",
                            help="pmap, or jit over a sharded device mesh (default: pmap)")
        parser.add_argument("--data-dir", default=None, help="directory with the CIFAR-10 files")

    def adjust(config, args):
        if args.smoke:
            config = cifar10_resnet20.smoke_config(config, args.data_dir)
        else:
            config = config.replace(data_dir=args.data_dir)
        return config.replace(devices=args.devices or jax.local_device_count(),
                              parallel=args.parallel)

    return run_recipe(cifar10_resnet20.get_config(), argv, description=__doc__,
                      default_workdir="runs/pmap_cifar10_resnet20", has_smoke=True,
                      extra_arguments=extra_arguments, adjust=adjust)


if __name__ == "__main__":
    sys.exit(main())
