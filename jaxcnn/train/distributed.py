"""Several processes, one run: JAX's multi-controller runtime (``jax.distributed``).

Every process runs the same program on its own devices (a TPU pod slice's
workers, several GPU hosts, or local processes on loopback for tests)::

    from jaxcnn.train import distributed
    distributed.initialize("10.0.0.1:1234", num_processes=2, process_id=0)  # before any jax work
    train_and_evaluate(config, workdir)   # the same call in every process

After :func:`initialize`, ``jax.devices()`` lists every process's devices and
``jax.local_devices()`` this process's. The sharded executor
(:class:`jaxcnn.train.executors.Sharded`) then spans a mesh of every
process's first ``config.devices`` local devices: each process reads only its
rows of every global batch (:func:`local_rows`; the rows follow from the
mesh, the batch order from seed and epoch only), the global batch is
assembled with ``jax.make_array_from_process_local_data``, and the jitted
step runs on all devices with the gradient all-reduce and batch-norm
statistics over the global batch. Orbax writes checkpoints with every process
taking part (one directory, which must be visible to all hosts). Process 0
alone writes ``config.json``, ``metrics.jsonl``, ``curves.png`` and the
progress bar.

The runtime watches every process: when one dies, the others stop with
"Terminating process because the JAX distributed service detected fatal
errors ... another task died" once ``heartbeat_timeout_seconds`` have passed
without its heartbeat, rather than waiting for it forever.
"""
from __future__ import annotations

import os
import re

import jax

__all__ = ["initialize", "detected_cluster", "is_main_process", "local_rows"]

# The environment of the launchers whose settings jax.distributed.initialize() reads
# itself (coordinator, process count and index): a run started by one needs no flags.
_CLUSTER_SIGNALS = {
    "JAX_COORDINATOR_ADDRESS": "JAX_COORDINATOR_ADDRESS",
    "MEGASCALE_COORDINATOR_ADDRESS": "a multi-slice Cloud TPU",
    "TPU_WORKER_HOSTNAMES": "a Cloud TPU pod slice",
    "SLURM_NTASKS": "Slurm",
    "OMPI_COMM_WORLD_SIZE": "Open MPI",
}
_ADDRESS = re.compile(r"^\[?[A-Za-z0-9_.:-]+\]?:\d{1,5}$")


def detected_cluster(environ=None) -> str | None:
    """The multi-process launcher this process runs under, from its environment, or None.

    Recognised: ``JAX_COORDINATOR_ADDRESS`` (set by the user), a Cloud TPU pod
    slice (``TPU_WORKER_HOSTNAMES`` naming several workers) or multi-slice TPU
    (``MEGASCALE_COORDINATOR_ADDRESS``), Slurm (``SLURM_NTASKS`` > 1) and Open
    MPI (``OMPI_COMM_WORLD_SIZE`` > 1). Only the environment is read (no
    network query), so this is safe to call on a laptop or a Colab runtime.
    A GCE TPU VM pod whose workers lack those variables is named with
    ``initialize(coordinator="auto")`` instead.
    """
    environ = os.environ if environ is None else environ
    for variable, name in _CLUSTER_SIGNALS.items():
        value = environ.get(variable, "").strip()
        if not value:
            continue
        if variable == "TPU_WORKER_HOSTNAMES" and "," not in value:
            continue  # a single-host TPU VM (Colab): one process
        if variable in ("SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE") and (
                not value.isdigit() or int(value) < 2):
            continue
        return name
    return None


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    heartbeat_timeout_seconds: int = 100,
    initialization_timeout_seconds: int = 300,
) -> bool:
    """Join this process to a multi-process run; call it before any other JAX work.

    Args:
      coordinator: ``"HOST:PORT"`` of process 0 (which serves the runtime
        there); ``"auto"`` lets ``jax.distributed.initialize`` find everything
        (Cloud TPU pod metadata, Slurm, Open MPI); None with
        ``num_processes``/``process_id`` also None: join only when
        :func:`detected_cluster` finds a launcher, otherwise stay a single
        process.
      num_processes: how many processes take part (>= 1), with ``coordinator``.
      process_id: this process's index in ``[0, num_processes)``.
      heartbeat_timeout_seconds: a process silent this long counts as dead and
        the others terminate with the runtime's message (>= 1).
      initialization_timeout_seconds: how long to wait for every process to join.

    Returns:
      True when this process is now part of a multi-process run (the runtime
      was started), False when it stays alone.

    Raises:
      ValueError: a malformed address, counts out of range, only some of the
        three settings given, or JAX already started its devices (the runtime
        must come first).
      ConnectionError: the processes did not all join in time (a wrong
        address, a process that never started).

    On the CPU the processes' collectives go over Gloo (TCP), which XLA's CPU
    client needs for cross-process all-reduces; other platforms are unaffected.
    """
    explicit = (coordinator, num_processes, process_id)
    if coordinator == "auto":
        if num_processes is not None or process_id is not None:
            raise ValueError("coordinator 'auto' detects the process count and index itself; "
                             "drop num_processes/process_id (--num-processes/--process-id)")
    elif any(value is not None for value in explicit):
        _check_explicit(coordinator, num_processes, process_id)
    elif detected_cluster() is None:
        return False
    for name, value in (("heartbeat_timeout_seconds", heartbeat_timeout_seconds),
                        ("initialization_timeout_seconds", initialization_timeout_seconds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if jax.distributed.is_initialized():
        return jax.process_count() > 1
    from jax._src import xla_bridge  # no public API tells whether the devices started

    if xla_bridge.backends_are_initialized():
        raise ValueError(
            "JAX already started its devices in this process; initialize the multi-process "
            "runtime first (jaxcnn.train.distributed.initialize before any jax computation)")
    # Read by XLA's CPU client when it starts; without it a cross-process all-reduce
    # on the CPU has no transport.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {} if coordinator == "auto" else dict(
        coordinator_address=coordinator, num_processes=num_processes, process_id=process_id)
    try:
        jax.distributed.initialize(**kwargs, initialization_timeout=initialization_timeout_seconds,
                                   heartbeat_timeout_seconds=heartbeat_timeout_seconds)
    except (RuntimeError, ValueError) as error:  # XlaRuntimeError is a RuntimeError
        where = ("the cluster jax detected" if coordinator == "auto" else
                 f"{coordinator} as process {process_id} of {num_processes}")
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ConnectionError(
            f"could not join the multi-process run at {where} within "
            f"{initialization_timeout_seconds} s: {first_line}") from error
    return jax.process_count() > 1


def _check_explicit(coordinator, num_processes, process_id) -> None:
    missing = [name for name, value in (("coordinator", coordinator),
                                        ("num_processes", num_processes),
                                        ("process_id", process_id)) if value is None]
    if missing:
        raise ValueError(f"a multi-process run needs coordinator (HOST:PORT of process 0) with "
                         f"num_processes and process_id; missing {' and '.join(missing)}")
    if not isinstance(coordinator, str) or not _ADDRESS.match(coordinator):
        raise ValueError(f"coordinator must be HOST:PORT such as 10.0.0.1:1234 (process 0's "
                         f"address), got {coordinator!r}")
    if isinstance(num_processes, bool) or not isinstance(num_processes, int) or num_processes < 1:
        raise ValueError(f"num_processes must be an int >= 1, got {num_processes!r}")
    if (isinstance(process_id, bool) or not isinstance(process_id, int)
            or not 0 <= process_id < num_processes):
        raise ValueError(f"process_id must be an int in [0, {num_processes - 1}] "
                         f"(num_processes {num_processes}), got {process_id!r}")


def is_main_process() -> bool:
    """True in process 0 (the one that writes logs, plots and progress bars), and when alone."""
    return jax.process_index() == 0


def local_rows(sharding, batch_size: int) -> slice:
    """The rows of a ``(batch_size, ...)`` global batch that this process's devices hold.

    Args:
      sharding: the batch's sharding, split along its first axis (e.g.
        ``NamedSharding(mesh, PartitionSpec("batch"))``).
      batch_size: the global batch size.

    Returns:
      ``slice(start, stop)``: one contiguous block (all rows in a single
      process). The block follows from the mesh's device order, which is how
      ``jax.make_array_from_process_local_data`` places this process's data.

    Raises:
      ValueError: this process's devices hold rows that are not one block.
    """
    blocks = sorted({
        (index[0].start or 0, batch_size if index[0].stop is None else index[0].stop)
        for index in sharding.addressable_devices_indices_map((batch_size,)).values()})
    for (_, stop), (next_start, _) in zip(blocks, blocks[1:]):
        if next_start != stop:
            raise ValueError(f"this process's devices hold rows {blocks} of a batch of "
                             f"{batch_size}, not one contiguous block")
    return slice(blocks[0][0], blocks[-1][1])
