"""Numerical faults: a non-finite loss stops training with an error naming the loss term, the
stage and the epoch; the last good checkpoint stays usable; NaN scores never become metrics; dead
dictionary codes are re-seeded."""

import torch

from conftest import TINY_YAML, run_cli, tiny_config

import pytest

from recbole_gemirec.checkpoint import load_checkpoint
from recbole_gemirec.errors import TrainingError


def build(tmp_path, model="GemiRec", **overrides):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    settings = dict(checkpoint_dir=str(tmp_path / "saved"))
    if model == "GemiRec":
        settings.update(interest_category_field="category", recipe="paper", interest_source="learned", gpt_layers=1, stopping_step=10,
                        stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 2})
    settings.update(overrides)
    config = Config(model=model, dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(**settings))
    return build_run(config)


def test_a_nan_generator_loss_names_the_term_stage_and_epoch_and_keeps_the_last_checkpoint(in_tmp):
    parts = build(in_tmp)
    model, trainer = parts["model"], parts["trainer"]
    joint_losses = model._joint_losses
    calls = {"n": 0}

    def second_joint_epoch_goes_nan(interaction):
        dictionary, generator, retrieval = joint_losses(interaction)
        calls["n"] += 1
        if trainer.stage == "joint" and trainer._epoch_idx == 1:
            generator = generator * float("nan")
        return dictionary, generator, retrieval

    model._joint_losses = second_joint_epoch_goes_nan
    with pytest.raises(TrainingError) as caught:
        trainer.fit(parts["train_data"], parts["valid_data"])
    message = str(caught.value)
    last = trainer.last_file("joint")
    assert "the generator loss is NaN at epoch 1 of the joint stage" in message
    assert last in message and "--resume=" in message

    # the last good checkpoint is joint epoch 0, finite, and a fresh run resumes from it and finishes
    state = load_checkpoint(last)
    assert state["extra"]["stage"] == "joint" and state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())
    again = build(in_tmp)
    again["trainer"].resume_checkpoint(last)
    again["trainer"].fit(again["train_data"], again["valid_data"])
    assert len(again["trainer"].stage_losses["joint"]) == 1
    assert all(torch.isfinite(torch.tensor(v)) for v in again["trainer"].stage_losses["joint"])


def test_an_infinite_retrieval_loss_stops_the_cli_with_exit_status_1(tmp_path):
    # a weight of 1e38 overflows float32 once multiplied by the retrieval loss of the first joint batch
    proc = run_cli(["--model=GemiRec", "--interest_category_field=category", "--recipe=paper", "--gpt_layers=1",
                    "--stage_epochs={'retrieval':1,'dictionary':1,'joint':1}", "--loss_weights=[0.2,1.0,1e38]"],
                   cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: training stopped: the retrieval loss is infinite at epoch 0 of the joint stage"), line
    assert "dictionary-last.pth" in line  # the last good checkpoint: the end of the dictionary stage
    saved = tmp_path / "saved"
    last = next(p for p in saved.iterdir() if p.name.endswith("-dictionary-last.pth"))
    assert load_checkpoint(str(last))["extra"]["stage"] == "dictionary"


def test_recbole_models_get_the_named_error_instead_of_valueerror(in_tmp):
    parts = build(in_tmp, model="SASRec", epochs=2)
    model = parts["model"]
    real = model.calculate_loss
    model.calculate_loss = lambda interaction: real(interaction) * float("nan")
    with pytest.raises(TrainingError, match=r"the loss is NaN at epoch 0 \(model SASRec, dataset tiny\)"):
        parts["trainer"].fit(parts["train_data"], parts["valid_data"])


def test_nan_scores_never_become_metrics(in_tmp):
    parts = build(in_tmp, model="SASRec")
    model = parts["model"]
    real = model.full_sort_predict
    model.full_sort_predict = lambda interaction: real(interaction) * float("nan")
    with pytest.raises(TrainingError, match="scored NaN"):
        parts["trainer"].evaluate(parts["valid_data"], load_best_model=False)


def test_dead_codes_are_reseeded_so_a_joint_epoch_restores_utilisation(in_tmp):
    # live codes: with joint_codes: frozen (the default) no item changes code in the joint stage, so no
    # codeword can die there and nothing is re-seeded
    parts = build(in_tmp, stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 0}, joint_codes="live")
    model, trainer = parts["model"], parts["trainer"]
    trainer.fit(parts["train_data"], parts["valid_data"])
    before = model.dictionary_utilisation()["per_level"]
    with torch.no_grad():  # kill half of the first and third sub-dictionaries
        model.dictionary.quantizer[0].weight.data[:16] = 1e3
        model.dictionary.quantizer[2].weight.data[:4] = -1e3
    forced = model.dictionary_utilisation()["per_level"]
    assert forced[0] <= before[0] - 0.25 and forced[2] <= before[2] - 0.25

    trainer.enter_stage(2)  # the joint stage, with a fresh optimiser, one epoch
    trainer.epochs = 1
    trainer.train_epoch(parts["train_data"], 0)
    after = model.dictionary_utilisation()["per_level"]
    for level in range(4):
        assert after[level] >= before[level], (level, before, forced, after)


def test_reseeding_is_reproducible_and_moves_exactly_the_dead_codewords():
    from recbole_gemirec.model.interest_dictionary import InterestDictionary

    torch.manual_seed(0)
    dictionary = InterestDictionary(32, [16, 8], 8, 0.25)
    items = torch.randn(200, 32)
    dictionary.kmeans_init(items, seed=0)
    with torch.no_grad():
        dictionary.quantizer[0].weight.data[:6] = 1e3
    alive = dictionary.quantizer[0].weight.data[6:].clone()
    copy = InterestDictionary(32, [16, 8], 8, 0.25)
    copy.load_state_dict(dictionary.state_dict())
    moved = dictionary.reseed_dead_codes(items, seed=5)
    assert moved[0] == 6
    assert torch.equal(dictionary.quantizer[0].weight.data[6:], alive)  # live codewords untouched
    assert dictionary.utilisation(items)["per_level"][0] == 1.0
    assert copy.reseed_dead_codes(items, seed=5) == moved
    assert torch.equal(copy.quantizer[0].weight.data, dictionary.quantizer[0].weight.data)
