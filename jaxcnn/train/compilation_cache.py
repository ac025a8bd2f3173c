"""JAX's persistent compilation cache, as the ``jaxcnn`` command uses it.

A second run of the same command (same model, batch, devices, jax version)
loads the compiled train and eval steps from disk instead of compiling them
again. ``jaxcnn train`` turns the cache on by default in
:func:`default_directory`; ``--compilation-cache DIR`` moves it and
``--compilation-cache off`` (or ``JAXCNN_COMPILATION_CACHE=off``) turns it
off. Library code never turns it on: a
script that wants it calls :func:`enable` itself (it is a process-wide JAX
setting, like the cache directory options it sets).
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_directory", "directory_for", "enable", "MIN_COMPILE_SECONDS"]

# Programs that compile faster than this are not written (the preprocessing and
# metric helpers): reading them back would save nothing.
MIN_COMPILE_SECONDS = 0.2


def default_directory() -> Path:
    """``$XDG_CACHE_HOME/jaxcnn/xla`` (``~/.cache/jaxcnn/xla`` when it is not set)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "jaxcnn" / "xla"


def directory_for(setting: str | None) -> Path | None:
    """The cache directory a ``--compilation-cache`` setting names; None means off.

    Args:
      setting: a directory, ``"off"``, or None for ``$JAXCNN_COMPILATION_CACHE``
        (a directory or ``off``) and, when that is unset, :func:`default_directory`.
    """
    if setting is None:
        setting = os.environ.get("JAXCNN_COMPILATION_CACHE") or None
    if setting is None:
        return default_directory()
    if setting.strip().lower() == "off":
        return None
    return Path(setting).expanduser()


def enable(directory: str | Path) -> Path:
    """Keep compiled XLA programs in ``directory`` (created if missing) for later processes.

    Returns the directory as an absolute path. Raises OSError when it cannot
    be created. The cache's keys cover the program, the compiler options, the
    devices and the jax/jaxlib versions, so a stale entry is never used.
    """
    import jax

    directory = Path(directory).expanduser().absolute()
    directory.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory
