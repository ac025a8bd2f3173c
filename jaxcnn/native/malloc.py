"""Keep freed memory in the process instead of returning it to the OS each train step.

XLA:CPU allocates a step's temporary buffers as ONE block with ``malloc``
on every execution, from one of its worker threads, and frees it at the
end. glibc serves a worker thread from a per-thread arena whose heaps are
at most 64 MiB, so a bigger block is always a fresh ``mmap`` and its
``munmap`` at ``free`` (whatever the mmap threshold), and the next step
touches fresh pages again: page faults on every step (measurements:
experiments/PERFORMANCE.md, "malloc").

:func:`keep_freed_memory` sets, with ``mallopt``: one malloc arena for all
threads (so big blocks come from the main heap), and mmap and trim
thresholds of 1 GiB (so freed blocks stay in the heap for the next step).
It is a process-wide setting, so nothing applies it on import: the entry
points that own the process do -- the ``jaxcnn`` command,
:func:`jaxcnn.train.loop.train_and_evaluate` and the benchmark -- and a script
that runs jitted steps itself calls it first thing::

    from jaxcnn.native.malloc import keep_freed_memory
    keep_freed_memory()    # before JAX starts its threads

``JAXCNN_MALLOC_TUNING=0`` turns every call into a no-op. Threads that
already allocated before the call keep their arenas, so call it before
running JAX computations. The costs: the process's resident memory stays
near its peak, as with any caching allocator, and threads share one malloc
lock (XLA allocates a few large blocks per step; Python's small objects do
not go through malloc).
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
_M_ARENA_MAX = -8

# Blocks below this come from the heap (reusable) instead of a fresh mmap.
MMAP_THRESHOLD_BYTES = 1 << 30
# Free memory at the top of the heap is only returned to the OS above this.
TRIM_THRESHOLD_BYTES = 1 << 30

_applied: dict = {}


def keep_freed_memory() -> bool:
    """One malloc arena, and glibc's mmap and trim thresholds at 1 GiB; once per process.

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
            result = all([
                mallopt(_M_ARENA_MAX, 1),
                mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES),
                mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES),
            ])
    _applied["result"] = result
    return result
