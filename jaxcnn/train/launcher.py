"""``jaxcnn launch``: start a multi-process run as N local processes on loopback.

    jaxcnn launch --processes 2 --devices-per-process 2 -- train --model resnet20 --dataset digits

For tests and demos of the multi-process path on one machine: each process
is ``python -m jaxcnn train ... --coordinator 127.0.0.1:PORT --num-processes N
--process-id I`` with a free port, and on the CPU ``--devices-per-process K``
simulated host devices. On real hosts (a TPU pod slice, several GPU machines)
run the ``jaxcnn train`` command on every host instead (see
``experiments/README.md``, "Several hosts").

Process 0's output passes through unchanged; the other processes' lines
(errors only: they do not log) are prefixed with ``[process I]``, and Gloo's
connection notices are dropped. When a process fails, the others are stopped
and its exit status is returned.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from jaxcnn.train.config import HOST_DEVICE_FLAG

__all__ = ["launch_local", "free_port"]

_RESERVED_FLAGS = ("--coordinator", "--num-processes", "--process-id")
# Printed by Gloo (XLA's CPU collectives) as each process connects; its threads'
# notices can interleave within one line.
_GLOO_NOTICE = re.compile(rb"\[Gloo\] Rank|connected to \d+ peer ranks")
# How long the others get to exit after a process failed, before they are killed.
_STOP_GRACE_SECONDS = 10.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def launch_local(
    processes: int,
    command: Sequence[str],
    *,
    devices_per_process: int | None = None,
    port: int | None = None,
    heartbeat_timeout: int | None = None,
    env: dict | None = None,
) -> int:
    """Run ``jaxcnn <command>`` as ``processes`` local processes of one run; returns an exit status.

    Args:
      processes: how many processes (>= 1).
      command: the jaxcnn command line after ``jaxcnn``, starting with
        ``train`` (e.g. ``["train", "--epochs", "1"]``); it must not hold
        ``--coordinator``, ``--num-processes`` or ``--process-id``.
      devices_per_process: CPU devices each process simulates (XLA's host
        platform flag); also passed as ``--devices`` unless ``command`` has it.
      port: the coordinator's port on 127.0.0.1; default: a free one.
      heartbeat_timeout: passed as ``--heartbeat-timeout`` (seconds).
      env: the processes' environment (default: this one's).

    Returns:
      0 when every process exited with 0; otherwise the status of the first
      process that failed (128 + signal number for a process killed by a
      signal); 130 after Ctrl-C.

    Raises:
      ValueError: bad counts, a command other than ``train``, or a reserved flag in it.
    """
    for name, value in (("processes", processes), ("devices_per_process", devices_per_process),
                        ("heartbeat_timeout", heartbeat_timeout), ("port", port)):
        if value is None and name != "processes":
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    command = list(command)
    if not command or command[0] != "train":
        raise ValueError(f"launch runs `jaxcnn train ...` in every process; got command "
                         f"{' '.join(command) or '(none)'!r}: put it after --, e.g. "
                         "jaxcnn launch --processes 2 -- train --epochs 1")
    reserved = [arg for arg in command
                if any(arg == flag or arg.startswith(flag + "=") for flag in _RESERVED_FLAGS)]
    if reserved:
        raise ValueError(f"launch sets {', '.join(_RESERVED_FLAGS)} itself; remove "
                         f"{', '.join(reserved)} from the command")
    base_env = dict(os.environ if env is None else env)
    base_env["PYTHONUNBUFFERED"] = "1"
    if devices_per_process is not None:
        kept = [flag for flag in base_env.get("XLA_FLAGS", "").split()
                if not flag.startswith(HOST_DEVICE_FLAG)]
        base_env["XLA_FLAGS"] = " ".join([*kept, f"{HOST_DEVICE_FLAG}={devices_per_process}"])
        if not any(arg == "--devices" or arg.startswith("--devices=") for arg in command):
            command += ["--devices", str(devices_per_process)]
    if heartbeat_timeout is not None:
        command += ["--heartbeat-timeout", str(heartbeat_timeout)]
    coordinator = f"127.0.0.1:{port or free_port()}"
    children, forwarders = [], []
    for index in range(processes):
        argv = [sys.executable, "-m", "jaxcnn", *command, "--coordinator", coordinator,
                "--num-processes", str(processes), "--process-id", str(index)]
        child = subprocess.Popen(argv, env=base_env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        children.append(child)
        prefix = b"" if index == 0 else f"[process {index}] ".encode()
        for pipe, out in ((child.stdout, sys.stdout), (child.stderr, sys.stderr)):
            forwarder = threading.Thread(target=_forward, args=(pipe, out, prefix), daemon=True)
            forwarder.start()
            forwarders.append(forwarder)
    try:
        status = _wait(children)
    except KeyboardInterrupt:
        _stop(children, signal.SIGINT)
        status = 130
    for forwarder in forwarders:
        forwarder.join(timeout=5)
    return status


def _wait(children: list[subprocess.Popen]) -> int:
    """Wait for every child; when one fails, stop the rest and return its status."""
    while True:
        codes = [child.poll() for child in children]
        failed = [(index, code) for index, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            index, code = failed[0]
            status = 128 - code if code < 0 else code
            alive = [child for child in children if child.poll() is None]
            if alive:
                print(f"jaxcnn launch: process {index} exited with status {status}; stopping "
                      f"the other {len(alive)}", file=sys.stderr, flush=True)
            _stop(alive, signal.SIGTERM)
            return status
        if all(code == 0 for code in codes):
            return 0
        time.sleep(0.1)


def _stop(children: list[subprocess.Popen], first_signal: int) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(first_signal)
    deadline = time.monotonic() + _STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def _forward(pipe, out, prefix: bytes) -> None:
    """Copy a child's output to ``out`` as it comes (progress bars too), minus Gloo's notices."""
    sink = out.buffer if hasattr(out, "buffer") else None

    def emit(text: bytes) -> None:
        if sink is not None:
            sink.write(text)
        else:
            out.write(text.decode(errors="replace"))
        out.flush()

    pending = b""
    while chunk := os.read(pipe.fileno(), 65536):
        pending += chunk
        *lines, pending = pending.split(b"\n")
        text = b"".join(prefix + line + b"\n" for line in lines if not _GLOO_NOTICE.search(line))
        # A partial line (a progress bar's "\r" update) goes out now, unless it may
        # be the start of a Gloo notice.
        if pending and not b"[Gloo]".startswith(pending[:6]):
            text, pending = text + prefix + pending, b""
        if text:
            emit(text)
    if pending and not _GLOO_NOTICE.search(pending):
        emit(prefix + pending)
    pipe.close()
