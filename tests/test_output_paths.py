"""Output locations: checked before training, checkpoint names owned by one run, stale temporaries removed,
a write failure mid-run stops with the last good checkpoint named (recbole_gemirec/output_paths.py,
docs/reliability.md). The machines this runs on are often root, where permissions do not bite, so the
failures are injected where the system call would fail."""

import errno
import os
import subprocess
import sys

import pytest

from conftest import REPO_DIR, TEST_DATA, TINY_YAML, train_tiny

sys.path.insert(0, REPO_DIR)
import run_recbole_gemirec  # noqa: E402

from recbole_gemirec import output_paths  # noqa: E402
from recbole_gemirec.checkpoint import load_checkpoint  # noqa: E402


def main(args, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = ["--model=SASRec", "--dataset=tiny", f"--config_files={TINY_YAML}", f"--data_path={TEST_DATA}"]
    status = run_recbole_gemirec.main(argv + list(args))
    return status, capsys.readouterr()


def refuse_writes_under(monkeypatch, directory, error=errno.EROFS):
    """Make creating any file under ``directory`` fail as a read-only (or full) file system would."""
    real = output_paths.tempfile.mkstemp

    def mkstemp(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir).startswith(os.path.abspath(directory)):
            raise OSError(error, os.strerror(error))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(output_paths.tempfile, "mkstemp", mkstemp)


@pytest.mark.parametrize("key", ["checkpoint_dir", "result_file"])
def test_an_unwritable_output_location_is_refused_before_any_training(key, tmp_path, monkeypatch, capsys):
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    refuse_writes_under(monkeypatch, blocked)
    arg = f"--checkpoint_dir={blocked}" if key == "checkpoint_dir" else f"--result_file={blocked / 'r.json'}"
    status, out = main([arg], tmp_path, monkeypatch, capsys)
    assert status == 2, out.err
    line = out.err.strip().splitlines()[-1]
    assert line.startswith("error: ") and str(blocked) in line and "Read-only file system" in line, line
    assert "Traceback" not in out.err
    assert "Epoch" not in out.err + out.out and not (tmp_path / "log").exists()  # nothing trained


@pytest.mark.parametrize("name,words", [("log", "the log directory='log/SASRec'"),
                                        ("log_tensorboard", "the TensorBoard directory='log_tensorboard'")])
def test_a_file_where_recbole_writes_its_logs_is_refused_before_any_training(name, words, tmp_path, monkeypatch,
                                                                            capsys):
    """RecBole's logger and TensorBoard writer create ./log/<model>/ and ./log_tensorboard/ in the current
    directory; a file of that name there is one clear line, not a traceback from RecBole."""
    (tmp_path / name).write_text("not a directory")
    status, out = main([], tmp_path, monkeypatch, capsys)
    assert status == 2, out.err
    line = out.err.strip().splitlines()[-1]
    assert line.startswith("error: ") and words in line and "cannot be written" in line, line
    assert "Not a directory" in line or "File exists" in line, line  # the system's reason
    assert "Traceback" not in out.err and "Epoch" not in out.err + out.out


def test_a_result_path_that_is_a_directory_is_refused(tmp_path, monkeypatch, capsys):
    status, out = main([f"--result_file={tmp_path}"], tmp_path, monkeypatch, capsys)
    assert status == 2 and "is a directory" in out.err.strip().splitlines()[-1]


def test_a_checkpoint_write_failure_mid_run_names_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import recbole_gemirec.checkpoint as checkpoint

    real_save, writes = checkpoint.torch.save, []

    def save(obj, path, *args, **kwargs):
        if len(writes) >= 1:  # the disk is full after the first checkpoint
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        writes.append(path)
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    status, out = main(["--epochs=2", "--checkpoint_dir=saved"], tmp_path, monkeypatch, capsys)
    assert status == 1, out.err
    line = out.err.strip().splitlines()[-1]
    assert line.startswith("error: training stopped: checkpoint ") and "No space left on device" in line, line
    good = [f for f in os.listdir(tmp_path / "saved") if f.endswith(".pth")]
    assert len(good) == 1 and f"The last good checkpoint, saved/{good[0]}, is intact" in line, (good, line)
    load_checkpoint(tmp_path / "saved" / good[0])  # still loadable
    assert not [f for f in os.listdir(tmp_path / "saved") if f.endswith(".tmp")]


def test_two_runs_started_in_the_same_second_keep_their_own_checkpoints(tmp_path, monkeypatch):
    import recbole.trainer.trainer as recbole_trainer

    monkeypatch.setattr(recbole_trainer, "get_local_time", lambda: "Dec-02-2026_01-00-00")
    first = train_tiny(tmp_path, model="SASRec", seed=1)
    second = train_tiny(tmp_path, model="SASRec", seed=2)
    assert first["checkpoint"] != second["checkpoint"]
    for seed, result in ((1, first), (2, second)):
        state = load_checkpoint(tmp_path / result["checkpoint"])
        assert state["config"]["external"]["seed"] == seed  # its own checkpoint, not the other run's
    assert os.path.basename(second["checkpoint"]) == "SASRec-Dec-02-2026_01-00-00-2.pth"


def test_claims_skip_names_in_use_and_existing_checkpoints(tmp_path):
    (tmp_path / "M-t.pth").write_bytes(b"an older run's checkpoint")
    names = [os.path.basename(output_paths.claim_run_file(tmp_path / "M-t.pth")) for _ in range(2)]
    assert names == ["M-t-2.pth", "M-t-3.pth"]


def test_temporaries_of_dead_processes_are_removed_and_live_ones_kept(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = output_paths.temporary_prefix().split("@", 1)[1]
    dead = tmp_path / f".ckpt-{finished.pid}@{host}abc.tmp"
    live = tmp_path / f"{output_paths.temporary_prefix()}def.tmp"
    other_host_old = tmp_path / ".ckpt-1@elsewhere-ghi.tmp"
    for path in (dead, live, other_host_old):
        path.write_bytes(b"")
    os.utime(other_host_old, (0, 0))
    removed = output_paths.remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted([str(dead), str(other_host_old)])
    assert live.exists()
