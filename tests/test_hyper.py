"""run_hyper.py: offline hyper-parameter search on RecBole's HyperTuning."""

import os
import sys

import pytest
import yaml

from conftest import REPO_DIR, read_json, run_cli

HYPER_SCRIPT = os.path.join(REPO_DIR, "run_hyper.py")


def run_hyper(args, cwd, timeout=600):
    return run_cli(args, cwd, timeout=timeout, script=HYPER_SCRIPT)


@pytest.mark.slow
def test_two_trials_of_gemirec_write_the_best_configuration_and_its_result(tmp_path):
    space = tmp_path / "space.hyper"
    space.write_text("# two values each\nlearning_rate choice [0.001, 0.01]\ninterest_num choice [3,5]\n")
    proc = run_hyper(["--model=GemiRec", f"--params_file={space}", "--max_evals=2", "--algo=exhaustive",
                      "--interest_category_field=category", "--recipe=paper", "--gpt_layers=2",
                      "--stage_epochs={'retrieval':1,'dictionary':1,'joint':1}", "--output_file=h.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = read_json(tmp_path / "h.json")
    trials = result["trials"]
    assert len(trials) == 2 and trials[0]["params"] != trials[1]["params"]
    for trial in trials:
        assert trial["params"]["learning_rate"] in (0.001, 0.01) and trial["params"]["interest_num"] in (3, 5)
        assert 0.0 <= trial["test_result"]["recall@10"] <= 1.0
        assert trial["best_valid_score"] == trial["best_valid_result"]["recall@10"]
    best = max(trials, key=lambda t: t["best_valid_score"])
    assert result["best"] == best
    assert result["best_config"]["model"] == "GemiRec" and result["best_config"]["gpt_layers"] == 2
    for key, value in best["params"].items():
        assert result["best_config"][key] == value
    with open(tmp_path / "h.best.yaml") as f:
        assert yaml.safe_load(f) == result["best_config"]
    # the --config_files' contents are part of it: the file alone reproduces the best trial's settings
    from conftest import TINY_YAML

    with open(TINY_YAML) as f:
        for key, value in yaml.safe_load(f).items():
            if key not in best["params"]:
                assert result["best_config"][key] == value, key
    assert "best of 2 trials" in proc.stdout


def test_shipped_gemirec_space_parses_without_evaluating_code(tmp_path):
    sys.path.insert(0, REPO_DIR)
    try:
        import run_hyper
    finally:
        sys.path.remove(REPO_DIR)
    from recbole_gemirec.errors import ConfigError

    space = run_hyper.read_space(run_hyper.default_params_file("GemiRec"))
    assert {"learning_rate", "interest_num", "interest_code_limit"} <= set(space)
    assert all(kind == "choice" and values for kind, values in space.values())
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.hyper"
    evil.write_text(f"learning_rate choice __import__('os').mkdir({str(marker)!r})\n")
    with pytest.raises(ConfigError, match="is not a literal value"):
        run_hyper.read_space(str(evil))
    assert not marker.exists()
    with pytest.raises(ConfigError, match="no parameter space shipped for model 'NoSuch'"):
        run_hyper.default_params_file("NoSuch")


def test_bad_space_file_is_a_clear_error(tmp_path):
    space = tmp_path / "bad.hyper"
    space.write_text("learning_rate between 0.1,0.2\n")
    proc = run_hyper(["--model=SASRec", f"--params_file={space}", "--max_evals=1"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"{space}:1: type 'between' is unknown" in proc.stderr


@pytest.mark.parametrize("content,message", [
    (b"learning_rate choice [0.001]\n\xff\xfe\n", ":2: byte b'\\xff' is not UTF-8"),  # was UnicodeDecodeError
    (b"learning_rate quniform 0.001,0.01,0\n", ":1: quniform needs a step q > 0, found 0"),  # trials got NaN
    (b"learning_rate uniform -1e999,0.01\n", ":1: uniform needs finite numbers"),  # was numpy's OverflowError
    (b"embedding_size uniform 1," + b"9" * 400 + b"\n", ":1: uniform needs finite numbers"),
], ids=["not utf-8", "zero step", "infinite bound", "integer beyond float"])
def test_a_space_file_hyperopt_cannot_sample_is_named_with_its_line(content, message, tmp_path):
    sys.path.insert(0, REPO_DIR)
    try:
        import run_hyper
    finally:
        sys.path.remove(REPO_DIR)
    from recbole_gemirec.errors import ConfigError

    space = tmp_path / "bad.hyper"
    space.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        run_hyper.read_space(str(space))
    assert str(caught.value).startswith(str(space) + message), str(caught.value)
    assert len(str(caught.value)) < 200 and "\n" not in str(caught.value)


def test_an_unwritable_output_file_is_refused_before_any_trial(tmp_path, capsys):
    # a directory was found only after every trial had trained, and named --result_file
    sys.path.insert(0, REPO_DIR)
    try:
        import run_hyper
    finally:
        sys.path.remove(REPO_DIR)
    status = run_hyper.main(["--model=SASRec", f"--params_file={tmp_path / 'never-read.hyper'}",
                             f"--output_file={tmp_path}"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    assert err.strip().splitlines() == [f"error: --output_file={str(tmp_path)!r} is a directory; allowed: a file path"]
