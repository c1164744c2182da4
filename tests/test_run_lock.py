"""One run per output folder: a second run refuses naming the holder; a stale lock is taken over and said."""

import json
import logging
import subprocess
import sys

import pytest

from helpers import ROOT
from secml_recipes.run_lock import OutputDirLock, RunLocked
from secml_recipes.train.sft import main


@pytest.fixture
def other_process():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield proc
    proc.kill()
    proc.wait()


def _held_by(lock, pid):
    holder = {**lock.me, "pid": pid, "proc_start": None}
    lock.path.write_text(json.dumps(holder))


def test_a_second_run_is_refused_with_the_holders_pid_and_start(tmp_path, other_process):
    out = tmp_path / "out"
    _held_by(OutputDirLock(out), other_process.pid)
    with pytest.raises(RunLocked, match=rf"in use by another run \(pid {other_process.pid} on .*, started 20\d\d-"):
        OutputDirLock(out).acquire()


def test_a_lock_is_released_and_never_inside_the_output_folder(tmp_path):
    out = tmp_path / "out"
    with OutputDirLock(out) as lock:
        assert lock.path.exists() and lock.path.parent == tmp_path and not out.exists()
        with pytest.raises(RunLocked):
            OutputDirLock(out).acquire()  # this very process holds it: still one run per folder
    assert not lock.path.exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over_and_said(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    out = tmp_path / "out"
    _held_by(OutputDirLock(out), dead.pid)
    with caplog.at_level(logging.WARNING, logger="secml_recipes.run_lock"):
        lock = OutputDirLock(out).acquire()
    assert f"took over the lock of a run that is no longer running (pid {dead.pid}" in caplog.text
    lock.release()


def test_sft_refuses_a_locked_output_dir_before_reading_the_data(tiny_models, tmp_path, capsys, other_process):
    out = tmp_path / "o"
    _held_by(OutputDirLock(out), other_process.pid)
    rc = main(
        [
            str(ROOT / "recipes/tiny/specialist.yaml"),
            "--model_name_or_path",
            str(tiny_models["llama"]),
            "--dataset_path",
            str(tmp_path / "no-data.tar.gz"),
            "--output_dir",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert (
        rc == 2 and f"is in use by another run (pid {other_process.pid}" in err and len(err.strip().splitlines()) == 1
    )
    assert OutputDirLock(out).path.exists()  # the holder's lock is left alone
