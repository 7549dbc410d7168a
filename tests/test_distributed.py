"""Distributed training through the extension: RecBole's DDP path with gloo on CPU.

A 2-process run and a 1-process run of the same GemiRec configuration on the tiny data; the test checks
that the 2-process run finishes, gathers its metrics like a 1-process run and leaves one set of
checkpoints that loads in a single process. The figures of both are printed, not compared: with two
processes every batch is split in two and RecBole's DistributedSampler pads the evaluation users, so
the numbers differ a little.
"""

import pytest
import os
import socket

import torch

from conftest import read_json, run_cli

# interest_source: auto keeps the learned dictionary alone in a distributed run; the single-process run it is
# compared with pins the same, so both train the same stages
GEMIREC = ["--model=GemiRec", "--interest_category_field=category", "--recipe=paper", "--interest_source=learned", "--gpt_layers=2",
           "--stage_epochs={'retrieval':2,'dictionary':1,'joint':1}"]
METRICS = {"recall@5", "recall@10", "ndcg@5", "ndcg@10", "hit@5", "hit@10"}


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_gloo_processes_train_gemirec_and_report_metrics_like_one(tmp_path, capsys):
    two, one = tmp_path / "two", tmp_path / "one"
    two.mkdir()
    one.mkdir()
    proc = run_cli(GEMIREC + ["--nproc=2", f"--port={free_port()}", "--result_file=r.json"], cwd=two, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    proc = run_cli(GEMIREC + ["--result_file=r.json"], cwd=one, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    distributed, single = read_json(two / "r.json"), read_json(one / "r.json")
    with capsys.disabled():
        print(f"\n2 processes (gloo): test {distributed['test_result']}, {distributed['wall_time_s']} s"
              f"\n1 process:          test {single['test_result']}, {single['wall_time_s']} s")

    assert distributed["distributed"] == {"nproc": 2, "world_size": 2, "backend": "gloo", "group_offset": 0}
    assert "distributed" not in single
    for result in (distributed, single):
        assert set(result["test_result"]) == METRICS and set(result["best_valid_result"]) == METRICS
        assert all(0.0 <= v <= 1.0 for v in result["test_result"].values())
        assert set(result["stage_losses"]) == {"retrieval", "dictionary", "joint"}
    assert set(distributed) == set(single) | {"distributed"}  # gathered into the same form

    # one run name for both processes: one set of stage checkpoints, written by rank 0 only
    saved = sorted(name for name in os.listdir(two / "saved") if not name.startswith("."))
    claims = [name for name in os.listdir(two / "saved") if name.endswith(".claim")]
    assert len(claims) == 1  # rank 0 claimed the run name, the other process received it
    assert len(saved) == 6 and len({name.split("-retrieval")[0].split("-dictionary")[0].split("-joint")[0]
                                    for name in saved}) == 1, saved
    state = torch.load(two / distributed["checkpoint"])
    assert not {"local_rank", "world_size", "nproc", "ip", "port", "offset"} & set(state["config"]["external"])

    from recbole_gemirec.quick_start import load_data_and_model

    cwd = os.getcwd()
    os.chdir(two)
    try:
        config, model, *_ = load_data_and_model(str(two / distributed["checkpoint"]))
    finally:
        os.chdir(cwd)
    assert config["single_spec"] and type(model).__name__ == "GemiRec"


@pytest.mark.slow
def test_a_recbole_model_runs_on_two_processes_too(tmp_path):
    proc = run_cli(["--model=SASRec", "--nproc=2", f"--port={free_port()}", "--result_file=r.json"], cwd=tmp_path,
                   timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = read_json(tmp_path / "r.json")
    assert result["model"] == "SASRec" and result["distributed"]["backend"] == "gloo"
    assert set(result["test_result"]) == METRICS


def test_bad_process_layout_is_a_clear_error(tmp_path):
    proc = run_cli(["--model=SASRec", "--nproc=2", "--world_size=1"], cwd=tmp_path, timeout=120)
    assert proc.returncode == 2
    assert "world_size >= nproc" in proc.stderr and "Traceback" not in proc.stderr
