"""Resume after a crash and safe loading.

The kill test starts the command line as a child process, waits for the joint stage's first ``-last``
checkpoint, SIGKILLs the process, resumes with ``--resume=<checkpoint directory>`` and compares the final
result with an uninterrupted run of the same seed: they must be identical. The tampering tests show that
damaged or foreign checkpoints are refused with a clear error, and that a payload never runs.
"""

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch

from conftest import REPO_DIR, RUN_SCRIPT, TEST_DATA, TINY_YAML, read_json, run_cli, tiny_config

from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint

sys.path.insert(0, REPO_DIR)
import run_recbole_gemirec  # noqa: E402

GEMIREC_ARGS = ["--model=GemiRec", "--interest_category_field=category", "--recipe=paper", "--stopping_step=10", "--gpt_layers=2",
                "--stage_epochs={'retrieval':2,'dictionary':2,'joint':3}", "--result_file=result.json"]


def cli_command(args):
    return [sys.executable, RUN_SCRIPT, "--dataset=tiny", f"--config_files={TINY_YAML}",
            f"--data_path={TEST_DATA}"] + list(args)


def cli_env():
    return dict(os.environ, OMP_NUM_THREADS="1",
                PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))


def kill_when(directory, suffix, process, timeout=300):
    """Poll ``directory`` until a file ending in ``suffix`` exists, then SIGKILL ``process``; True if it was
    still running when killed (so the kill really interrupted it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if directory.is_dir() and any(p.name.endswith(suffix) for p in directory.iterdir()):
            running = process.poll() is None
            process.send_signal(signal.SIGKILL)
            process.wait()
            return running
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no {suffix} file appeared in {timeout}s")


@pytest.mark.slow
def test_a_run_killed_in_the_joint_stage_resumes_to_the_same_result(tmp_path):
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    whole.mkdir(), broken.mkdir()
    reference = subprocess.run(cli_command(GEMIREC_ARGS), cwd=whole, env=cli_env(), capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-3000:]

    child = subprocess.Popen(cli_command(GEMIREC_ARGS), cwd=broken, env=cli_env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert kill_when(broken / "saved", "-joint-last.pth", child), "the run ended before it could be killed"
    assert child.returncode == -signal.SIGKILL
    assert not (broken / "result.json").exists()
    last = next(p for p in (broken / "saved").iterdir() if p.name.endswith("-joint-last.pth"))
    killed_at = load_checkpoint(str(last))["epoch"]
    assert killed_at < 2  # the joint stage had epochs left

    resumed = subprocess.run(cli_command(GEMIREC_ARGS + ["--resume=saved"]), cwd=broken, env=cli_env(),
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected, got = read_json(whole / "result.json"), read_json(broken / "result.json")
    print("uninterrupted:", json.dumps({k: expected[k] for k in ("best_valid_result", "test_result")}, sort_keys=True))
    print("killed+resumed:", json.dumps({k: got[k] for k in ("best_valid_result", "test_result")}, sort_keys=True))
    assert got["best_valid_score"] == expected["best_valid_score"]
    assert got["best_valid_result"] == expected["best_valid_result"]
    assert got["test_result"] == expected["test_result"]
    # the resumed process trained exactly the joint epochs after the kill, with the same losses
    assert list(got["stage_losses"]) == ["joint"]
    assert got["stage_losses"]["joint"] == expected["stage_losses"]["joint"][killed_at + 1:]


def _sasrec(tmp_path, **overrides):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    settings = dict(checkpoint_dir=str(tmp_path / "saved"), epochs=4, stopping_step=10)
    settings.update(overrides)
    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(**settings))
    return build_run(config)


class Crash(Exception):
    pass


@pytest.mark.slow
def test_recbole_models_resume_from_their_last_checkpoint_to_the_same_result(in_tmp):
    whole = _sasrec(in_tmp / "whole")
    best = whole["trainer"].fit(whole["train_data"], whole["valid_data"])
    expected = (best, whole["trainer"].evaluate(whole["test_data"]))

    broken = _sasrec(in_tmp / "broken")

    def crash_after_epoch_1(epoch, score):
        if epoch == 1:
            raise Crash()

    with pytest.raises(Crash):
        broken["trainer"].fit(broken["train_data"], broken["valid_data"], callback_fn=crash_after_epoch_1)
    again = _sasrec(in_tmp / "broken")
    again["trainer"].resume_checkpoint(in_tmp / "broken" / "saved")  # a directory: its newest -last file
    assert again["trainer"].start_epoch == 2
    best = again["trainer"].fit(again["train_data"], again["valid_data"])
    assert (best, again["trainer"].evaluate(again["test_data"])) == expected


def test_resume_from_a_directory_without_checkpoints_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = run_cli(["--model=SASRec", "--resume=empty"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--resume=empty is a directory without a checkpoint to resume" in proc.stderr
    assert "SASRec-*-last.pth" in proc.stderr


@pytest.mark.parametrize("resume", ["missing.pth", "not_a_checkpoint.pth", "empty"])
def test_a_resume_path_without_a_checkpoint_is_refused_before_any_data_is_read(tmp_path, monkeypatch, capsys, resume):
    (tmp_path / "empty").mkdir()
    (tmp_path / "not_a_checkpoint.pth").write_text("plain text", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    # the data folder does not exist either: the refusal names the checkpoint, so it came before the data
    status = run_recbole_gemirec.main(["--model=SASRec", "--dataset=tiny", f"--resume={resume}",
                                       f"--data_path={tmp_path / 'no_data'}"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and resume in line and "no_data" not in line, line


# --- safe loading -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sasrec_checkpoint(tmp_path_factory):
    """A genuine SASRec ``-last`` checkpoint of one epoch on the tiny data."""
    root = tmp_path_factory.mktemp("ckpt")
    parts = _sasrec(root, epochs=1)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"])
    return parts["trainer"].last_file()


def _resume_error(tmp_path, path, **overrides):
    parts = _sasrec(tmp_path, **overrides)
    with pytest.raises(CheckpointError) as caught:
        parts["trainer"].resume_checkpoint(path)
    return str(caught.value)


def test_a_truncated_checkpoint_is_refused(in_tmp, sasrec_checkpoint):
    data = open(sasrec_checkpoint, "rb").read()
    bad = in_tmp / "truncated.pth"
    bad.write_bytes(data[: len(data) // 2])
    assert "it is not a file written by torch.save" in _resume_error(in_tmp, bad)


def test_a_checkpoint_of_another_shape_is_refused_before_loading(in_tmp, sasrec_checkpoint):
    message = _resume_error(in_tmp, sasrec_checkpoint, embedding_size=32, hidden_size=32, inner_size=64)
    assert "does not fit this SASRec model" in message and "item_embedding.weight has shape (81, 64)" in message


def test_a_checkpoint_of_another_model_is_refused(in_tmp, sasrec_checkpoint):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model="GRU4Rec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(checkpoint_dir=str(in_tmp / "saved")))
    with pytest.raises(CheckpointError, match="was written by model 'SASRec'; this run trains 'GRU4Rec'"):
        build_run(config)["trainer"].resume_checkpoint(sasrec_checkpoint)


def test_edited_counters_and_nan_weights_are_refused(in_tmp, sasrec_checkpoint):
    state = torch.load(sasrec_checkpoint)
    state["epoch"] = "0; rm -rf /"
    torch.save(state, in_tmp / "counter.pth")
    assert "epoch='0; rm -rf /' is not an integer" in _resume_error(in_tmp, in_tmp / "counter.pth")
    state = torch.load(sasrec_checkpoint)
    state["state_dict"]["item_embedding.weight"][3, 3] = float("nan")
    torch.save(state, in_tmp / "nan.pth")
    assert "item_embedding.weight holds NaN values" in _resume_error(in_tmp, in_tmp / "nan.pth")


PAYLOAD = """
import os, sys, torch
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + sys.argv[2],))
state = torch.load(sys.argv[1])
state["extra"]["resume"]["rng"] = Payload()
torch.save(state, sys.argv[1])
"""


def test_a_checkpoint_carrying_a_payload_is_refused_and_the_payload_never_runs(tmp_path, sasrec_checkpoint):
    tampered = tmp_path / "saved" / "SASRec-tampered-last.pth"
    tampered.parent.mkdir()
    tampered.write_bytes(open(sasrec_checkpoint, "rb").read())
    marker = tmp_path / "payload_ran"
    subprocess.run([sys.executable, "-c", PAYLOAD, str(tampered), str(marker)], check=True)
    with zipfile.ZipFile(tampered) as archive:  # the payload is really in the file
        pickled = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    assert b"system" in pickled and not marker.exists()

    proc = run_cli(["--model=SASRec", "--epochs=1", "--resume=saved"], cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "refused to load" in proc.stderr and "pickled Python objects" in proc.stderr
    assert not marker.exists()
