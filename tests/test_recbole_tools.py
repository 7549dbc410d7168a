"""RecBole's own tools keep working after installing the extension: ``recbole.quick_start`` imports
(ray needs setuptools' ``pkg_resources``), RecBole's ``load_data_and_model`` loads the extension's
checkpoints, RecBole's own ``Trainer`` writes checkpoints that load with ``weights_only=True``, and the
wheel's start-up hook (``recbole_gemirec_startup``) does all that for RecBole's own ``run_recbole``
without the user importing the extension."""

import os
import re
import subprocess
import sys

import torch

from conftest import REPO_DIR, TINY_YAML, tiny_config

# numpy 2 dropped names ray 2.6.3 reads at import; recbole_gemirec restores them (recbole_gemirec._compat)
NUMPY_ALIASES = "import numpy as np\nfor old, new in (('float_', 'float64'), ('complex_', 'complex128'), " \
                "('unicode_', 'str_'), ('bool8', 'bool_')):\n    setattr(np, old, getattr(np, new))\n"


# The line the wheel's recbole_gemirec_startup.pth runs at interpreter start (tests/test_foundation.py checks
# the wheel). An editable or PYTHONPATH checkout has no .pth, so the tests run the line themselves.
STARTUP = "import recbole_gemirec_startup; recbole_gemirec_startup.activate()\n"


def python(code, cwd, **env_vars):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    env.pop("RECBOLE_GEMIREC_STARTUP", None)
    env.update(env_vars)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


def test_recbole_quick_start_imports(tmp_path):
    proc = python("import recbole_gemirec\nimport recbole.quick_start\nimport pkg_resources\n"
                  "from importlib.metadata import version\nprint(version('setuptools'))", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert int(proc.stdout.split()[-1].split(".")[0]) < 82  # setuptools 82 removed pkg_resources


def test_install_files_keep_a_setuptools_with_pkg_resources():
    with open(os.path.join(REPO_DIR, "setup.py"), encoding="utf-8") as f:
        assert '"setuptools<82"' in f.read()
    with open(os.path.join(REPO_DIR, "constraints.txt"), encoding="utf-8") as f:
        pinned = re.search(r"^setuptools==(\d+)\.", f.read(), re.M)
    assert pinned and int(pinned.group(1)) < 82


def _sasrec_checkpoint(tmp_path):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(checkpoint_dir=str(tmp_path / "saved")))
    parts = build_run(config)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"], saved=True)
    return parts["trainer"].saved_model_file


LOAD_WITH_RECBOLE = (
    "import sys, torch\n"
    "from recbole.quick_start import load_data_and_model\n"
    "config, model, dataset, train_data, valid_data, test_data = load_data_and_model(sys.argv[1])\n"
    "state = torch.load(sys.argv[1])['state_dict']\n"
    "assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())\n"
    "print(type(model).__name__, config['model'], len(test_data) > 0)\n"
    "import recbole.quick_start.quick_start as qs\n"
    "torch.save({'weights': torch.zeros(1)}, 'other.pth')\n"
    "try:\n    qs.load_data_and_model('other.pth')\nexcept KeyError as err:\n    print('recbole', err)\n"
)


def _run_loader(prelude, checkpoint, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", prelude + LOAD_WITH_RECBOLE, checkpoint], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def test_recbole_load_data_and_model_loads_an_extension_checkpoint(in_tmp):
    checkpoint = _sasrec_checkpoint(in_tmp)
    assert torch.load(checkpoint)["config"]["model"] == "SASRec"
    # recbole_gemirec imported first (as numpy 2 requires), and recbole.quick_start imported before it
    for prelude in ("import recbole_gemirec\n", NUMPY_ALIASES + "import recbole.quick_start\nimport recbole_gemirec\n"):
        proc = _run_loader(prelude, checkpoint, in_tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = proc.stdout.strip().splitlines()
        assert "SASRec SASRec True" in lines
        assert "recbole 'config'" in lines  # any other file still goes to RecBole's own code


def test_startup_hook_imports_nothing_heavy_until_recbole_is_imported(tmp_path):
    proc = python(STARTUP + "import sys, json, email.parser\n"
                  "print(*[m for m in ('numpy', 'torch', 'pandas', 'recbole', 'recbole_gemirec') if m in sys.modules])\n"
                  "import recbole\n"
                  "print(*[m for m in ('numpy', 'recbole_gemirec') if m in sys.modules])\n"
                  "import recbole_gemirec_startup as startup\n"
                  "print(sum(isinstance(f, startup._Finder) for f in sys.meta_path))\n", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.splitlines() == ["", "numpy recbole_gemirec", "1"]


def test_startup_hook_is_switched_off_by_its_environment_variable(tmp_path):
    code = ("import sys, recbole_gemirec_startup as startup\n"
            "print(startup.activate())\n"
            "import numpy as np\n"
            "try:\n    import recbole.quick_start\nexcept AttributeError as err:\n    print('AttributeError', err)\n"
            "print('recbole_gemirec' in sys.modules)\n")
    for value in ("0", "off", "False"):
        proc = python(code, cwd=tmp_path, RECBOLE_GEMIREC_STARTUP=value)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines = proc.stdout.splitlines()
        assert lines[0] == "False" and lines[-1] == "False"
        assert lines[1].startswith("AttributeError") and "bool8" in lines[1]  # ray 2.6.3 under numpy 2, unmended
    proc = python(code, cwd=tmp_path, RECBOLE_GEMIREC_STARTUP="maybe")
    assert proc.returncode != 0
    assert "ValueError: RECBOLE_GEMIREC_STARTUP='maybe'" in proc.stderr


def test_hooks_are_installed_once():
    import recbole.trainer.trainer as recbole_trainer

    import recbole_gemirec_startup
    from recbole_gemirec import recbole_hooks

    recbole_hooks.install()
    method = recbole_trainer.Trainer.__dict__["_save_checkpoint"]
    recbole_hooks.install()
    recbole_gemirec_startup.activate()
    recbole_gemirec_startup.activate()
    assert recbole_trainer.Trainer.__dict__["_save_checkpoint"] is method
    assert getattr(method, "_recbole_gemirec_wrapped", False)
    assert sum(isinstance(f, recbole_gemirec_startup._Finder) for f in sys.meta_path) <= 1
    assert recbole_gemirec_startup._pending.get("recbole", []).count(recbole_gemirec_startup._import_extension) <= 1


def test_recbole_trainer_checkpoints_load_weights_only(in_tmp, monkeypatch):
    import recbole_gemirec  # noqa: F401  (its hooks; the wheel's start-up hook imports it for RecBole's own runs)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    from recbole_gemirec.checkpoint import FORMAT

    monkeypatch.setattr(sys, "argv", ["recbole"])  # RecBole's Config reads --key=value from sys.argv
    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(checkpoint_dir=str(in_tmp / "saved"), train_neg_sample_args=None))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    model = get_model("SASRec")(config, train_data._dataset)
    trainer = Trainer(config, model)  # RecBole's own trainer, not one of the extension's
    trainer.fit(train_data, valid_data, saved=True)
    state = torch.load(trainer.saved_model_file, weights_only=True)
    assert state["format"] == FORMAT and state["config"]["model"] == "SASRec"
    assert state["config"]["external"]["train_neg_sample_args"] is None
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.zero_()
    result = trainer.evaluate(test_data, load_best_model=True)  # RecBole's torch.load, default weights_only
    assert {"recall@10", "ndcg@10"} <= set(result)
    assert all(torch.equal(v, state["state_dict"][k]) for k, v in model.state_dict().items())
    resumed = Trainer(config, get_model("SASRec")(config, train_data._dataset))
    resumed.resume_checkpoint(trainer.saved_model_file)
    assert resumed.start_epoch == state["epoch"] + 1


RUN_RECBOLE = (
    "import sys, glob, torch, numpy as np\n"
    "assert 'bool8' not in np.__dict__ and 'recbole_gemirec' not in sys.modules\n"
    "from recbole.quick_start import run_recbole, load_data_and_model\n"
    "result = run_recbole(model='SASRec', dataset='tiny', config_file_list=[{tiny!r}],\n"
    "                     config_dict={{'data_path': {data!r}, 'train_neg_sample_args': None}})\n"
    "print(sorted(result['test_result']))\n"
    "checkpoint = glob.glob('saved/SASRec-*.pth')[0]\n"
    "config, model, dataset, train_data, valid_data, test_data = load_data_and_model(checkpoint)\n"
    "state = torch.load(checkpoint)['state_dict']\n"
    "assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())\n"
    "print(type(model).__name__, config['model'], len(test_data) > 0)\n"
)


def test_recbole_run_recbole_and_load_data_and_model_with_only_the_startup_hook(tmp_path):
    from conftest import TEST_DATA

    proc = python(STARTUP + RUN_RECBOLE.format(tiny=TINY_YAML, data=TEST_DATA), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "'recall@10'" in lines[-2] and "'ndcg@10'" in lines[-2]
    assert lines[-1] == "SASRec SASRec True"


def rank_with_recbole(describe):
    """A script for ``python -c``: RecBole's own load_data_and_model and full_sort_topk on checkpoint argv[1]
    for the user tokens argv[2] (comma-separated); prints ``describe`` (a Python expression over ``model`` and
    ``config``), then the top 5 item ids per user."""
    return (
        "import sys, torch\n"
        "import recbole_gemirec\n"
        "from recbole.quick_start import load_data_and_model\n"
        "from recbole.utils.case_study import full_sort_topk\n"
        "config, model, dataset, train_data, valid_data, test_data = load_data_and_model(sys.argv[1])\n"
        "uids = dataset.token2id(dataset.uid_field, sys.argv[2].split(','))\n"
        "scores, items = full_sort_topk(uids, model, test_data, k=5, device=config['device'])\n"
        f"print({describe})\n"
        "print(';'.join(','.join(str(int(i)) for i in row) for row in items))\n"
    )


RANK_WITH_RECBOLE = rank_with_recbole(
    "int(model.interest_masking), float(model.prior_weight), model.fusion_history, model.target_softmax")


def test_gemirec_opt_in_scoring_survives_recboles_loader_and_case_study(in_tmp):
    """A GemiRec trained with the opt-in keys (masking chosen on valid, history fusion, the within-interest
    target softmax) is ranked by RecBole's own load_data_and_model + full_sort_topk as the trained model
    ranks, with the scoring chosen on valid in force."""
    from recbole.utils.case_study import full_sort_topk

    from conftest import train_tiny
    from recbole_gemirec.quick_start import load_data_and_model

    result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", recipe="paper", gpt_layers=1,
                        interest_masking="auto", interest_weighting="log_joint", fusion_history=True,
                        target_softmax="interest", stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
    checkpoint = str(in_tmp / result["checkpoint"])
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint)
    users = ["1", "2", "3"]
    _, expected = full_sort_topk(dataset.token2id(dataset.uid_field, users), model, test_data, k=5,
                                 device=config["device"])
    proc = subprocess.run(
        [sys.executable, "-c", RANK_WITH_RECBOLE, checkpoint, ",".join(users)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1"),
        cwd=in_tmp, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    scoring, ranked = proc.stdout.strip().splitlines()[-2:]
    assert scoring == f"{int(model.interest_masking)} {float(model.prior_weight)} True interest"
    assert ranked == ";".join(",".join(str(int(i)) for i in row) for row in expected)
