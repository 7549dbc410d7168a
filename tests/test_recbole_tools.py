"""RecBole's own tools keep working after installing the extension: ``recbole.quick_start`` imports
(ray needs setuptools' ``pkg_resources``), and RecBole's ``load_data_and_model`` loads the extension's
checkpoints."""

import os
import re
import subprocess
import sys

import torch

from conftest import REPO_DIR, TINY_YAML, tiny_config

# numpy 2 dropped names ray 2.6.3 reads at import; recbole_gemirec restores them (recbole_gemirec._compat)
NUMPY_ALIASES = "import numpy as np\nfor old, new in (('float_', 'float64'), ('complex_', 'complex128'), " \
                "('unicode_', 'str_'), ('bool8', 'bool_')):\n    setattr(np, old, getattr(np, new))\n"


def python(code, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
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
