"""GemiRecTrainer: the three stages, their checkpoints and resuming (docs/design.md §2.5)."""

import pytest
import os

import torch

from conftest import TINY_YAML, read_json, run_cli, tiny_config


@pytest.mark.slow
def test_three_stage_run_through_the_cli_finishes_and_every_stage_loss_falls(tmp_path):
    proc = run_cli(["--model=GemiRec", "--interest_category_field=category", "--stopping_step=10",
                    "--stage_epochs={'retrieval':4,'dictionary':4,'joint':4}", "--gpt_layers=2",
                    "--result_file=g.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = read_json(tmp_path / "g.json")
    losses = result["stage_losses"]
    assert set(losses) == {"retrieval", "dictionary", "joint"}
    for stage, values in losses.items():
        assert len(values) == 4, stage
        assert all(v == v and abs(v) < float("inf") for v in values), (stage, values)
    # The joint stage's total is no fixed objective (the predicted-interest term follows the generator's
    # changing selection, and the retrieval loss pulls the codewords the dictionary term holds), so only
    # the first two stages must fall here; tests/test_gemirec.py checks the joint terms on a fixed batch.
    for stage in ("retrieval", "dictionary"):
        assert losses[stage][-1] < losses[stage][0], (stage, losses[stage])
    assert 0.0 <= result["test_result"]["recall@10"] <= 1.0
    saved = os.listdir(tmp_path / "saved")
    for stage in ("retrieval", "dictionary", "joint"):
        assert any(name.endswith(f"-{stage}.pth") for name in saved), saved
        assert any(name.endswith(f"-{stage}-last.pth") for name in saved), saved


def _trainer(tmp_path, stage_epochs):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(
        interest_category_field="category", stage_epochs=stage_epochs, gpt_layers=2, stopping_step=10,
        checkpoint_dir=str(tmp_path / "saved")))
    return build_run(config)


@pytest.mark.slow
def test_a_run_stopped_in_the_joint_stage_resumes_there(in_tmp):
    first = _trainer(in_tmp, {"retrieval": 1, "dictionary": 1, "joint": 1})
    first["trainer"].fit(first["train_data"], first["valid_data"])
    last = first["trainer"].last_file("joint")
    state = torch.load(last)
    assert state["extra"]["stage"] == "joint" and state["epoch"] == 0

    # the same run with a longer joint budget, resumed from the joint stage's last checkpoint
    second = _trainer(in_tmp, {"retrieval": 1, "dictionary": 1, "joint": 3})
    trainer = second["trainer"]
    trainer.resume_checkpoint(last)
    assert trainer.stage == "joint" and trainer.start_epoch == 1
    assert second["model"].stage == "joint"
    for name, value in second["model"].state_dict().items():
        assert torch.equal(value, state["state_dict"][name]), name
    trainer.fit(second["train_data"], second["valid_data"])
    assert list(trainer.stage_losses) == ["joint"] and len(trainer.stage_losses["joint"]) == 2
    assert trainer.saved_model_file == first["trainer"].stage_file("joint")


def test_each_stage_checkpoint_records_its_stage(in_tmp):
    parts = _trainer(in_tmp, {"retrieval": 1, "dictionary": 1, "joint": 1})
    trainer = parts["trainer"]
    trainer.fit(parts["train_data"], parts["valid_data"])
    for stage in ("retrieval", "dictionary", "joint"):
        assert torch.load(trainer.stage_file(stage))["extra"]["stage"] == stage


def test_category_dictionary_ablation_runs_every_stage(in_tmp):
    # GemiRec-I has nothing to quantise; its dictionary stage must still run (its loss is a graph zero).
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(
        interest_category_field="category", interest_source="category", gpt_layers=2,
        stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1}, checkpoint_dir=str(in_tmp / "saved")))
    parts = build_run(config)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"])
    assert list(parts["trainer"].stage_losses) == ["retrieval", "dictionary", "joint"]
    assert parts["trainer"].stage_losses["dictionary"] == [0.0]
