"""The benchmark harness (benchmarks/): the quick budget produces every file, and a rerun measures nothing again."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_DIR

if REPO_DIR not in sys.path:  # benchmarks/ is a top-level package of the repository, not of the wheel
    sys.path.insert(0, REPO_DIR)

from benchmarks import run as bench_run  # noqa: E402
from benchmarks.budgets import budget  # noqa: E402

QUICK = budget("quick")
SECTIONS = ["## Targets", "## 1. Accuracy", "## 2. Ablations", "## 3. Interest dictionary utilisation",
            "## 4. Speed and memory", "### Training: one epoch", "### Serving: latency per user",
            "### Evaluation: full-ranking throughput", "### Scale: a growing catalogue and interaction count",
            "## Where we fall short", "## Reproducing",
            "## Closing note: headline rows"]


def _run_quick(out):
    env = dict(os.environ, PYTHONPATH=REPO_DIR, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(out)], cwd=REPO_DIR,
                          env=env, capture_output=True, text=True, timeout=1200)


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    proc = _run_quick(out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return out, proc


@pytest.mark.slow
def test_quick_writes_one_json_per_run_with_the_figures(quick_run):
    out, _ = quick_run
    results = out / "results" / "quick"
    for model in QUICK["models"]:
        result = _read(results / "accuracy" / "tiny" / f"{model}__seed2020.json")
        for key in ("recall@20", "recall@50", "ndcg@50", "hit@50", "amr@50", "cur@50"):
            assert key in result["test_result"]
        assert "recall@50" in result["best_valid_result"]
        assert result["peak_rss_mb"] > 0
    gemirec = _read(results / "accuracy" / "tiny" / "GemiRec__seed2020.json")
    assert set(gemirec["epoch_times_s"]) == {"retrieval", "dictionary", "joint"}
    assert gemirec["utilisation"][-1]["stage"] == "joint"
    probe = gemirec["dictionary_probe"]["runs"]
    assert {(r["kmeans_init"], r["reseed_dead_codes"]) for r in probe} == {(True, True), (True, False), (False, True),
                                                                           (False, False)}
    for row in QUICK["ablation_names"]:
        assert "recall@50" in _read(results / "ablation" / "tiny" / f"{row}__seed2020.json")["test_result"]
    speed = results / "speed"
    train = _read(speed / "train__GemiRec__rep0.json")
    assert set(train["stages"]) == {"retrieval", "dictionary", "joint"}
    assert train["stages"]["joint"]["epoch_s"] > 0
    serving = _read(speed / "serving__n10000.json")
    assert set(serving["latency_ms"]) == {
        "GemiRec (interest cache + user tower)", "GemiRec (cached queries)", "GemiRec (no cache, GPT per request)",
        "GemiRec factorised (interest cache + user tower)", "GemiRec factorised (cached queries)",
        "GemiRec factorised (no cache, transition per request)", "GemiRec factorised, one index (cached queries)",
        "ComiRecSA (extractor per request)", "ComiRecSA (cached queries)"}
    # the tiny data's 9 categories: the recipe's K lowered to 9, plus u
    assert serving["queries_per_user"] == {"GemiRec": serving["k"], "GemiRec factorised": 10, "ComiRecSA": serving["k"]}
    assert all(v["p99"] >= v["median"] > 0 for v in serving["latency_ms"].values())
    assert serving["catalogue"] == "shared"
    assert serving["groups"] == [["GemiRec", "ComiRecSA"], ["GemiRec factorised", "ComiRecSA"]]
    assert all(("vs" in v) == (not name.startswith("ComiRecSA")) for name, v in serving["latency_ms"].items())
    assert serving["repeats"] == QUICK["speed"]["serving_repeats"] == 2
    assert all(len(v["per_repeat"]) == 2 and v["ratio"]["median"] > 0 for v in serving["latency_ms"].values())
    evaluation = _read(speed / "eval__GemiRec__native.json")
    assert evaluation["same_top_items"] and evaluation["ratio"] > 0
    for model in ("SASRec", "ComiRecSA", "GemiRec"):
        scale = _read(results / "scale" / f"scale_quick__{model}.json")
        assert scale["n_items"] == 3000 and scale["interactions"] > 1000 and scale["peak_rss_mb"] > 0
        assert all(0 < e["batches_timed"] <= 3 < e["epoch_batches"] or e["batches_timed"] == e["epoch_batches"]
                   for e in scale["stages"].values())
        assert scale["epoch_s_extrapolated"] > 0 and scale["eval_users_per_s"] > 0
    assert set(scale["stages"]) == {"retrieval", "dictionary", "joint"} and scale["softmax"] == "full"
    meta = _read(results / "meta.json")
    assert meta["machine"]["nproc"] and meta["versions"]["torch"] and meta["invocations"][-1]["finished"]
    assert meta["code"]["source"] == meta["speed_code"]["source"] == meta["scale_code"]["source"] == "working tree"


@pytest.mark.slow
def test_quick_writes_the_report_the_summary_and_the_charts(quick_run):
    out, _ = quick_run
    text = (out / "benchmarks.md").read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text
    assert "| model | Recall@20 | Recall@50 |" in text
    assert "python -m benchmarks.run --quick" in text
    assert re.search(r"\*\*Date\*\*: \d{4}-\d\d-\d\dT.* to \d{4}-\d\d-\d\dT", text)  # started and finished
    summary = _read(out / "results" / "quick" / "summary.json")
    assert set(summary) >= {"accuracy", "ablations", "dictionary", "speed", "targets", "machine", "versions"}
    assert summary["accuracy"]["tiny"]["GemiRec"]["recall@50"]["n"] == 1
    assert {t["met"] for t in summary["targets"]} <= {True, False, None}
    if importlib.util.find_spec("matplotlib") is not None:
        for chart in ("accuracy", "ablations", "dictionary", "speed"):
            assert (out / f"benchmarks_{chart}.png").stat().st_size > 1000
            assert f"benchmarks_{chart}.png" in text


@pytest.mark.slow
def test_a_rerun_skips_finished_runs_and_rebuilds_the_report(quick_run):
    out, _ = quick_run
    proc = _run_quick(out)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "0 measured" in proc.stdout and "0 failed" in proc.stdout
    assert (out / "benchmarks.md").exists()


def test_growth_exponent_is_the_log_log_slope():
    from benchmarks.scale import growth_exponent

    assert growth_exponent([1e4, 1e5, 1e6], [2.0, 20.0, 200.0]) == 1.0
    assert growth_exponent([1e4, 1e5, 1e6], [3.0, 3.0, 3.0]) == 0.0
    assert growth_exponent([10, 100], [1.0, 100.0]) == 2.0
    assert growth_exponent([10], [1.0]) is None and growth_exponent([10, 100], [None, 5.0]) is None


def test_a_variant_takes_the_bases_weights_but_scores_as_it_is_configured():
    import torch

    from benchmarks.variants import base_weights

    base = {"tower.w": torch.ones(2, 3), "fusion.w": torch.ones(4), "masking": torch.tensor(False),
            "prior_weight": torch.tensor(4.0), "novel_share": torch.tensor(0.0), "head.w": torch.ones(5)}
    own = {"tower.w": torch.zeros(2, 3), "fusion.w": torch.zeros(4), "masking": torch.tensor(True),
           "prior_weight": torch.tensor(1.0), "novel_share": torch.tensor(0.2), "head.w": torch.zeros(6)}
    assert sorted(base_weights(base, own)) == ["fusion.w", "tower.w"]  # the scoring buffers and a new shape stay


def test_unknown_part_is_refused(capsys):
    assert bench_run.main(["--quick", "--only", "accuracy,bogus", "--out", "/nonexistent/never-written"]) == 2
    assert "bogus" in capsys.readouterr().err


def test_models_and_datasets_outside_the_budget_are_refused(capsys):
    assert bench_run.main(["--quick", "--models", "GemiRec,Bogus", "--out", "/nonexistent/never-written"]) == 2
    assert "Bogus" in capsys.readouterr().err
    assert bench_run.main(["--quick", "--datasets", "nowhere", "--out", "/nonexistent/never-written"]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_the_filters_keep_only_the_named_models_and_datasets_of_the_tasks():
    def task(kind, dataset, row, model):
        return {"name": f"{kind}__{dataset}__{row}__seed2020", "model": model}

    tasks = [task("accuracy", "ml-100k", "SASRec", "SASRec"), task("accuracy", "synthetic", "GemiRec", "GemiRec"),
             task("ablation", "synthetic", "GemiRec-J", "GemiRec"), task("accuracy", "ml-100k", "GemiRec", "GemiRec")]
    kept = [t["name"] for t in tasks if bench_run.selected(t, {"GemiRec"}, {"synthetic"})]
    assert kept == ["accuracy__synthetic__GemiRec__seed2020", "ablation__synthetic__GemiRec-J__seed2020"]
    assert [t for t in tasks if bench_run.selected(t)] == tasks


def test_gemirec_settings_reach_the_gemirec_runs_only_and_never_mix_in_one_results_directory(tmp_path, capsys):
    assert bench_run.key_values(["interest_masking=true", "interest_source=category", "tau=0.5", "x=[1, 2]"]) == {
        "interest_masking": True, "interest_source": "category", "tau": 0.5, "x": [1, 2]}
    assert bench_run.key_values(["note=__import__('os')"]) == {"note": "__import__('os')"}  # data, never code
    for bad in ("novalue", "=3", "k=[unclosed"):
        with pytest.raises(ValueError, match="KEY=VALUE|not YAML"):
            bench_run.key_values([bad])
    assert bench_run.main(["--quick", "--gemirec-set", "oops", "--out", "/nonexistent/never-written"]) == 2
    assert "'oops'" in capsys.readouterr().err

    settings = dict(budget("quick"), gemirec_config={"interest_masking": True})
    gemirec = bench_run.run_config(settings, "GemiRec", 2020, str(tmp_path), "synthetic")
    sasrec = bench_run.run_config(settings, "SASRec", 2020, str(tmp_path), "synthetic")
    assert gemirec["interest_masking"] is True and "interest_masking" not in sasrec
    assert gemirec["stage_epochs"]["dictionary"] > 0
    categories = dict(settings, gemirec_config={"interest_source": "category"})
    assert bench_run.run_config(categories, "GemiRec", 2020, str(tmp_path), "synthetic")["stage_epochs"]["dictionary"] == 0

    results = tmp_path / "results"
    results.mkdir()
    (results / "meta.json").write_text(json.dumps({"budget": {"gemirec_config": {"interest_masking": True}}}))
    assert bench_run.main(["--quick", "--results", str(results), "--no-report"]) == 2
    assert "another --results" in capsys.readouterr().err

def test_code_is_pinned_to_a_git_snapshot(tmp_path, monkeypatch):
    found = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_DIR, capture_output=True, text=True)
    if found.returncode != 0:
        pytest.skip("not a git checkout")
    monkeypatch.setattr(bench_run, "CODE", dict(bench_run.CODE))
    where = {"results": str(tmp_path / "results"), "work": str(tmp_path / "work")}
    code = bench_run.pin_code(where, "HEAD")
    assert code["commit"] == found.stdout.strip()
    assert os.path.isfile(os.path.join(code["root"], "recbole_gemirec", "__init__.py"))
    assert os.path.isfile(os.path.join(code["root"], "dataset_configs", "protocol_user.yaml"))
    # the measuring side of the same commit, so an old results directory is not run by a newer harness
    assert os.path.isfile(os.path.join(code["root"], "benchmarks", "worker.py"))
    assert not os.path.exists(os.path.join(code["root"], "benchmarks", "results"))
    assert bench_run.protocol_file().startswith(code["root"])
    assert bench_run.code_path("tests/test_data/tiny.yaml") == os.path.join(REPO_DIR, "tests/test_data/tiny.yaml")


def test_the_committed_report_is_its_committed_results_regenerated_byte_for_byte(tmp_path):
    from benchmarks import report

    committed = os.path.join(REPO_DIR, "docs", "benchmarks.md")
    with open(committed, encoding="utf-8") as f:
        text = f.read()
    budget_name = re.search(r"from the JSON in `benchmarks/results/(\w+)/`", text).group(1)
    presets = re.findall(r"--preset (\S+?)[` ]", text.split("**Command**", 1)[1].split("\n", 1)[0])
    cwd = os.getcwd()
    os.chdir(REPO_DIR)  # the presets' directories are written relative to the repository
    try:
        report.main(["--budget", budget_name, "--docs", str(tmp_path)] + [f"--preset={p}" for p in presets])
    finally:
        os.chdir(cwd)
    assert (tmp_path / "benchmarks.md").read_text(encoding="utf-8") == text


def test_other_settings_runs_are_reported_beside_the_paper_recipes_with_their_own_targets(tmp_path, capsys):
    """benchmarks.report --preset LABEL=DIR: the GemiRec runs of a --gemirec-set results directory become the rows
    'GemiRec LABEL' of every accuracy table, with their settings, command and targets; a bad DIR is refused."""
    from benchmarks import report

    import shutil

    results = tmp_path / "converge"  # the report writes summary.json next to the results: a copy, not the committed
    shutil.copytree(os.path.join(REPO_DIR, "benchmarks", "results", "converge"), results)
    preset = os.path.join(REPO_DIR, "benchmarks", "results", "converge-factorised")
    args = ["--budget", "converge", "--results", str(results), "--docs", str(tmp_path)]
    assert report.main(args + [f"--preset=mine={preset}"]) == 0
    text = (tmp_path / "benchmarks.md").read_text(encoding="utf-8")
    assert "*Other settings*: the rows `GemiRec mine` are GemiRec with `interest_masking: true`" in text
    assert "*GemiRec's recipe*: the rows `GemiRec` and its ablations train the paper's recipe" in text
    assert "the factorised recipe, which the default" not in text  # that older setting is not today's recipe
    assert "--gemirec-set interest_masking=true" in text
    assert "--preset mine=benchmarks/results/converge-factorised`" in text  # the command, relative to the repository
    for dataset in ("ml-100k", "synthetic", "synthetic2"):
        assert f"| {dataset}: GemiRec mine Recall@50 >= " in text
    rows = [line for line in text.splitlines() if line.startswith("| GemiRec mine | ")]
    assert len(rows) == 9  # the test-figure, settings and closing-note table of each of the three datasets
    assert "GemiRec mine" in _read(results / "summary.json")["accuracy"]["synthetic"]
    assert report.main(args + ["--preset=nothing-here"]) == 2
    assert "--preset 'nothing-here'" in capsys.readouterr().err


def test_interest_source_choice_takes_the_better_valid_joint_stage_and_reports_its_test(tmp_path):
    from benchmarks import interest_source_choice as choice

    def write(part, name, seed, retrieval, joint, test_recall):
        path = tmp_path / part / "toy" / f"{name}__seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"stage_best_valid": {"retrieval": retrieval, "joint": joint}, "best_valid_score": joint,
                                    "test_result": {"recall@50": test_recall, "amr@50": 0.0, "cur@50": 0.1}}))

    write("accuracy", "GemiRec", 2020, 0.50, 0.51, 0.40)
    write("ablation", "GemiRec-I", 2020, 0.49, 0.53, 0.30)  # better on valid, worse on test: valid decides
    write("accuracy", "GemiRec", 2021, 0.50, 0.52, 0.45)
    write("ablation", "GemiRec-I", 2021, 0.50, 0.52, 0.60)  # a tie goes to the learned dictionary
    write("accuracy", "GemiRec", 2022, 0.50, 0.52, 0.45)  # no GemiRec-I record: the seed is left out
    rows = choice.rows(str(tmp_path), "toy")
    assert [(r["seed"], r["choice"]) for r in rows] == [(2020, "category"), (2021, "learned")]
    text = choice.table("toy", rows)
    assert "| 2020 | 0.5000 -> 0.5100 | 0.4900 -> 0.5300 | category | 0.4000 | 0.3000 | 0.3000 |" in text
    assert "joint adds +0.0150 | joint adds +0.0300" in text and "| 0.3750 (AMR" in text  # (0.30 + 0.45) / 2


def test_the_auto_table_reads_both_candidates_the_choice_and_the_baselines_on_the_same_seeds(tmp_path):
    from benchmarks import interest_source_choice as choice

    def write(root, model, seed, recall, **extra):
        path = tmp_path / root / "accuracy" / "toy" / f"{model}__seed{seed}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(extra, test_result={"recall@50": recall, "amr@50": 0.01, "cur@50": 0.1})))

    write("auto", "GemiRec", 2020, 0.50, stage_best_valid={"retrieval": 0.45}, interest_source="category",
          interest_source_valid={"learned": 0.46, "category": 0.48})
    write("auto", "GemiRec", 2021, 0.40, stage_best_valid={"retrieval": 0.45})  # not an auto run: left out
    for seed, recall in ((2020, 0.30), (2021, 0.90)):
        write("base", "SASRec", seed, recall)
    rows = choice.auto_rows(str(tmp_path / "auto"), "toy")
    assert [(r["seed"], r["choice"]) for r in rows] == [(2020, "category")]
    text = choice.auto_table("toy", rows, str(tmp_path / "base"))
    assert "| 2020 | 0.4500 | 0.4600 | 0.4800 | category | 0.5000 | 0.0100 | 0.1000 |" in text
    assert "| SASRec (same seeds) | | | | | 0.3000 |" in text  # seed 2021 is not averaged in
    assert "ComiRecSA" not in text  # no records: no row


def test_the_category_mixture_reference_ranks_pop_as_recbole_and_uses_the_history_categories():
    """benchmarks.category_mixture: its Pop row is RecBole's Pop on the same split, and the mixture, which
    reads each user's history categories, ranks differently from Pop. (RecBole's Pop adds one per item and
    batch, however often the item occurs in it, so it counts interactions only with batches of one.)"""
    from benchmarks.category_mixture import evaluate
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run
    from recbole_gemirec.trainer.extension_trainer import ExtensionTrainer

    protocol = os.path.join(REPO_DIR, "dataset_configs", "protocol_user.yaml")
    tiny = os.path.join(REPO_DIR, "tests", "test_data", "tiny.yaml")
    config = Config(model="Pop", dataset="tiny", config_file_list=[protocol, tiny],
                    config_dict={"data_path": os.path.join(REPO_DIR, "tests", "test_data"), "category_field": "category",
                                 "topk": [5], "metrics": ["Recall"], "valid_metric": "Recall@5", "train_batch_size": 1,
                                 "checkpoint_dir": "/tmp/cm-saved"})
    parts = build_run(config)
    parts["trainer"].fit(parts["train_data"], parts["valid_data"], saved=False)
    recbole_pop = ExtensionTrainer(config, parts["model"]).evaluate(parts["valid_data"], load_best_model=False)["recall@5"]
    ours = evaluate(parts, "valid", n=5)
    assert ours["Pop"] == pytest.approx(recbole_pop, abs=0.02)  # ties among equally popular items may differ
    assert ours["mixture eps 0.0"] != ours["Pop"]
    # the categories the history lacks, by the population's transitions: they move the ranking and, given
    # probability, find targets in unseen categories, which the history's categories alone (eps 0) never rank
    assert 0.0 < ours["train target share in categories the window lacks"] < 1.0
    assert any(ours[f"mixture eps 0.0 novel {beta}"] != ours["mixture eps 0.0"] for beta in (0.1, 0.2, 0.3))
    assert ours["CUR mixture eps 0.0 novel 0.3"] > ours["CUR mixture eps 0.0"]


# --- benchmarks.world_bound ------------------------------------------------------------------------------
def _world_params(**overrides):
    from recbole_gemirec.data import synthetic

    params = dict(synthetic.DEFAULTS, users=300, items=120, top_categories=2, leaves_per_top=3, seed=11)
    params.update(overrides)
    return params


def test_world_bound_reads_the_generators_popularity_table_as_its_sampling_does():
    """within_leaf_shares: p(item | leaf) from the generator's table sums to 1 per leaf and matches how often
    the generator's own sampler draws each item."""
    from benchmarks.world_bound import within_leaf_shares
    from recbole_gemirec.data import synthetic

    params = _world_params()
    item_leaf, items_by_leaf, cdf = synthetic.make_items(params, 6, np.random.default_rng(0))
    shares = within_leaf_shares(item_leaf, items_by_leaf, cdf)
    assert np.allclose(np.bincount(item_leaf, weights=shares), 1.0)
    draws = synthetic.sample_items(np.full(40_000, 2), items_by_leaf, cdf, np.random.default_rng(1))
    freq = np.bincount(draws, minlength=len(item_leaf)) / len(draws)
    assert np.abs(freq - np.where(item_leaf == 2, shares, 0.0)).max() < 0.01
    assert (shares[item_leaf == 2].max() > 2 * shares[item_leaf == 2].min())  # Zipf: not uniform


def test_world_bound_simulates_runs_noise_and_a_planted_interest():
    """simulate_tail follows the generator's process: without noise one interest takes every draw; a planted
    new interest adopted with certainty takes every draw from its start on; noise spreads draws elsewhere; a run
    in progress goes on until a switch."""
    from benchmarks.world_bound import simulate_tail

    rng = np.random.default_rng(0)
    quiet = _world_params(noise=0.0, adoption=1.0)
    one = simulate_tail(rng, quiet, range(20, 26), np.array([4]), np.array([1.0]), 6, sims=50)
    assert (one[:, 4] == 6).all() and one.sum() == 300
    planted = simulate_tail(rng, quiet, range(20, 26), np.array([4]), np.array([1.0]), 6, planted=(1, 22), sims=50)
    assert (planted[:, 4] == 2).all() and (planted[:, 1] == 4).all()
    never = simulate_tail(rng, dict(quiet, evolution_rate=0.0), range(20, 26), np.array([4]), np.array([1.0]), 6,
                          prior=(np.array([1]), 26), sims=50)
    assert (never[:, 4] == 6).all()
    noisy = simulate_tail(rng, _world_params(noise=0.5), range(20, 26), np.array([4]), np.array([1.0]), 6, sims=200)
    assert 0 < noisy[:, [0, 1, 2, 3, 5]].sum() < noisy.sum()
    # the run in progress goes on until the process switches: never here, so every draw stays in it
    going_on = simulate_tail(rng, dict(quiet, switch_prob=1e-12), range(20, 26), np.array([4]), np.array([1.0]), 6,
                             sims=50, first_leaf=3)
    assert (going_on[:, 3] == 6).all()


def test_world_bound_scores_items_by_their_expected_share_of_the_targets():
    """expected_target_share: an item of a category nobody draws scores 0; within a category the more popular
    item scores higher; a category drawn more often scores its items higher."""
    from benchmarks.world_bound import expected_target_share

    item_leaf = np.array([0, 0, 1, 1, 2])
    within = np.array([0.7, 0.3, 0.6, 0.4, 1.0])
    counts = np.array([[3.0, 1.0, 0.0], [2.0, 0.0, 0.0]])
    scores = expected_target_share(counts, within, item_leaf)
    assert scores[4] == 0.0
    assert scores[0] > scores[1] > 0 and scores[2] > scores[3] > 0
    assert scores[0] > scores[2]


def test_world_bound_on_a_small_generated_world_under_the_user_protocol(tmp_path):
    """benchmarks.world_bound.evaluate end to end: it regenerates the world's draws from its truth file, and the
    ranker that knows each user's latent state finds more of the targets than the ones reading the window."""
    from benchmarks.world_bound import KNOWLEDGE, evaluate
    from recbole_gemirec.config import Config
    from recbole_gemirec.data import synthetic
    from recbole_gemirec.quick_start import build_run

    params = _world_params(name="world", users=400, items=150, mean_length=30)
    synthetic.write_dataset(synthetic.generate(params, progress=False), str(tmp_path), "world")
    config = Config(model="Pop", dataset="world",
                    config_file_list=[os.path.join(REPO_DIR, "dataset_configs", name)
                                      for name in ("protocol_user.yaml", "synthetic.yaml")],
                    config_dict={"data_path": str(tmp_path), "checkpoint_dir": str(tmp_path / "saved"),
                                 "topk": [10], "metrics": ["Recall"], "valid_metric": "Recall@10"})
    rows = evaluate(build_run(config), "test", sims=100, n=10)
    assert set(rows) == set(KNOWLEDGE)
    assert all(0.0 <= r["recall@10"] <= 1.0 and r["users"] == rows["latent"]["users"] > 20 for r in rows.values())
    assert rows["latent"]["recall@10"] > max(rows["window, true tables"]["recall@10"],
                                            rows["window, estimated tables"]["recall@10"])


def test_models_measured_over_one_catalogue_search_one_index_where_their_columns_are_the_same():
    """The serving benchmark compares the models over one catalogue: equal indexed columns (GemiRec's without its
    bias column, ComiRecSA's) are searched through one faiss index, other columns get their own."""
    from benchmarks.speed import _flat_index

    vectors = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    indexes = {}
    first, again, other = (_flat_index(v, indexes)[0] for v in (vectors, vectors.copy(), vectors + 1.0))
    assert first is again and other is not first and len(indexes) == 2
    assert first.ntotal == 50 and first.d == 8


def test_each_model_is_timed_beside_the_baseline_alone_and_its_ratio_is_to_that_baseline():
    """A server holds one model: each model's serving variants are interleaved with the baseline's only, and its
    latency target is read against the baseline's live request measured beside it (``vs``), not another group's."""
    from benchmarks.report_targets import HEADLINE_COMIREC, HEADLINE_FACTORISED, _serving_targets
    from benchmarks.speed import serving_groups

    models = ["GemiRec", "GemiRec factorised", "ComiRecSA"]
    assert serving_groups(models, "ComiRecSA") == [["GemiRec", "ComiRecSA"], ["GemiRec factorised", "ComiRecSA"]]
    assert serving_groups(models) == serving_groups(models, "SASRec") == [models]  # no baseline among them: one group
    beside = {"median": 1.0, "p90": 1.05, "p99": 1.1}
    latency = {HEADLINE_FACTORISED: {"median": 0.9, "p90": 0.95, "p99": 1.0, "vs": beside},
               HEADLINE_COMIREC: {"median": 0.5, "p90": 0.55, "p99": 0.6}}  # the first group's, faster
    [target] = _serving_targets({10_000: {"latency_ms": latency}})
    assert target["met"] and "0.90x" in target["measured"]
    from benchmarks.report import _baseline_beside_rows

    groups = [["GemiRec", "ComiRecSA"], ["GemiRec factorised", "ComiRecSA"]]
    rows = _baseline_beside_rows({10_000: {"latency_ms": latency, "groups": groups}}, [10_000])
    assert rows == [["ComiRecSA (extractor per request), beside GemiRec factorised", "1.000 (1.100) 1.00x"]]
    del latency[HEADLINE_FACTORISED]["vs"]  # a result of one group: the result's own baseline
    [target] = _serving_targets({10_000: {"latency_ms": latency}})
    assert not target["met"] and "1.80x" in target["measured"]


def test_serving_figures_are_medians_over_repeats_and_each_ratio_is_of_requests_measured_together():
    """A repeat times every group (its variants interleaved) and records each variant's ratio to the baseline's live
    request of the same group; over the repeats each figure is the median, and a ratio is the median of the repeats'
    ratios, not the ratio of medians taken from different repeats (the machine's speed drifts between them)."""
    from types import SimpleNamespace

    from benchmarks.speed import _over_repeats, _serving_repeat

    calls = []

    def variant(name):
        def run(i):
            calls.append(name)
            return SimpleNamespace(items=[0] * 3)
        return run

    names = ["A (interest cache + user tower)", "A (cached queries)", "B (interest cache + user tower)",
             "C (extractor per request)", "C (cached queries)"]
    owners = {name: name.split(" (")[0] for name in names}
    groups = [["A", "C"], ["B", "C"]]
    for rotation in (0, 1):
        calls.clear()
        stats = _serving_repeat({name: variant(name) for name in names}, owners, groups, "C", rotation, requests=4,
                                warmup=1, topn=3, n_items=10, shuffle=np.random.default_rng(0))
        assert next(owners[name] for name in calls if owners[name] != "C") == groups[rotation][0]  # it runs first
        assert calls.count("C (extractor per request)") == 2 * 5 and calls.count("A (cached queries)") == 5
        assert set(stats) == set(names)
        assert all(("vs" in v) == (owners[name] != "C") and "ratio" in v for name, v in stats.items())
        for name, v in stats.items():
            beside = v.get("vs", stats["C (extractor per request)"])
            assert v["ratio"]["median"] == pytest.approx(v["median"] / beside["median"], rel=1e-3, abs=1e-4)
    repeats = [{"median": 1.0, "p90": 1.0, "p99": 2.0, "mean": 1.0, "vs": {"median": 1.0, "p90": 1.0, "p99": 2.0,
                                                                            "mean": 1.0}, "ratio": {"median": 1.0, "p99": 1.0}},
               {"median": 2.0, "p90": 2.0, "p99": 3.0, "mean": 2.0, "vs": {"median": 2.5, "p90": 2.5, "p99": 3.0,
                                                                            "mean": 2.5}, "ratio": {"median": 0.8, "p99": 1.0}},
               {"median": 3.0, "p90": 3.0, "p99": 9.0, "mean": 3.0, "vs": {"median": 2.0, "p90": 2.0, "p99": 4.0,
                                                                            "mean": 2.0}, "ratio": {"median": 1.5, "p99": 2.25}}]
    over = _over_repeats(repeats)
    assert over["median"] == 2.0 and over["p99"] == 3.0 and over["vs"]["median"] == 2.0
    assert over["ratio"] == {"median": 1.0, "p99": 1.0}  # the ratio of the medians would be 2.0 / 2.0 and 3.0 / 3.0
    assert [{k: r[k] for k in ("median", "p99")} for r in over["per_repeat"]] == \
        [{"median": 1.0, "p99": 2.0}, {"median": 2.0, "p99": 3.0}, {"median": 3.0, "p99": 9.0}]
    assert [r["ratio"]["median"] for r in over["per_repeat"]] == [1.0, 0.8, 1.5]  # each repeat's own ratio kept
    from benchmarks.report_targets import serving_ratio

    latency = {"A (interest cache + user tower)": dict(over, ratio={"median": 0.99, "p99": 1.01})}
    assert serving_ratio(latency, "A (interest cache + user tower)") == 0.99
    assert serving_ratio(latency, "A (interest cache + user tower)", "p99") == 1.01
    del latency["A (interest cache + user tower)"]["ratio"]  # a result of one repeat: the ratio of its figures
    assert serving_ratio(latency, "A (interest cache + user tower)") == pytest.approx(1.0)


def test_the_serving_shortfall_says_how_far_each_repeats_ratio_and_the_machines_speed_moved():
    """A ratio near 1.0x is read against the spread of the repeats: the note gives each repeat's ratio range and the
    baseline's own live median range per catalogue, and says nothing where the repeats did not record their ratios."""
    from benchmarks.report import _repeat_spread_note
    from benchmarks.report_targets import HEADLINE_COMIREC, HEADLINE_GEMIREC

    def repeat(median, ratio, tail):
        return {"median": median, "p99": 2 * median, "ratio": {"median": ratio, "p99": tail}}

    latency = {HEADLINE_GEMIREC: {"per_repeat": [repeat(0.5, 1.1, 1.2), repeat(0.7, 0.95, 1.05), repeat(0.6, 1.0, 0.9)]},
               HEADLINE_COMIREC: {"per_repeat": [{"median": 0.45, "p99": 0.9}, {"median": 0.74, "p99": 1.5},
                                                 {"median": 0.6, "p99": 1.2}]}}
    old = {HEADLINE_GEMIREC: {"per_repeat": [{"median": 0.5, "p99": 1.0}, {"median": 0.6, "p99": 1.1}]}}
    summary = {"speed": {"serving": {"10000": {"latency_ms": latency}, "100000": {"latency_ms": old}}}}
    note = _repeat_spread_note(summary, HEADLINE_GEMIREC)
    assert note == (" Over the 3 repeats each repeat's ratio ranged: 10,000 items 0.95x-1.10x (p99 0.90x-1.20x), "
                    "ComiRecSA's live median (its first group) 0.450-0.740 ms.")
    assert _repeat_spread_note({"speed": {"serving": {"100000": {"latency_ms": old}}}}, HEADLINE_GEMIREC) == ""
