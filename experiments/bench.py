"""jaxcnn vs PyTorch on this machine: train/eval step throughput, GFLOP/s, compile time.

    python experiments/bench.py                      # lenet5 + resnet20, B=128 (~3 min on 2 cores)
    python experiments/bench.py --per-layer --json bench.json
    python experiments/bench.py --models resnet20 --batch-size 32,128 --rounds 11

The same as ``jaxcnn bench``; the logic lives in :mod:`jaxcnn.bench`.
Results and what was tried: experiments/PERFORMANCE.md.
"""
import sys

from jaxcnn.bench import main

if __name__ == "__main__":
    sys.exit(main())
