"""Every public function of :mod:`jaxcnn.functional` names itself in its ValueErrors.

Argument checks live in shared helpers (``args``, ``pool_geometry``, ...)
that do not know which public function called them; :func:`name_errors` wraps
a public function so that a ValueError leaving it starts with its name, e.g.
``"conv2d: stride must be >= 1 in every dimension, got 0"``. A message that
already starts with the name is left alone. The checks run on static shapes
and Python values, so the wrapper acts at trace time too (under ``jit``); the
wrapper adds nothing to the traced computation.
"""
from __future__ import annotations

import functools
import inspect
from types import ModuleType


def name_errors(function, name: str | None = None):
    """``function`` with ValueError messages prefixed by ``name`` (default: its ``__name__``)."""
    name = name or function.__name__

    @functools.wraps(function)
    def named(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ValueError as error:
            message = str(error)
            if not (message.startswith(f"{name}:") or message.startswith(f"{name} ")):
                error.args = (f"{name}: {message}", *error.args[1:])
            raise

    named.__wrapped_for_errors__ = function
    return named


def name_public_errors(namespace: dict, names, module: ModuleType | None = None) -> None:
    """Wrap each plain function among ``names`` in ``namespace`` (and on ``module``) with :func:`name_errors`."""
    for public in names:
        value = namespace.get(public)
        if inspect.isfunction(value) and not hasattr(value, "__wrapped_for_errors__"):
            wrapped = name_errors(value, public)
            namespace[public] = wrapped
            if module is not None:
                setattr(module, public, wrapped)
