"""recbole_gemirec.diagnose: the figures that say why a model ranks as it does (docs/gemirec.md, diagnostics)."""

import json
import subprocess
import sys

import pytest

from conftest import REPO_DIR, train_tiny


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("diagnose")
    result = train_tiny(workdir, "GemiRec", interest_category_field="category", recipe="paper", category_field="category",
                        gpt_layers=1, stage_epochs={"retrieval": 2, "dictionary": 1, "joint": 1})
    return str(workdir / result["checkpoint"])


def test_model_recall_is_recboles_recall_and_every_share_is_a_share(checkpoint, in_tmp):
    from recbole_gemirec.diagnose import diagnose
    from recbole_gemirec.quick_start import load_data_and_model
    from recbole_gemirec.utils import get_trainer

    config, model, _, train_data, _, test_data = load_data_and_model(checkpoint)
    found = diagnose(model, test_data, train_data._dataset, topn=(5, 10))
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    reported = trainer.evaluate(test_data, load_best_model=False)
    assert found["recall@10/model"] == pytest.approx(float(reported["recall@10"]), abs=1e-4)
    assert found["recall@5/model"] == pytest.approx(float(reported["recall@5"]), abs=1e-4)
    # the best single query, known in hindsight, is at least the merged list's recall
    assert found["recall@10/best_single_query"] >= found["recall@10/model"] - 1e-9
    for key, value in found.items():
        if key.startswith(("next_interest_hit", "unseen_interest_hit", "cache_holds", "unseen_targets", "cur@")):
            assert value is None or 0.0 <= value <= 1.0, key
        if key.startswith("cosine"):
            assert -1.0 <= value <= 1.0 + 1e-6, key
    assert 0.0 <= found["recall@10/oracle_interests"] <= 1.0
    assert found["next_interest_hit@5/level1/generator"] >= found["next_interest_hit@1/level1/generator"]
    assert {"unseen_interest_hit@5/generator", "unseen_interest_hit@5/popularity"} <= set(found)


def test_command_line_writes_json_and_refuses_a_missing_checkpoint(checkpoint, tmp_path):
    out = tmp_path / "d.json"
    run = [sys.executable, "-m", "recbole_gemirec.diagnose"]
    proc = subprocess.run(run + ["--checkpoint", checkpoint, "--split", "test", "--json", str(out)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600, env={"PYTHONPATH": REPO_DIR, "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "recall@20/model" in json.loads(out.read_text())
    missing = subprocess.run(run + ["--checkpoint", str(tmp_path / "nope.pth")], cwd=tmp_path, capture_output=True,
                             text=True, timeout=600, env={"PYTHONPATH": REPO_DIR, "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 2 and missing.stderr.strip().startswith("error: ") and "Traceback" not in missing.stderr


def test_a_json_path_that_cannot_be_written_is_named_before_anything_is_loaded(tmp_path, capsys):
    # was IsADirectoryError after the model had been loaded and diagnosed
    from recbole_gemirec.diagnose import main

    status = main(["--checkpoint", str(tmp_path / "never-read.pth"), "--json", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines == [f"error: --json={str(tmp_path)!r} is a directory; allowed: a file path"], err



def test_a_checkpoint_whose_dataset_is_gone_is_one_error_line(checkpoint, tmp_path, capsys):
    # the DataError of rebuilding the run was a traceback: diagnose caught only CheckpointError and OSError
    import torch

    from recbole_gemirec.diagnose import main

    state = torch.load(checkpoint, weights_only=True)
    trained_at = str(state["config"]["external"]["data_path"])
    for layer in ("final", "external"):
        if "data_path" in state["config"][layer]:
            state["config"][layer]["data_path"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.pth"
    torch.save(state, moved)
    status = main(["--checkpoint", str(moved)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: dataset 'tiny' cannot be read") and "gone" in lines[0], err
    # --data_path says where the dataset now lives (was: no way to diagnose a checkpoint whose data moved)
    out = tmp_path / "d.json"
    assert main(["--checkpoint", str(moved), "--data_path", trained_at, "--json", str(out)]) == 0
    assert "recall@20/model" in json.loads(out.read_text())


def test_a_checkpoint_with_an_edited_stage_is_one_error_line(checkpoint, tmp_path, capsys):
    # GemiRec.set_stage's ValueError was a traceback
    import torch

    from recbole_gemirec.diagnose import main

    state = torch.load(checkpoint, weights_only=True)
    state["extra"]["stage"] = "bogus"
    edited = tmp_path / "edited.pth"
    torch.save(state, edited)
    status = main(["--checkpoint", str(edited)])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == ["error: the checkpoint records a stage its GemiRec does not have: "
                                        "stage='bogus'; allowed: retrieval, dictionary, joint"], err
