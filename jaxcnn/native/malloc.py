"""Keep freed memory in the process instead of returning it to the OS each train step.

XLA:CPU allocates a train step's temporary buffers with ``malloc`` on every
execution and frees them at the end. glibc returns large blocks to the
kernel at once (``mmap``/``munmap`` above a threshold, heap trimming above
another), so the next step touches fresh pages again: measured with
``getrusage`` on the project's 2-core machine, the LeNet-5 train step
(batch 128) took 8,800 page faults per step and 47-52 ms; with the two
thresholds raised it took 3,500 faults and 30-33 ms (PyTorch, in the same
process, is unaffected or gains too). :func:`keep_freed_memory` raises them
with ``mallopt``; ``import jaxcnn.train`` calls it once unless
``JAXCNN_MALLOC_TUNING=0``. The cost is that the process's resident memory
stays near its peak, as with any caching allocator.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["keep_freed_memory", "MMAP_THRESHOLD_BYTES", "TRIM_THRESHOLD_BYTES"]

# glibc's mallopt parameter numbers (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

# Blocks below this come from the heap (reusable) instead of a fresh mmap.
MMAP_THRESHOLD_BYTES = 1 << 30
# Free memory at the top of the heap is only returned to the OS above this.
TRIM_THRESHOLD_BYTES = 1 << 30

_applied: dict = {}


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB, once per process.

    Returns True if they were set (now or by an earlier call), False where
    there is no glibc (macOS, Windows, musl) or ``JAXCNN_MALLOC_TUNING=0``.
    """
    if "result" in _applied:
        return _applied["result"]
    result = False
    if os.environ.get("JAXCNN_MALLOC_TUNING", "1") != "0" and sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            mallopt = None
        if mallopt is not None:
            result = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
            )
    _applied["result"] = result
    return result
