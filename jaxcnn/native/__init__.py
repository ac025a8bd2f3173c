"""Native CPU kernels called from XLA through its FFI: oneDNN convolutions.

This package compiles a small C++ file, ``onednn_conv.cc``, against oneDNN
(the ``onednn-cpu-gomp`` and ``onednn-devel-cpu-gomp`` wheels, installed
with jaxcnn on x86-64 Linux) and jaxlib's FFI headers, and registers three
XLA custom-call targets: a 2-D convolution's forward pass, its input
gradient and its kernel gradient (NHWC activations, HWIO kernels, float32).
:mod:`jaxcnn.functional.conv_onednn` wraps them as differentiable JAX
primitives. Why: experiments/PERFORMANCE.md.

Built once per (source, jaxlib, oneDNN) version into
``$JAXCNN_NATIVE_DIR/<key>/`` (default ``~/.cache/jaxcnn/native``), with the
compiler's command and output (warnings included) in ``build.log`` beside
the library. Only :func:`build` compiles -- ``make`` runs it at install
through ``python -m jaxcnn.native`` -- never an import or a traced
convolution. :func:`available` only looks for a built library and loads it;
where there is none (not built yet, no C++ compiler, no oneDNN, another OS)
it is False, :func:`status` says why, and ``impl="auto"`` uses XLA's
convolution.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path

__all__ = ["available", "status", "build", "load", "Status", "TARGETS", "NativeBuildError"]

SOURCE = Path(__file__).with_name("onednn_conv.cc")
LIBRARY_NAME = "libjaxcnn_onednn.so"
BUILD_LOG_NAME = "build.log"
# XLA FFI handler symbols exported by onednn_conv.cc -> custom-call target names.
TARGETS = {
    "JaxcnnConvFwd": "jaxcnn_onednn_conv_fwd",
    "JaxcnnConvBwdData": "jaxcnn_onednn_conv_bwd_data",
    "JaxcnnConvBwdWeights": "jaxcnn_onednn_conv_bwd_weights",
}

_lock = threading.Lock()
_state: dict = {"loaded": False, "error": None, "path": None}


class NativeBuildError(RuntimeError):
    """The oneDNN kernels could not be built or loaded; the message says why."""


@dataclasses.dataclass(frozen=True)
class Status:
    """Whether the kernels are loaded: ``loaded`` and ``path`` (the .so), or ``reason`` why not.

    ``str(status)`` is the one line ``python -m jaxcnn.native`` prints;
    ``bool(status)`` is ``loaded``.
    """

    loaded: bool
    path: str | None = None
    reason: str | None = None

    def __bool__(self) -> bool:
        return self.loaded

    def __str__(self) -> str:
        if self.loaded:
            return f"oneDNN convolution kernels loaded from {self.path}"
        return f"oneDNN convolution kernels unavailable: {self.reason}"


def _onednn_prefix() -> Path:
    """The prefix holding oneDNN's ``include/oneapi/dnnl/dnnl.hpp`` and ``lib/libdnnl.so``.

    The oneDNN wheels install their headers and library under the Python
    environment's data prefix (``sys.prefix``: the venv); ``$JAXCNN_ONEDNN_PREFIX``
    points elsewhere (e.g. a system install in /usr).
    """
    candidates = [os.environ.get("JAXCNN_ONEDNN_PREFIX"), sysconfig.get_paths()["data"], sys.prefix]
    for candidate in candidates:
        if not candidate:
            continue
        prefix = Path(candidate)
        if (prefix / "include" / "oneapi" / "dnnl" / "dnnl.hpp").is_file() and any(
            (prefix / "lib").glob("libdnnl.so*")
        ):
            return prefix
    raise NativeBuildError(
        "oneDNN not found: install the onednn-cpu-gomp and onednn-devel-cpu-gomp wheels "
        "(pip install 'jaxcnn' pulls them in on x86-64 Linux) or set JAXCNN_ONEDNN_PREFIX "
        "to a prefix with include/oneapi/dnnl/dnnl.hpp and lib/libdnnl.so"
    )


def _build_key(prefix: Path) -> str:
    import jaxlib

    digest = hashlib.sha256(SOURCE.read_bytes())
    digest.update(jaxlib.__version__.encode())
    # The library's rpath points into this prefix: another venv needs its own build.
    digest.update(str(prefix.resolve()).encode())
    for library in sorted((prefix / "lib").glob("libdnnl.so*")):
        digest.update(library.name.encode())
        digest.update(str(library.stat().st_size).encode())
    return digest.hexdigest()[:16]


def _native_dir() -> Path:
    configured = os.environ.get("JAXCNN_NATIVE_DIR")
    if configured:
        return Path(configured)
    return Path.home() / ".cache" / "jaxcnn" / "native"


def library_path() -> Path:
    """Where the library for this source, jaxlib and oneDNN is (or would be) built.

    Raises :class:`NativeBuildError` on another platform or without oneDNN.
    """
    if not (sys.platform.startswith("linux") and os.uname().machine == "x86_64"):
        raise NativeBuildError(
            f"the oneDNN kernels are built for x86-64 Linux only, not {sys.platform}/"
            f"{os.uname().machine}"
        )
    return _native_dir() / _build_key(_onednn_prefix()) / LIBRARY_NAME


def build(*, force: bool = False) -> Path:
    """Compile ``onednn_conv.cc`` (if not already built for these versions); return the .so path.

    The compiler's command and output (warnings included) go to
    ``build.log`` beside the library. Raises :class:`NativeBuildError` with
    the reason (platform, missing oneDNN or compiler, the compiler's error
    output).
    """
    import jax

    library = library_path()
    if library.is_file() and not force:
        return library
    prefix = _onednn_prefix()
    compiler = os.environ.get("CXX", "g++")
    if shutil.which(compiler) is None:
        raise NativeBuildError(f"no C++ compiler: {compiler!r} is not on PATH (set CXX)")
    target_dir = library.parent
    target_dir.mkdir(parents=True, exist_ok=True)
    # Compile next to the target and rename: concurrent builds never see half a file.
    handle, partial = tempfile.mkstemp(suffix=".so.partial", dir=target_dir)
    os.close(handle)
    command = [
        compiler, "-O2", "-std=c++17", "-shared", "-fPIC", "-Wall",
        "-o", partial, str(SOURCE),
        f"-I{jax.ffi.include_dir()}", f"-I{prefix / 'include'}",
        f"-L{prefix / 'lib'}", "-ldnnl", f"-Wl,-rpath,{prefix / 'lib'}",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        (target_dir / BUILD_LOG_NAME).write_text(
            f"$ {' '.join(command)}\nexit status {result.returncode}\n{result.stdout}{result.stderr}")
        if result.returncode != 0:
            raise NativeBuildError(
                f"compiling {SOURCE.name} failed ({' '.join(command)}):\n{result.stderr[-2000:]}"
            )
        os.replace(partial, library)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return library


def load() -> bool:
    """Load and register an already built library once; True when the kernels are usable.

    Never compiles (see :func:`build`) and never raises: a failure is
    remembered and reported by :func:`status`.
    """
    with _lock:
        if _state["loaded"] or _state["error"] is not None:
            return _state["loaded"]
        try:
            import jax

            path = library_path()
            if not path.is_file():
                raise NativeBuildError(
                    f"not built for this jaxlib and oneDNN (no {path}); build them with "
                    "`python -m jaxcnn.native`")
            library = ctypes.cdll.LoadLibrary(str(path))
            for symbol, target in TARGETS.items():
                jax.ffi.register_ffi_target(
                    target, jax.ffi.pycapsule(getattr(library, symbol)), platform="cpu"
                )
        except (NativeBuildError, OSError, AttributeError) as error:
            _state["error"] = str(error)
            return False
        _state["loaded"], _state["path"] = True, str(path)
        return True


def available() -> bool:
    """True when the oneDNN convolution kernels are built, and now loaded and registered.

    Only looks: a library that is not built stays unbuilt (:func:`build`).
    """
    return load()


def status() -> Status:
    """Whether the kernels are loaded (after :func:`load`), where from, or why not."""
    if load():
        return Status(loaded=True, path=_state["path"])
    return Status(loaded=False, reason=_state["error"])
