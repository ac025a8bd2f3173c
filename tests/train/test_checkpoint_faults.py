"""Checkpoints under faults: kill -9 inside a save, disk full and permission denied
while saving (OS errors injected where Orbax finalises a checkpoint), and a resume
with a different model, dataset or optimizer. Each keeps what was saved.

Runs LeNet-5 on 320 of the 8x8 digits: 5 steps of 64, a checkpoint every 2 steps
(steps 2, 4 and 5 at the epoch end).
"""
from __future__ import annotations

import errno
import json
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from jaxcnn.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from jaxcnn.train.config import TrainConfig

RUN = ["train", "--dataset", "digits", "--epochs", "1", "--batch-size", "64",
       "--train-examples", "320", "--test-examples", "64", "--checkpoint-every", "2",
       "--no-progress"]
CONFIG = TrainConfig(dataset="digits", epochs=1, batch_size=64, train_examples=320,
                     test_examples=64, checkpoint_every_steps=2)


def _steps_on_disk(workdir) -> list[int]:
    return sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())


def fail_finalize_of_step(monkeypatch, step: int, error: OSError):
    """Make Orbax's last act of saving ``step`` (renaming its temporary directory) raise ``error``."""
    from orbax.checkpoint._src.path import atomicity

    real = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self, *args, **kwargs):
        if str(self.get()).endswith(f"/{step}.orbax-checkpoint-tmp"):
            raise error
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)


KILL_INSIDE_SAVE = textwrap.dedent("""
    import json, os, signal, sys
    from orbax.checkpoint._src.path import atomicity
    from jaxcnn.train.config import TrainConfig
    from jaxcnn.train.loop import train_and_evaluate

    workdir, config, kill_step = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
    real = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize_or_die(self, *args, **kwargs):
        path = str(self.get())
        if path.endswith("/" + kill_step + ".orbax-checkpoint-tmp"):
            # Every array and the metadata of this checkpoint are written; the
            # rename that completes it has not happened: kill -9 here.
            print("killed while finalizing", path, flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return await real(self, *args, **kwargs)

    atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die
    train_and_evaluate(TrainConfig(**config), workdir, progress=False)
""")


@pytest.mark.slow  # two subprocesses, each compiling LeNet-5: ~40 s
def test_kill_9_inside_a_checkpoint_save_leaves_the_previous_one_usable(tmp_path):
    killed = subprocess.run(
        [sys.executable, "-c", KILL_INSIDE_SAVE, str(tmp_path), json.dumps(CONFIG.to_dict()), "4"],
        capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert "killed while finalizing" in killed.stdout and "/4.orbax-checkpoint-tmp" in killed.stdout
    assert _steps_on_disk(tmp_path) == [2]  # the half-saved step 4 is not listed
    resumed = subprocess.run(
        [sys.executable, "-m", "jaxcnn", "train", "--workdir", str(tmp_path), "--resume",
         "--no-progress"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming at epoch 1, batch 2 (step 2)" in resumed.stdout
    assert resumed.stderr.strip() == ""  # no third-party warnings on a normal run
    assert _steps_on_disk(tmp_path) == [2, 4, 5]


@pytest.mark.slow  # the first case compiles LeNet-5's steps for this config: ~30 s
@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "No space left on device"),
                                         (errno.EACCES, "Permission denied")])
def test_an_os_error_while_saving_is_one_line_exit_1_and_keeps_what_was_saved(
        capsys, monkeypatch, tmp_path, code, words):
    workdir = tmp_path / "run"
    fail_finalize_of_step(monkeypatch, 4, OSError(code, words, str(workdir / "checkpoints" / "4")))
    status = main([*RUN, "--workdir", str(workdir)])
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    assert ": 1 epoch x 5 steps of 64, adam" in out  # not "1 epochs"
    assert "Traceback" not in err and "absl" not in err
    assert len(err.strip().splitlines()) == 1, err
    assert re.fullmatch(
        rf"jaxcnn train: error: \[Errno {code}\] cannot write a checkpoint in \S+/checkpoints: "
        rf"{words} \(\S+/4\); the checkpoints already written \(steps 2\) are kept; fix it, "
        rf"then continue with: jaxcnn train --workdir {re.escape(str(workdir))} --resume",
        err.strip()), err
    assert _steps_on_disk(workdir) == [2]
    monkeypatch.undo()
    status = main(["train", "--workdir", str(workdir), "--resume", "--no-progress"])
    out, err = capsys.readouterr()
    assert status == EXIT_OK, err
    assert "resuming at epoch 1, batch 2 (step 2)" in out
    assert _steps_on_disk(workdir) == [2, 4, 5]


def test_debug_shows_the_traceback(capsys, monkeypatch, tmp_path):
    fail_finalize_of_step(monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device"))
    status = main(["--debug", *RUN, "--workdir", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert status == EXIT_FAILED
    assert "Traceback (most recent call last)" in err and "CheckpointWriteError" in err
    assert err.strip().splitlines()[-1].startswith("jaxcnn train: error: [Errno 28] cannot write")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("finished")
    assert main([*RUN, "--workdir", str(workdir)]) == EXIT_OK
    return workdir


@pytest.mark.parametrize("flag, value, saved", [("--model", "lenet5_adaptive", "'lenet5'"),
                                                ("--dataset", "mnist", "'digits'"),
                                                ("--optimizer", "sgd", "'adam'")])
def test_resume_with_another_model_dataset_or_optimizer_is_refused_naming_it(
        capsys, finished_run, flag, value, saved):
    capsys.readouterr()
    status = main(["train", "--workdir", str(finished_run), "--resume", flag, value])
    err = capsys.readouterr().err
    assert status == EXIT_USAGE
    assert err.strip() == (f"jaxcnn train: error: cannot change {flag} (saved {saved}, given "
                           f"'{value}') when resuming {finished_run}")
