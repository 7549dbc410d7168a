"""Configuration values are data: a string from a checkpoint, a hyper-parameter file, a YAML file or the
command line never runs as code, and legitimate values keep their types (docs/reliability.md)."""

import json
import os

import pytest
import torch

from conftest import REPO_DIR, TEST_DATA, TINY_YAML, read_json, run_cli, tiny_config, train_tiny

import recbole_gemirec  # noqa: F401  (compat shims before RecBole)
from recbole_gemirec.config import Config, parse_value
from recbole_gemirec.errors import ConfigError

HYPER_SCRIPT = os.path.join(REPO_DIR, "run_hyper.py")
STAGES = {"retrieval": 1, "dictionary": 1, "joint": 1}


def payload(marker):
    """A string that creates ``marker`` when passed to ``eval``."""
    return f"__import__('pathlib').Path({str(marker)!r}).touch()"


def test_the_payload_is_real_under_recbole_own_conversion(tmp_path):
    from recbole.config import Config as RecBoleConfig

    marker = tmp_path / "ran"
    RecBoleConfig._convert_config_dict(None, {"note": payload(marker)})
    assert marker.exists()  # what RecBole does with a config_dict or command-line string


@pytest.fixture(scope="module")
def gemirec_checkpoint(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("untrusted")
    result = train_tiny(workdir, "GemiRec", interest_category_field="category", recipe="paper", gpt_layers=1, stage_epochs=STAGES)
    return str(workdir / result["checkpoint"])


def poisoned(checkpoint, tmp_path):
    """A copy of ``checkpoint`` whose stored config carries a payload and a list-like string."""
    marker = tmp_path / "payload_ran"
    state = torch.load(checkpoint)
    for layer in ("external", "final"):
        state["config"][layer]["untrusted_note"] = payload(marker)
        state["config"][layer]["list_like_note"] = "[1, 2]"
    path = tmp_path / "poisoned.pth"
    torch.save(state, path)
    return str(path), marker


def test_checkpoint_config_is_restored_as_saved_and_never_runs(gemirec_checkpoint, in_tmp):
    from recbole_gemirec.quick_start import load_data_and_model

    path, marker = poisoned(gemirec_checkpoint, in_tmp)
    config, model, *_ = load_data_and_model(path)
    assert not marker.exists()
    assert config["untrusted_note"] == payload(marker)  # the string, exactly as saved
    assert config["list_like_note"] == "[1, 2]"  # not turned into a list either
    # legitimate values arrive with their types
    assert config["stage_epochs"] == STAGES and all(type(v) is int for v in config["stage_epochs"].values())
    assert config["topk"] == [5, 10] and config["metrics"] == ["Recall", "NDCG", "Hit"]
    assert type(config["learning_rate"]) is float and config["reproducibility"] is True
    assert isinstance(config["interest_dictionary_sizes"], list)
    assert all(type(v) is int for v in config["interest_dictionary_sizes"])
    assert type(model).__name__ == "GemiRec"


def test_serving_export_and_visualize_never_run_a_checkpoint_payload(gemirec_checkpoint, in_tmp):
    from recbole_gemirec.serving.__main__ import main as serving_main
    from recbole_gemirec.visualize import main as visualize_main

    path, marker = poisoned(gemirec_checkpoint, in_tmp)
    override_marker = in_tmp / "override_ran"
    assert serving_main(["export", "--checkpoint", path, "--out", str(in_tmp / "serve"),
                         "--override", f"override_note={payload(override_marker)}"]) == 0
    assert (in_tmp / "serve").is_dir()
    assert visualize_main(["--checkpoint", path, "--user", "7", "--out", str(in_tmp / "pics"),
                           "--override", f"override_note={payload(override_marker)}"]) == 0
    assert (in_tmp / "pics" / "interests_7.png").is_file()
    assert not marker.exists() and not override_marker.exists()


def test_config_dict_strings_stay_strings(in_tmp):
    marker = in_tmp / "ran"
    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(untrusted_note=payload(marker), topk=[3, 7], valid_metric="Recall@7",
                                            learning_rate=0.002))
    assert not marker.exists()
    assert config["untrusted_note"] == payload(marker)
    assert config["topk"] == [3, 7] and config["learning_rate"] == 0.002


def test_command_line_values_are_read_as_data(in_tmp):
    marker = in_tmp / "ran"
    config = Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(),
                    cmd_args=[f"--untrusted_note={payload(marker)}", "--stage_epochs={'retrieval':2,'dictionary':1,'joint':3}",
                              "--learning_rate=1e-3", "--topk=[5,20]", "--metrics=[Recall,NDCG]", "--valid_metric=NDCG@20",
                              "--reproducibility=false", "--interest_category_field=category", "--recipe=paper", "--gpt_layers=2",
                              "--checkpoint_dir=saved_here"])
    assert not marker.exists()
    assert config["untrusted_note"] == payload(marker)
    assert config["stage_epochs"] == {"retrieval": 2, "dictionary": 1, "joint": 3}
    assert config["learning_rate"] == 0.001 and config["topk"] == [5, 20]
    assert config["metrics"] == ["Recall", "NDCG"] and config["reproducibility"] is False
    assert config["gpt_layers"] == 2 and config["checkpoint_dir"] == "saved_here"


@pytest.mark.parametrize("text, value", [
    ("0.001", 0.001), ("1e-3", 0.001), ("7", 7), ("-2", -2), ("[10, 20]", [10, 20]),
    ("{'retrieval': 2}", {"retrieval": 2}), ("None", None), ("~", None), ("True", True), ("TRUE", True),
    ("false", False), ("[Recall, NDCG]", ["Recall", "NDCG"]), ("{split: {RS: [0.8, 0.1, 0.1]}}",
                                                             {"split": {"RS": [0.8, 0.1, 0.1]}}),
    ("[1000,inf)", "[1000,inf)"), ("Hit@3", "Hit@3"), ("none", "none"), ("{1, 2}", "{1, 2}"),
    ("__import__('os').getcwd()", "__import__('os').getcwd()"), ("open('x', 'w')", "open('x', 'w')"),
])
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_command_line_key_given_twice_is_a_config_error(in_tmp):
    with pytest.raises(ConfigError, match="twice"):
        Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(),
               cmd_args=["--epochs=1", "--epochs=2"])


def test_cli_payload_never_runs(tmp_path):
    marker = tmp_path / "ran"
    proc = run_cli(["--model=Pop", f"--untrusted_note={payload(marker)}", "--result_file=r.json", "--no_save"],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not marker.exists()


def test_yaml_python_tags_are_refused(in_tmp):
    evil = in_tmp / "evil.yaml"
    evil.write_text("learner: !!python/name:os.system\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="evil.yaml is not plain YAML data"):
        Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML, str(evil)], config_dict=tiny_config())


def test_recbole_model_that_evaluates_a_setting_gets_only_its_names(in_tmp):
    marker = in_tmp / "ran"
    with pytest.raises(ConfigError, match="teacher=.*allowed: CrossNet, CIN"):
        Config(model="KD_DAGFM", dataset="tiny", config_file_list=[TINY_YAML],
               config_dict=tiny_config(teacher=payload(marker)))
    assert not marker.exists()
    assert Config(model="KD_DAGFM", dataset="tiny", config_file_list=[TINY_YAML],
                  config_dict=tiny_config(teacher="CIN"))["teacher"] == "CIN"


def test_hyper_file_values_stay_strings_and_never_run(tmp_path):
    marker, fixed_marker = tmp_path / "space_ran", tmp_path / "fixed_ran"
    space = tmp_path / "space.hyper"
    space.write_text(f"learning_rate choice [0.001]\nuntrusted_note choice [{payload(marker)!r}]\n", encoding="utf-8")
    proc = run_cli([f"--params_file={space}", "--model=SASRec", "--max_evals=1", "--no_save",
                    f"--fixed_note={payload(fixed_marker)}", "--output_file=h.json"],
                   cwd=tmp_path, script=HYPER_SCRIPT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists() and not fixed_marker.exists()
    result = read_json(tmp_path / "h.json")
    assert result["best"]["params"] == {"learning_rate": 0.001, "untrusted_note": payload(marker)}
    assert result["fixed"]["fixed_note"] == payload(fixed_marker)
    assert json.loads(json.dumps(result["best_config"]))["untrusted_note"] == payload(marker)


def test_objective_function_passes_trial_strings_through_unchanged(in_tmp):
    """What a trial's Config sees (run_hyper.py's objective builds it from the same dict)."""
    marker = in_tmp / "ran"
    settings = tiny_config(model="SASRec", dataset="tiny", untrusted_note=payload(marker), hidden_size=16,
                           data_path=TEST_DATA)
    config = Config(config_dict=settings, config_file_list=[TINY_YAML])
    assert not marker.exists()
    assert config["untrusted_note"] == payload(marker) and config["hidden_size"] == 16
