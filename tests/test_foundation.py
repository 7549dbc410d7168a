"""The extension runs RecBole's own models on today's stack, with safe checkpoints."""

import os
import re
import subprocess
import sys
import zipfile

import pytest
import torch

from conftest import REPO_DIR, read_json, run_cli, tiny_config, TINY_YAML


def test_sasrec_and_pop_train_one_epoch_through_the_cli(tmp_path):
    for model in ("SASRec", "Pop"):
        proc = run_cli([f"--model={model}", f"--result_file={model}.json"], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-3000:]
        result = read_json(tmp_path / f"{model}.json")
        assert result["model"] == model and result["dataset"] == "tiny"
        assert set(result["test_result"]) == {"recall@5", "recall@10", "ndcg@5", "ndcg@10", "hit@5", "hit@10"}
        assert all(0.0 <= v <= 1.0 for v in result["test_result"].values())
        assert result["test_result"]["recall@10"] >= result["test_result"]["recall@5"]
        assert result["config"]["epochs"] == 1
        assert os.path.isfile(tmp_path / result["checkpoint"])


def test_unknown_model_is_a_clear_error_not_a_traceback(tmp_path):
    proc = run_cli(["--model=NoSuchModel"], cwd=tmp_path)
    assert proc.returncode == 2
    assert "NoSuchModel" in proc.stderr and "Traceback" not in proc.stderr


def _train_sasrec(tmp_path):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(checkpoint_dir=str(tmp_path / "saved")))
    parts = build_run(config)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"], saved=True)
    return parts


def _first_batch_scores(model, test_data):
    interaction = next(iter(test_data))[0]
    model.eval()
    with torch.no_grad():
        return model.full_sort_predict(interaction)


def test_checkpoint_loads_with_default_torch_load_and_reproduces_scores(in_tmp):
    from recbole_gemirec.quick_start import load_data_and_model

    parts = _train_sasrec(in_tmp)
    path = parts["trainer"].saved_model_file
    state = torch.load(path)  # torch's defaults: weights_only=True
    assert state["config"]["model"] == "SASRec"
    assert isinstance(state["best_valid_score"], float)
    expected = _first_batch_scores(parts["model"], parts["test_data"])

    config, model, dataset, _, _, test_data = load_data_and_model(path)
    assert config["model"] == "SASRec" and type(model).__name__ == "SASRec"
    assert torch.equal(_first_batch_scores(model, test_data), expected)


def test_recbole_full_sort_topk_works_on_a_loaded_checkpoint(in_tmp):
    from recbole.utils.case_study import full_sort_topk

    from recbole_gemirec.quick_start import load_data_and_model

    parts = _train_sasrec(in_tmp)
    config, model, dataset, _, _, test_data = load_data_and_model(parts["trainer"].saved_model_file)
    uids = dataset.token2id(dataset.uid_field, ["1", "2", "3"])
    scores, items = full_sort_topk(uids, model, test_data, k=5, device=config["device"])
    assert items.shape == (3, 5)
    assert bool((items > 0).all())  # the padding item is never recommended
    assert bool((scores[:, :-1] >= scores[:, 1:]).all())


class _Payload:
    """Pickles into a call of ``open(marker, 'w')``: loading it would create the marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_checkpoint_with_pickled_callable_is_refused_and_never_runs(in_tmp):
    from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint
    from recbole_gemirec.quick_start import load_data_and_model

    marker = in_tmp / "payload_ran"
    path = in_tmp / "evil.pth"
    torch.save({"format": "recbole_gemirec.checkpoint/1", "config": _Payload(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="pickled Python objects"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError):
        load_data_and_model(str(path))
    assert not marker.exists()
    # The payload is real: an unsafe load would have run it.
    with open(path, "rb") as f, zipfile.ZipFile(f) as archive:
        data_name = next(n for n in archive.namelist() if n.endswith("data.pkl"))
        assert b"open" in archive.read(data_name)


def test_recbole_style_checkpoint_is_refused_with_a_clear_error(in_tmp):
    from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint
    from recbole_gemirec.config import Config

    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config())
    path = in_tmp / "recbole.pth"
    torch.save({"config": config, "state_dict": {}}, path, pickle_protocol=4)
    with pytest.raises(CheckpointError, match="refused"):
        load_checkpoint(path)


def test_other_files_are_refused_with_a_clear_error(in_tmp):
    from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint

    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(in_tmp / "missing.pth")
    (in_tmp / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(in_tmp / "junk.pth")
    torch.save({"weights": torch.zeros(2)}, in_tmp / "plain.pth")
    with pytest.raises(CheckpointError, match="not a recbole_gemirec checkpoint"):
        load_checkpoint(in_tmp / "plain.pth")


def _plain_state():
    from recbole_gemirec.checkpoint import FORMAT

    return {"format": FORMAT, "config": {"model": "SASRec", "dataset": "tiny", "external": {}, "final": {}},
            "epoch": 0, "cur_step": 0, "best_valid_score": None, "state_dict": {"w": torch.zeros(2)},
            "other_parameter": None, "optimizer": None, "extra": {}}


@pytest.mark.parametrize("edit,words", [
    (lambda s: s.pop("config"), "'config' is NoneType"),
    (lambda s: s.__setitem__("config", [1]), "'config' is list"),
    (lambda s: s["config"].pop("final"), "config['final'] is NoneType"),
    (lambda s: s["config"].__setitem__("external", [1]), "config['external'] is list"),
    (lambda s: s["config"].__setitem__("model", 5), "config['model'] is 5"),
    (lambda s: s.__setitem__("state_dict", [1]), "'state_dict' is list"),
    (lambda s: s["state_dict"].__setitem__("w", [1.0]), "'state_dict' is dict"),
    (lambda s: s.__setitem__("extra", [1]), "'extra' is list"),
], ids=["no config", "config list", "no final", "external list", "model number", "state_dict list",
        "weight not a tensor", "extra list"])
def test_an_edited_checkpoint_layout_is_refused_with_a_clear_error(edit, words, in_tmp, capsys):
    # were KeyError / TypeError / AttributeError tracebacks from whichever reader touched the part first
    from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint
    from recbole_gemirec.serving.__main__ import main as serving_main

    state = _plain_state()
    edit(state)
    path = in_tmp / "edited.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=f"checkpoint {path} is damaged: {re.escape(words)}; allowed: "):
        load_checkpoint(path)
    assert serving_main(["export", "--checkpoint", str(path), "--out", str(in_tmp / "x")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: checkpoint {path} is damaged"), lines


def _python(code, **env_vars):
    env = dict(os.environ, PYTHONPATH=REPO_DIR, **env_vars)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_DIR)


def test_model_lookup_leaves_anomaly_mode_off():
    # RecBole's SINE module turns anomaly mode on at import (here without the wheel's start-up hook, which
    # would import the extension); the extension turns it off again, also for RecBole's own get_model.
    plain = _python("import recbole.model.sequential_recommender, torch; print(torch.is_anomaly_enabled())",
                    RECBOLE_GEMIREC_STARTUP="0")
    assert plain.stdout.strip() == "True", plain.stderr
    recbole_lookup = _python("import recbole_gemirec, torch\nfrom recbole.utils import get_model\n"
                             "get_model('SINE'); get_model('SASRec'); print(torch.is_anomaly_enabled())")
    assert recbole_lookup.stdout.split() == ["False"], recbole_lookup.stderr
    ours = _python(
        "import recbole_gemirec, torch\n"
        "from recbole_gemirec.utils import get_model\n"
        "print(torch.is_anomaly_enabled()); get_model('SASRec'); get_model('GemiRec')\n"
        "print(torch.is_anomaly_enabled())"
    )
    assert ours.stdout.split() == ["False", "False"], ours.stderr


def test_recbole_config_builds_on_numpy_2():
    import numpy as np

    from recbole_gemirec.config import Config

    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config())
    assert config["model"] == "SASRec"
    assert np.float_ is np.float64  # the alias RecBole's Config needs


def test_cli_overrides_reach_the_config(tmp_path):
    proc = run_cli(["--model=Pop", "--topk=[3]", "--metrics=['Hit']", "--valid_metric=Hit@3",
                    "--result_file=r.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert set(read_json(tmp_path / "r.json")["test_result"]) == {"hit@3"}


def test_the_cli_evaluates_a_general_model_by_leave_one_out_like_a_sequential_one_unless_told(tmp_path):
    # RecBole's own default would split Pop's interactions 80/10/10 at random (a sequential model's: leave-one-out)
    for model, protocol in (("Pop", None), ("Pop", "user")):
        args = [f"--model={model}", "--result_file=r.json", "--no_save"] + ([f"--protocol={protocol}"] if protocol else [])
        proc = run_cli(args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        config = read_json(tmp_path / "r.json")["config"]
        assert config["eval_protocol"] == (protocol or "loo")
        if protocol is None:
            assert config["eval_args"]["split"] == {"LS": "valid_and_test"} and config["eval_args"]["order"] == "TO"


def test_wheel_ships_every_yaml_and_the_startup_hook(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), REPO_DIR],
        capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    wheel = next(p for p in os.listdir(tmp_path) if p.endswith(".whl"))
    names = set(zipfile.ZipFile(tmp_path / wheel).namelist())
    for folder, target in (("properties", "recbole_gemirec/properties"), ("dataset_configs", "recbole_gemirec/dataset_configs")):
        for root, _, files in os.walk(os.path.join(REPO_DIR, folder)):
            for name in files:
                if name.endswith((".yaml", ".hyper")):
                    relative = os.path.relpath(os.path.join(root, name), os.path.join(REPO_DIR, folder))
                    assert f"{target}/{relative}" in names, relative
    # the start-up hook lands in site-packages itself (recbole_gemirec_startup.py, docs/design.md §7)
    assert "recbole_gemirec_startup.py" in names
    pth = zipfile.ZipFile(tmp_path / wheel).read("recbole_gemirec_startup.pth").decode()
    assert pth == "import recbole_gemirec_startup; recbole_gemirec_startup.activate()\n"


def test_results_log_as_plain_numbers_and_faiss_loads_quietly():
    import logging
    from collections import OrderedDict

    import numpy as np

    import recbole_gemirec  # noqa: F401  (applies the stack fixes)
    from recbole_gemirec.quick_start import format_result

    text = format_result(OrderedDict([("recall@10", np.float64(0.12345)), ("ndcg@10", np.float32(0.5))]))
    assert text == "recall@10: 0.1235  ndcg@10: 0.5000" and "OrderedDict" not in text and "np." not in text
    assert logging.getLogger("faiss.loader").getEffectiveLevel() >= logging.WARNING
