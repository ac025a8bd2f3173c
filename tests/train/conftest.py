"""Fixtures for the training tests."""
import contextlib

import pytest


@pytest.fixture
def count_host_reads(monkeypatch):
    """A counter of device-to-host reads of JAX arrays: ``with count_host_reads() as reads: ...``.

    JAX's transfer guard does not fire on the CPU backend (its arrays already
    live in host memory), so the tests count the reads instead: every
    ``float()``, ``bool()``, ``.tolist()``, ``jax.device_get`` and ``__array__``
    call on a ``jax.Array`` goes through ``ArrayImpl._value`` or
    ``ArrayImpl.__array__``, which this fixture wraps. ``reads.count`` is the
    number of reads inside the ``with`` block.
    """
    from jax._src import array

    state = {"active": False, "count": 0}
    original_value, original_array = array.ArrayImpl._value, array.ArrayImpl.__array__

    def value(self):
        state["count"] += state["active"]
        return original_value.fget(self)

    def as_array(self, *args, **kwargs):
        state["count"] += state["active"]
        return original_array(self, *args, **kwargs)

    monkeypatch.setattr(array.ArrayImpl, "_value", property(value))
    monkeypatch.setattr(array.ArrayImpl, "__array__", as_array)

    class Reads:
        @property
        def count(self):
            return state["count"]

    @contextlib.contextmanager
    def counting():
        state["active"], state["count"] = True, 0
        try:
            yield Reads()
        finally:
            state["active"] = False

    return counting
