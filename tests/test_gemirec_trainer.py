"""GemiRecTrainer: the three stages, their checkpoints and resuming (docs/design.md §2.5)."""

import pytest
import os

import torch

from conftest import TINY_YAML, read_json, run_cli, tiny_config


@pytest.mark.slow
def test_three_stage_run_through_the_cli_finishes_and_every_stage_loss_falls(tmp_path):
    proc = run_cli(["--model=GemiRec", "--interest_category_field=category", "--recipe=paper", "--interest_source=learned", "--stopping_step=10",
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
        interest_category_field="category", recipe="paper", interest_source="learned", stage_epochs=stage_epochs, gpt_layers=2,
        stopping_step=10,
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
        interest_category_field="category", recipe="paper", interest_source="category", gpt_layers=2,
        stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1}, checkpoint_dir=str(in_tmp / "saved")))
    parts = build_run(config)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"])
    assert list(parts["trainer"].stage_losses) == ["retrieval", "dictionary", "joint"]
    assert parts["trainer"].stage_losses["dictionary"] == [0.0]


# --- interest_source: auto --------------------------------------------------------------------------
def _auto_run(tmp_path, **overrides):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    settings = dict(interest_category_field="category", recipe="paper", interest_source="auto", gpt_layers=1, stopping_step=10,
                    stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 2}, checkpoint_dir=str(tmp_path / "saved"))
    settings.update(overrides)
    return build_run(Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML],
                            config_dict=tiny_config(**settings)))


def _favour(trainer, source, bonus=1.0):
    """Make ``source``'s joint stage validate ``bonus`` higher, so the comparison's outcome is known."""
    finish = trainer._finish_joint_stage

    def finish_and_favour(valid_data, saved):
        score, result = finish(valid_data, saved)
        if trainer.model.interest_source == source:
            trainer.best_valid_score = score + bonus
        return trainer.best_valid_score, result

    trainer._finish_joint_stage = finish_and_favour


def test_auto_tries_the_category_interests_only_where_they_can_serve(in_tmp):
    assert _auto_run(in_tmp)["model"].interest_source_candidates == ("learned", "category")
    assert _auto_run(in_tmp, interest_category_field=None)["model"].interest_source_candidates == ("learned",)
    # tiny has 8 categories (+ "unknown"): fewer than 10 interests per user
    assert _auto_run(in_tmp, interest_num=10)["model"].interest_source_candidates == ("learned",)
    assert _auto_run(in_tmp, interest_source="category")["model"].interest_source_candidates == ("category",)


@pytest.mark.parametrize("winner", ["learned", "category"])
def test_auto_keeps_the_source_that_validates_better_and_its_checkpoint_rebuilds_as_it(in_tmp, winner):
    from recbole_gemirec.checkpoint import load_checkpoint
    from recbole_gemirec.quick_start import load_data_and_model

    parts = _auto_run(in_tmp)
    trainer, model = parts["trainer"], parts["model"]
    started = []
    trainer.add_hook("stage_started", started.append)
    _favour(trainer, winner)
    score, _ = trainer.fit(parts["train_data"], parts["valid_data"])
    assert started == ["retrieval", "dictionary", "joint", "joint"]  # one joint stage per source
    assert set(trainer.source_trials) == {"learned", "category"}
    assert model.interest_source == winner and model.stage == "joint"
    assert score == trainer.source_trials[winner]["score"] > trainer.source_trials[
        {"learned": "category", "category": "learned"}[winner]]["score"]
    extras = trainer.result_extras()
    assert extras["interest_source"] == winner and set(extras["interest_source_valid"]) == {"learned", "category"}
    tested = trainer.evaluate(parts["test_data"], load_best_model=True)

    state = load_checkpoint(trainer.saved_model_file)
    assert state["config"]["final"]["interest_source"] == winner
    assert state["config"]["external"]["interest_source"] == winner  # the user's "auto" is resolved too
    config, loaded, _, _, _, test_data = load_data_and_model(trainer.saved_model_file)
    assert loaded.interest_source == winner
    assert type(loaded.dictionary) is type(model.dictionary)
    for name, value in model.state_dict().items():
        if not name.startswith("interest_cache"):  # the cache is rebuilt from the histories a model is shown
            assert torch.equal(value, loaded.state_dict()[name]), name
    from recbole_gemirec.trainer.extension_trainer import ExtensionTrainer
    again = ExtensionTrainer(config, loaded).evaluate(test_data, load_best_model=False)
    assert dict(again) == dict(tested)

    # resuming the finished run from its newest -last checkpoint finds the kept source there too
    resumed = _auto_run(in_tmp)
    resumed["trainer"].resume_checkpoint(str(in_tmp / "saved"))
    assert resumed["model"].interest_source == winner
    _favour(resumed["trainer"], winner)
    resumed["trainer"].fit(resumed["train_data"], resumed["valid_data"])
    assert resumed["model"].interest_source == winner
    assert resumed["trainer"].source_trials[winner]["score"] == pytest.approx(trainer.source_trials[winner]["score"])


def _rank_auto_with_recbole():
    from test_recbole_tools import rank_with_recbole

    return rank_with_recbole("model.interest_source, config['interest_source'], type(model.dictionary).__name__")


def test_auto_checkpoint_ranks_under_recboles_own_loader_and_case_study_as_the_kept_source(in_tmp):
    """RecBole's ``load_data_and_model`` (not the extension's) rebuilds an ``auto`` run as the source it kept
    (here the non-default one, the categories), and RecBole's ``full_sort_topk`` ranks with it as the trained
    model does."""
    import subprocess
    import sys

    from recbole.utils.case_study import full_sort_topk

    from conftest import REPO_DIR

    parts = _auto_run(in_tmp)
    trainer, model = parts["trainer"], parts["model"]
    _favour(trainer, "category")
    trainer.fit(parts["train_data"], parts["valid_data"])
    trainer.evaluate(parts["test_data"], load_best_model=True)  # the trained model as tested: best weights
    users = ["1", "2", "3"]
    dataset = parts["dataset"]
    _, expected = full_sort_topk(dataset.token2id(dataset.uid_field, users), model, parts["test_data"], k=5,
                                 device=trainer.config["device"])
    proc = subprocess.run(
        [sys.executable, "-c", _rank_auto_with_recbole(), trainer.saved_model_file, ",".join(users)],
        capture_output=True, text=True, cwd=in_tmp, timeout=300,
        env=dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    source, ranked = proc.stdout.strip().splitlines()[-2:]
    assert source == "category category CategoryInterests"
    assert ranked == ";".join(",".join(str(int(i)) for i in row) for row in expected)


def test_auto_without_checkpoints_keeps_the_chosen_weights_in_memory(in_tmp):
    parts = _auto_run(in_tmp)
    trainer, model = parts["trainer"], parts["model"]
    _favour(trainer, "learned")
    trainer.fit(parts["train_data"], parts["valid_data"], saved=False)
    assert model.interest_source == "learned"
    kept = trainer._trial_states["learned"]
    for name, value in model.state_dict().items():
        if not name.startswith("interest_cache"):
            assert torch.equal(value, kept[name]), name
    saved = os.listdir(in_tmp / "saved") if os.path.exists(in_tmp / "saved") else []
    assert not [name for name in saved if name.endswith(".pth")], saved


def test_a_run_stopped_in_the_second_candidates_joint_stage_resumes_there_and_still_compares_both(in_tmp):
    from recbole_gemirec.checkpoint import load_checkpoint

    whole = _auto_run(in_tmp)
    whole["trainer"].fit(whole["train_data"], whole["valid_data"])
    expected = {source: trial["score"] for source, trial in whole["trainer"].source_trials.items()}

    parts = _auto_run(in_tmp)
    trainer, model = parts["trainer"], parts["model"]
    losses = model._joint_losses

    def stop_in_the_category_stage(interaction):
        if model.interest_source == "category" and trainer._epoch_idx == 1:
            raise KeyboardInterrupt
        return losses(interaction)

    model._joint_losses = stop_in_the_category_stage
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(parts["train_data"], parts["valid_data"])
    last = trainer.last_file("joint")
    state = load_checkpoint(last)
    assert state["config"]["final"]["interest_source"] == "category" and state["epoch"] == 0
    assert set(state["extra"]["interest_source_trials"]) == {"learned"}

    again = _auto_run(in_tmp)
    assert again["model"].interest_source == "learned"  # as the configuration builds it
    again["trainer"].resume_checkpoint(last)
    assert again["model"].interest_source == "category"
    again["trainer"].fit(again["train_data"], again["valid_data"])
    got = {source: trial["score"] for source, trial in again["trainer"].source_trials.items()}
    assert got == pytest.approx(expected)
    assert again["model"].interest_source == max(expected, key=lambda s: (expected[s], s == "learned"))


# --- the scoring choice on large data: one key at a time --------------------------------------------------------
def test_coordinate_ascent_ends_where_no_single_key_improves_and_evaluates_less_than_the_grid():
    """The scoring choice's search beyond FULL_GRID_SCORES: from the tie rule's favourite it moves one position at a
    time; it ends on a candidate no one-position change improves, having evaluated part of the grid only."""
    import itertools

    from recbole_gemirec.trainer.gemirec_trainer import _coordinate_ascent, _scoring_preference

    grid = list(itertools.product([True], [0.5, 1.0, 2.0, 4.0], [0.0, 0.2, 0.4, 0.6], [0.0, 0.25], [False, True]))

    def value(c):  # one peak at tau 2, beta 0.4, alpha 0.25, popularity ranking
        return -(c[1] - 2.0) ** 2 - 3 * (c[2] - 0.4) ** 2 + (0.1 if c[3] else 0.0) + (0.2 if c[4] else 0.0)

    seen = []

    def evaluate(c):
        seen.append(c)
        return (value(c),) + _scoring_preference(c)

    best = _coordinate_ascent(grid, evaluate)
    assert best == (True, 2.0, 0.4, 0.25, True)
    assert len(set(seen)) < len(grid)
    for position in range(5):  # no single-position move improves on it
        assert all(value(c) <= value(best) for c in grid
                   if all(c[j] == best[j] for j in range(5) if j != position))


def test_the_scoring_choice_searches_one_key_at_a_time_beyond_its_budget(in_tmp, monkeypatch, caplog):
    """Past FULL_GRID_SCORES (here 0) the scoring choice evaluates part of its candidates, says how many, and
    keeps the best it evaluated, stored with the checkpoint as always."""
    import logging

    from conftest import train_preset
    from recbole_gemirec.quick_start import load_data_and_model
    from recbole_gemirec.trainer import gemirec_trainer

    monkeypatch.setattr(gemirec_trainer, "FULL_GRID_SCORES", 0)
    with caplog.at_level(logging.INFO):
        result = train_preset(in_tmp)
    line = next(r.getMessage() for r in caplog.records if "one key at a time" in r.getMessage())
    evaluated, total = (int(n) for n in line.split("one key at a time: ")[1].split(" candidates")[0].split(" of "))
    assert 0 < evaluated < total
    scores = [float(part.rsplit(": ", 1)[1]) for part in line.split(" by ", 1)[1].split("; chose")[0].split(", ")]
    assert len(scores) == evaluated and result["best_valid_score"] == pytest.approx(max(scores), abs=1e-4)
    _, model, *_ = load_data_and_model(str(in_tmp / result["checkpoint"]))
    chosen_tau = float(line.split("; chose ")[1].split("tau ")[1].split()[0])
    assert float(model.prior_weight) == chosen_tau  # the chosen scoring was stored with the weights
