"""XLA compiler options for the jitted train and eval steps, chosen by measurement on XLA:CPU.

jaxlib 0.10's XLA:CPU hands a convolution to YNNPACK when it has more than 16
input or output features, and uses XLA's own (Eigen) convolution otherwise.
The kernel gradient of a convolution is itself a convolution whose "features"
are the batch size, so at batch 128 every kernel gradient goes to YNNPACK,
where it was slower than Eigen's on every conv layer measured. The option
below keeps YNNPACK for matrix products and reductions only; YNNPACK's
elementwise fusions are left out as well (they swallowed a convolution
followed by a bias add, and split XLA's loop fusions into more passes over
memory). A YNNPACK reduction fusion may still take the convolution that
consumes it (a max pool followed by a conv); the kernel gradients never go
there. The measurements: experiments/PERFORMANCE.md, "Train and eval steps
compiled without YNNPACK convolutions".

The options are DebugOptions of this XLA version: with a jaxlib whose
``major.minor`` is not in :data:`TESTED_JAXLIB` they are left out (an unknown
option name would make compilation fail), and the step compiles with XLA's
defaults. They only concern the CPU backend; other backends ignore them.
"""
from __future__ import annotations

__all__ = ["TESTED_JAXLIB", "step_compiler_options"]

# jaxlib (major, minor) versions on which the option below exists and was measured.
TESTED_JAXLIB = ((0, 10),)

# YNNPACK for dots and reductions; convolutions and elementwise loops stay with XLA.
_YNN_WITHOUT_CONVOLUTIONS = {
    "xla_cpu_experimental_ynn_fusion_type": (
        "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT,LIBRARY_FUSION_TYPE_REDUCE"
    ),
}


def _jaxlib_version(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def step_compiler_options(jaxlib_version: str | None = None) -> dict:
    """``compiler_options`` for ``jax.jit`` of a train or eval step (``{}`` = XLA's defaults).

    Args:
      jaxlib_version: a version string such as ``"0.10.2"``; default: the
        installed jaxlib's. Options are only returned for :data:`TESTED_JAXLIB`.

    Returns a new dict each call (safe to modify).
    """
    if jaxlib_version is None:
        import jaxlib

        jaxlib_version = jaxlib.__version__
    if _jaxlib_version(jaxlib_version) not in TESTED_JAXLIB:
        return {}
    return dict(_YNN_WITHOUT_CONVOLUTIONS)
