"""The jaxcnn command's persistent compilation cache: a second run loads what the first compiled."""
import os
import subprocess
import sys

import pytest

from jaxcnn.train import compilation_cache

RUN = ["train", "--model", "lenet5", "--dataset", "digits", "--epochs", "1",
       "--train-examples", "256", "--test-examples", "128", "--batch-size", "64", "--no-progress"]


def test_directory_for_reads_the_flag_then_the_environment_then_the_default(monkeypatch, tmp_path):
    monkeypatch.delenv("JAXCNN_COMPILATION_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.directory_for(None) == tmp_path / "jaxcnn" / "xla"
    assert compilation_cache.directory_for("off") is None
    assert compilation_cache.directory_for("OFF") is None
    assert compilation_cache.directory_for(str(tmp_path / "c")) == tmp_path / "c"
    monkeypatch.setenv("JAXCNN_COMPILATION_CACHE", "off")
    assert compilation_cache.directory_for(None) is None
    monkeypatch.setenv("JAXCNN_COMPILATION_CACHE", str(tmp_path / "env"))
    assert compilation_cache.directory_for(None) == tmp_path / "env"
    assert compilation_cache.directory_for(str(tmp_path / "flag")) == tmp_path / "flag"


def _train(workdir, *flags, xdg_cache_home=None):
    env = {**os.environ, "JAXCNN_COMPILATION_CACHE": ""}
    if xdg_cache_home is not None:
        env["XDG_CACHE_HOME"] = str(xdg_cache_home)
    done = subprocess.run([sys.executable, "-m", "jaxcnn", *RUN, "--workdir", str(workdir), *flags],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_on_by_default_a_second_run_compiles_nothing_and_off_writes_nothing(tmp_path):
    cache = tmp_path / "xdg" / "jaxcnn" / "xla"  # the default folder under XDG_CACHE_HOME
    first = _train(tmp_path / "first", xdg_cache_home=tmp_path / "xdg")
    entries = sorted(path.name for path in cache.iterdir())
    assert any(name.startswith("jit_train_step-") for name in entries), entries
    assert any(name.startswith("jit_eval_step-") for name in entries), entries
    modified = {path.name: path.stat().st_mtime_ns for path in cache.iterdir()}
    # The same folder named by the flag: everything is read back, nothing written.
    second = _train(tmp_path / "second", "--compilation-cache", str(cache),
                    xdg_cache_home=tmp_path / "elsewhere")
    assert {path.name: path.stat().st_mtime_ns for path in cache.iterdir()} == modified
    assert not (tmp_path / "elsewhere" / "jaxcnn").exists()
    epoch_line = [[line for line in out.splitlines() if line.startswith("epoch 1/1")][0]
                  for out in (first, second)]
    assert epoch_line[0].split("|")[:2] == epoch_line[1].split("|")[:2]  # the same numbers
    _train(tmp_path / "off", "--compilation-cache", "off", xdg_cache_home=tmp_path / "xdg_off")
    assert not (tmp_path / "xdg_off" / "jaxcnn").exists()
