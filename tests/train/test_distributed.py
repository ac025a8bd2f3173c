"""Multi-process runs on JAX's distributed runtime, tested with real processes on loopback.

Every subprocess has a timeout, so a hung collective fails the test instead of CI.
The CLI runs (2 processes x 2 devices vs 1 process x 4 devices vs 1 device,
resume, evaluation in one process, a killed process ending the others, the
launcher stopping the others) are marked slow; the one-step equality runs in
`make test`.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from jaxcnn import data
from jaxcnn.cli import main
from jaxcnn.train import distributed, launcher

ROOT = Path(__file__).resolve().parents[2]
STEP_SCRIPT = Path(__file__).with_name("multiprocess_step.py")
SMALL_RUN = ["--model", "resnet20", "--dataset", "digits", "--train-examples", "512",
             "--test-examples", "256", "--batch-size", "64", "--eval-batch-size", "64",
             "--no-progress"]


def _env(devices: int) -> dict:
    env = dict(os.environ)
    env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
    env["PYTHONUNBUFFERED"] = "1"
    return env


# ------------------------------------------------------------ in-process units
@pytest.mark.parametrize("environ, expected", [
    ({}, None),
    ({"JAX_COORDINATOR_ADDRESS": "10.0.0.1:1234"}, "JAX_COORDINATOR_ADDRESS"),
    ({"TPU_WORKER_HOSTNAMES": "localhost"}, None),  # a single-host TPU VM (Colab)
    ({"TPU_WORKER_HOSTNAMES": "w0,w1,w2,w3"}, "a Cloud TPU pod slice"),
    ({"SLURM_NTASKS": "1"}, None),
    ({"SLURM_NTASKS": "8"}, "Slurm"),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, "Open MPI"),
])
def test_detected_cluster_reads_only_the_launchers_environment(environ, expected):
    assert distributed.detected_cluster(environ) == expected


@pytest.mark.parametrize("args, words", [
    (("127.0.0.1:1234", None, 0), "process_id; missing num_processes"),
    (("127.0.0.1", 2, 0), "coordinator must be HOST:PORT"),
    (("127.0.0.1:1234", 2, 2), "process_id must be an int in [0, 1]"),
    (("127.0.0.1:1234", 0, 0), "num_processes must be an int >= 1"),
    (("auto", 2, None), "coordinator 'auto' detects the process count"),
])
def test_initialize_rejects_incomplete_or_bad_settings(args, words):
    with pytest.raises(ValueError) as error:
        distributed.initialize(*args)
    assert words in str(error.value)


def test_initialize_without_settings_or_cluster_stays_one_process(monkeypatch):
    for variable in ("JAX_COORDINATOR_ADDRESS", "MEGASCALE_COORDINATOR_ADDRESS",
                     "TPU_WORKER_HOSTNAMES", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE"):
        monkeypatch.delenv(variable, raising=False)
    assert distributed.initialize() is False
    assert distributed.is_main_process()


def test_initialize_after_jax_started_says_the_runtime_must_come_first():
    import jax

    jax.devices()  # this test process has started its devices
    with pytest.raises(ValueError, match="initialize the multi-process runtime first"):
        distributed.initialize("127.0.0.1:1234", 2, 0)


def test_local_rows_of_one_process_are_the_whole_batch():
    from jaxcnn.train.executors import Sharded
    from jaxcnn import models

    executor = Sharded(models.get("lenet5", num_classes=10), 4)
    assert executor.local_rows(64) == slice(0, 64)
    assert "processes" not in executor.description


def test_batches_rows_split_every_batch_into_the_processes_parts():
    dataset = data.load("digits", "train").subset(slice(0, 100))
    whole = list(data.batches(dataset, 20, seed=3, epoch=1, drop_remainder=True))
    halves = [list(data.batches(dataset, 20, seed=3, epoch=1, drop_remainder=True,
                                rows=slice(start, start + 10))) for start in (0, 10)]
    assert len(whole) == len(halves[0]) == 5
    for (images, labels), first, second in zip(whole, *halves):
        np.testing.assert_array_equal(images, np.concatenate([first[0], second[0]]))
        np.testing.assert_array_equal(labels, np.concatenate([first[1], second[1]]))
    with pytest.raises(ValueError, match="rows must be a slice"):
        data.batches(dataset, 20, rows=[0, 1])


@pytest.mark.parametrize("command, words", [
    (["eval", "--workdir", "x"], "launch runs `jaxcnn train ...` in every process"),
    ([], "put it after --"),
    (["train", "--process-id", "1"], "remove --process-id"),
])
def test_launch_refuses_commands_it_cannot_run(command, words, capsys):
    assert main(["launch", "--processes", "2", "--", *command]) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_train_with_part_of_the_process_flags_is_a_one_line_usage_error(capsys):
    assert main(["train", "--coordinator", "127.0.0.1:1234", "--epochs", "1"]) == 2
    err = capsys.readouterr().err
    assert ("needs --coordinator (HOST:PORT of process 0) with --num-processes and "
            "--process-id; missing --num-processes and --process-id") in err
    assert len(err.strip().splitlines()) == 1


def test_launcher_drops_gloo_notices_and_prefixes_the_other_processes(tmp_path):
    source = tmp_path / "out"
    source.write_bytes(b"[Gloo] Rank 0 is connected to 3 peer ranks. Expected number of "
                       b"connected peer ranks is : 3\n[Gloo] Rank [Gloo] Rank 0 is connected\n"
                       b"1 is connected to 3 peer ranks. Expected\nerror: it broke\n\rpartial")
    sink = tmp_path / "sink"
    with open(source, "rb") as pipe, open(sink, "w") as out:
        launcher._forward(pipe, out, b"[process 1] ")
    assert sink.read_bytes() == b"[process 1] error: it broke\n[process 1] \rpartial"


# ------------------------------------------------------------- real processes
def _one_step(tmp_path, name: str, devices: int, processes: int = 1) -> dict:
    out = tmp_path / f"{name}.npz"
    if processes == 1:
        commands = [[sys.executable, str(STEP_SCRIPT), str(out), str(devices)]]
    else:
        coordinator = f"127.0.0.1:{launcher.free_port()}"
        commands = [[sys.executable, str(STEP_SCRIPT), str(out), str(devices), coordinator,
                     str(processes), str(index)] for index in range(processes)]
    running = [subprocess.Popen(command, env=_env(devices), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for command in commands]
    for process in running:
        output, _ = process.communicate(timeout=240)
        assert process.returncode == 0, output[-3000:]
    return dict(np.load(out))


def test_one_update_on_two_processes_equals_one_process_and_one_device(tmp_path):
    """ResNet-20 (batch norm synchronized over the global batch), SGD momentum, one step."""
    one_device = _one_step(tmp_path, "one_device", 1)
    four_devices = _one_step(tmp_path, "four_devices", 4)
    two_processes = _one_step(tmp_path, "two_processes", 2, processes=2)
    assert (int(two_processes["processes"]), int(two_processes["devices"])) == (2, 4)
    reference = one_device["after"] - one_device["before"]
    for result in (four_devices, two_processes):
        np.testing.assert_array_equal(result["before"], one_device["before"])
        update = result["after"] - result["before"]
        assert np.linalg.norm(update - reference) / np.linalg.norm(reference) < 1e-2
        assert abs(float(result["loss"]) - float(one_device["loss"])) < 1e-4
        # Random shifts of the assembled global batch draw what one device draws.
        assert float(result["augmented_checksum"]) == pytest.approx(
            float(one_device["augmented_checksum"]), rel=1e-6)


def _train_process(workdir, coordinator, index, *extra):
    command = [sys.executable, "-m", "jaxcnn", "train", *SMALL_RUN, "--workdir", str(workdir),
               "--devices", "2", "--coordinator", coordinator, "--num-processes", "2",
               "--process-id", str(index), *extra]
    return subprocess.Popen(command, env=_env(2), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_line(process, words: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        seen.append(line)
        if words in line:
            return line
    raise AssertionError(f"no line with {words!r} within {timeout} s; output: {''.join(seen)[-2000:]}")


@pytest.mark.slow
def test_killing_one_process_ends_the_other_with_the_runtimes_error(tmp_path):
    coordinator = f"127.0.0.1:{launcher.free_port()}"
    extra = ["--epochs", "50", "--heartbeat-timeout", "5"]
    first = _train_process(tmp_path / "run", coordinator, 0, *extra)
    second = _train_process(tmp_path / "run", coordinator, 1, *extra)
    try:
        _wait_for_line(first, "epoch 1/50", timeout=240)  # both are stepping together
        second.kill()
        killed_at = time.monotonic()
        _, err = first.communicate(timeout=120)
        waited = time.monotonic() - killed_at
    finally:
        for process in (first, second):
            if process.poll() is None:
                process.kill()
    assert first.returncode != 0
    assert "another task died" in err, err[-3000:]
    assert waited < 120


# ----------------------------------------------------- CLI runs (slow tests)
def _metrics(workdir) -> list[dict]:
    return [json.loads(line) for line in Path(workdir, "metrics.jsonl").read_text().splitlines()]


def _cli(*args, timeout=600) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "jaxcnn", *args], env=_env(4),
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
def test_two_processes_train_like_one_process_resume_and_evaluate_in_one(tmp_path):
    run = ["train", *SMALL_RUN, "--schedule", "constant", "--optimizer", "sgd", "--lr", "0.05",
           "--momentum", "0.9"]
    launch = ["launch", "--processes", "2", "--devices-per-process", "2", "--"]
    two = _cli(*launch, *run, "--epochs", "2", "--workdir", str(tmp_path / "two"))
    assert "4 devices in 2 processes" in two.stdout
    assert "[Gloo]" not in two.stdout + two.stderr and "[process 1]" not in two.stderr
    assert two.stdout.count("epoch 2/2") == 1  # process 0 alone logs
    _cli(*run, "--epochs", "2", "--devices", "4", "--parallel", "sharded",
         "--workdir", str(tmp_path / "four"))
    _cli(*run, "--epochs", "2", "--devices", "1", "--workdir", str(tmp_path / "one"))
    reference = _metrics(tmp_path / "one")
    for name in ("two", "four"):
        for record, expected in zip(_metrics(tmp_path / name), reference, strict=True):
            assert record["train_loss"] == pytest.approx(expected["train_loss"], rel=2e-3)
            assert record["test_accuracy"] == pytest.approx(expected["test_accuracy"], abs=2 / 256)

    # Resume with the same process count: 1 epoch, then --resume to 2 = the uninterrupted run.
    _cli(*launch, *run, "--epochs", "1", "--workdir", str(tmp_path / "resumed"))
    resumed = _cli(*launch, *run, "--epochs", "2", "--workdir", str(tmp_path / "resumed"),
                   "--resume")
    assert "resuming at epoch 2" in resumed.stdout
    for record, expected in zip(_metrics(tmp_path / "resumed"), _metrics(tmp_path / "two"),
                                strict=True):
        assert record["train_loss"] == pytest.approx(expected["train_loss"], rel=1e-6)
        assert record["test_loss"] == pytest.approx(expected["test_loss"], rel=1e-6)

    # The checkpoint of 2 processes restores in one process (jaxcnn eval).
    evaluated = _cli("eval", "--workdir", str(tmp_path / "two"))
    last = _metrics(tmp_path / "two")[-1]
    assert f"accuracy {100 * last['test_accuracy']:.2f}%" in evaluated.stdout
    assert f"loss {last['test_loss']:.4f}" in evaluated.stdout


@pytest.mark.slow
def test_launch_stops_the_others_when_one_process_dies(tmp_path):
    command = [sys.executable, "-m", "jaxcnn", "launch", "--processes", "2",
               "--devices-per-process", "2", "--", "train", *SMALL_RUN, "--epochs", "50",
               "--workdir", str(tmp_path / "run")]
    launched = subprocess.Popen(command, env=_env(2), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        _wait_for_line(launched, "epoch 1/50", timeout=240)
        children = subprocess.run(["ps", "-ww", "-o", "pid=,args=", "--ppid", str(launched.pid)],
                                  capture_output=True, text=True).stdout.splitlines()
        victim = next(int(line.split()[0]) for line in children if "--process-id 1" in line)
        os.kill(victim, signal.SIGKILL)
        _, err = launched.communicate(timeout=60)
    finally:
        if launched.poll() is None:
            os.killpg(launched.pid, signal.SIGKILL)
    assert launched.returncode == 128 + signal.SIGKILL
    assert f"process 1 exited with status {128 + signal.SIGKILL}; stopping the other 1" in err


@pytest.mark.parametrize("changes, words", [
    ({"parallel": "pmap"}, "parallel 'pmap' runs in one process only, use --parallel sharded"),
    ({"api": "nnx"}, "api 'nnx' runs in one process only, use --api linen"),
    ({"batch_size": 34}, "batch_size 34 must be divisible by the devices of all processes "
                         "(2 processes x 2 devices = 4)"),
])
def test_a_multi_process_run_refuses_what_only_one_process_can_do(monkeypatch, changes, words):
    import jax

    from jaxcnn import models
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.executors import make_executor

    monkeypatch.setattr(jax, "process_count", lambda: 2)
    config = TrainConfig(model="lenet5", dataset="digits", devices=2, batch_size=32,
                         eval_batch_size=32).replace(**changes)
    with pytest.raises(ValueError) as error:
        make_executor(config, models.get("lenet5", num_classes=10))
    assert words in str(error.value)
