"""Shared helpers: paths of the tiny dataset and a runner for the command-line entry point."""

import json
import os
import subprocess
import sys

import pytest

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)
TEST_DATA = os.path.join(TESTS_DIR, "test_data")
TINY_YAML = os.path.join(TEST_DATA, "tiny.yaml")
RUN_SCRIPT = os.path.join(REPO_DIR, "run_recbole_gemirec.py")
PRESET_YAML = os.path.join(REPO_DIR, "properties", "presets", "GemiRec-factorised-categories.yaml")


def tiny_config(**overrides):
    """A config_dict for the tiny dataset, usable with the library API."""
    config = {"data_path": TEST_DATA, "checkpoint_dir": overrides.pop("checkpoint_dir", "saved")}
    config.update(overrides)
    return config


def run_cli(args, cwd, timeout=600, script=RUN_SCRIPT):
    """Run ``script`` (default ``run_recbole_gemirec.py``) on the tiny data in ``cwd``; return the
    CompletedProcess."""
    command = [sys.executable, script, "--dataset=tiny", f"--config_files={TINY_YAML}",
               f"--data_path={TEST_DATA}"] + list(args)
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def train_tiny(workdir, model="GemiRec", config_files=(), **overrides):
    """Train ``model`` on the tiny data inside ``workdir`` (RecBole writes saved/ and log/ in the current
    folder), with ``config_files`` after the dataset's; return the run's result, whose ``checkpoint`` is relative
    to ``workdir``."""
    from recbole_gemirec.quick_start import run_recbole_gemirec

    settings = tiny_config(checkpoint_dir=str(workdir / "saved"), **overrides)
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        return run_recbole_gemirec(model=model, dataset="tiny", config_file_list=[TINY_YAML, *config_files],
                                   config_dict=settings)
    finally:
        os.chdir(cwd)


def train_preset(workdir, **overrides):
    """GemiRec with the factorised-categories preset on the tiny data (one retrieval and one joint epoch, K = 5)."""
    settings = dict(gpt_layers=1, interest_category_field="category", interest_num=5,
                    stage_epochs={"retrieval": 1, "dictionary": 0, "joint": 1})
    settings.update(overrides)
    return train_tiny(workdir, "GemiRec", config_files=[PRESET_YAML], **settings)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run the test with the working directory in a fresh temporary folder (RecBole writes saved/, log/)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
