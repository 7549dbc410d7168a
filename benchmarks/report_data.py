"""Loading and aggregating the benchmark's results: every JSON a run wrote -> the figures of the report
(``summary.json``). Nothing is measured or written here."""

import glob
import json
import os
import statistics

from benchmarks.budgets import ABLATIONS
from benchmarks.report_numbers import is_gemirec_row, mean_of, median, ratio, stats
from benchmarks.report_targets import targets
from recbole_gemirec.model.gemirec import PRIOR_WEIGHT_GRID, scoring_candidates, scoring_label

# The tau grids interest_prior_weight: auto has had, newest first. A run does not record the grid it tried; the
# one whose number of candidates matches the run's extra joint-stage validations is the one it tried.
PRIOR_WEIGHT_GRIDS = (PRIOR_WEIGHT_GRID, (0.5, 1.0, 2.0, 4.0))


METRIC_COLUMNS = ["recall@20", "recall@50", "ndcg@20", "ndcg@50", "hit@20", "hit@50", "amr@50", "cur@50"]


DIAGNOSTIC_COLUMNS = [
    ("recall@50/model", "Recall@50"),
    ("recall@50/best_single_query", "best single query"),
    ("recall@50/oracle_interests", "oracle interests"),
    ("next_interest_hit@5/level1/generator", "Hit@5 generator (level 1)"),
    ("next_interest_hit@5/level1/frequency", "Hit@5 frequency"),
    ("next_interest_hit@5/level1/popularity", "Hit@5 popularity"),
    ("cache_holds_target_interest", "cache holds target interest"),
    ("cosine/query_query", "cos query-query"),
    ("cosine/query_user", "cos query-u"),
    ("unseen_targets/interest_in_cache", "unseen target's interest proposed"),
    ("cur@50/proposed", "CUR@50 proposed"),
    ("cur@50/not_proposed", "CUR@50 not proposed"),
]


def _read(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load(results):
    """Every result file under ``results``, grouped: accuracy, ablation, speed, scale, world_bound (the
    reference rankers of ``benchmarks.world_bound``), meta, errors."""
    data = {"accuracy": {}, "ablation": {}, "speed": {}, "scale": {}, "world_bound": {}, "errors": [], "meta": {}}
    meta = os.path.join(results, "meta.json")
    if os.path.exists(meta):
        data["meta"] = _read(meta)
    for part in ("accuracy", "ablation"):
        for path in sorted(glob.glob(os.path.join(results, part, "*", "*.json"))):
            if path.endswith(".error.json"):
                if not os.path.exists(path[:-len(".error.json")]):
                    data["errors"].append(_read(path))
                continue
            dataset = os.path.basename(os.path.dirname(path))
            name, seed = os.path.basename(path)[:-5].rsplit("__seed", 1)
            data[part].setdefault(dataset, {}).setdefault(name, {})[int(seed)] = _read(path)
    for part in ("speed", "scale", "world_bound"):
        for path in sorted(glob.glob(os.path.join(results, part, "*.json"))):
            if path.endswith(".error.json"):
                if not os.path.exists(path[:-len(".error.json")]):
                    data["errors"].append(_read(path))
                continue
            data[part][os.path.basename(path)[:-5]] = _read(path)
    return data


def add_presets(data, presets):
    """Add the GemiRec runs of opt-in presets (``[(label, results dir)]``, each measured by ``benchmarks.run
    --gemirec-set`` into its own results directory) to ``data`` as the accuracy rows ``GemiRec <label>``, and
    what each ran (its settings and code) to ``data["presets"]``."""
    data.setdefault("presets", {})
    for label, where in presets:
        other = load(where)
        name = f"GemiRec {label}"
        for dataset, models in other["accuracy"].items():
            if "GemiRec" in models:
                data["accuracy"].setdefault(dataset, {})[name] = models["GemiRec"]
        meta = other["meta"]
        data["presets"][name] = {"results": where, "settings": (meta.get("budget") or {}).get("gemirec_config") or {},
                                 "code": (meta.get("code") or {}).get("source")}
        data["errors"] += other["errors"]
    return data


def aggregate_scale(scale):
    """``{model: {"sizes": [per-size figures, smallest first], "exponents": {...}}}`` of the scale runs."""
    from benchmarks.scale import growth_exponent

    out = {}
    for r in scale.values():
        out.setdefault(r["model"], {"sizes": []})["sizes"].append({
            "size": r["size"], "n_items": r["n_items"], "interactions": r["interactions"], "load_s": r["load_s"],
            "epoch_s": r["epoch_s_extrapolated"], "stages": r["stages"], "eval_users_per_s": r["eval_users_per_s"],
            "peak_rss_mb": r.get("peak_rss_mb"), "softmax": r["softmax"], "cap_batches": r["cap_batches"],
        })
    for entry in out.values():
        sizes = sorted(entry["sizes"], key=lambda e: e["interactions"])
        entry["sizes"] = sizes
        inter = [e["interactions"] for e in sizes]
        items = [e["n_items"] for e in sizes]
        entry["exponents"] = {
            "epoch_s vs interactions": growth_exponent(inter, [e["epoch_s"] for e in sizes]),
            "load_s vs interactions": growth_exponent(inter, [e["load_s"] for e in sizes]),
            "peak_rss_mb vs interactions": growth_exponent(inter, [e["peak_rss_mb"] for e in sizes]),
            "seconds per evaluated user vs items": growth_exponent(
                items, [1 / e["eval_users_per_s"] if e["eval_users_per_s"] else None for e in sizes]),
        }
    return out


def aggregate_accuracy(runs):
    """``{dataset: {model: {metric: stats, 'valid_recall@50': stats, ...}}}``."""
    table = {}
    for dataset, models in runs.items():
        for model, seeds in models.items():
            row = {"seeds": sorted(seeds)}
            for metric in METRIC_COLUMNS:
                row[metric] = stats([r["test_result"].get(metric) for r in seeds.values()])
            row["valid_recall@50"] = stats([r["best_valid_result"].get("recall@50") for r in seeds.values()])
            row["wall_time_s"] = stats([r.get("wall_time_s") for r in seeds.values()])
            row["peak_rss_mb"] = stats([r.get("peak_rss_mb") for r in seeds.values()])
            first = next(iter(seeds.values()))
            configs = [r.get("config", {}) for r in seeds.values()]
            row["config_differs"] = sorted(k for k in set().union(*configs) - {"seed", "user_split_seed"}
                                           if len({json.dumps(c.get(k), sort_keys=True) for c in configs}) > 1)
            row["interest_num"] = first.get("interest_num")
            row["config"] = first.get("config", {})
            row["train_samples"] = first.get("train_samples")
            row["n_items"] = first.get("n_items")
            row["n_users"] = first.get("n_users")
            epochs = {}
            for r in seeds.values():
                for stage, times in (r.get("epoch_times_s") or {}).items():
                    epochs.setdefault(stage, []).extend(times)
            row["epoch_s"] = {stage: median(times) for stage, times in epochs.items()}
            row["epochs_trained"] = {stage: len(times) / len(seeds) for stage, times in epochs.items()}
            table.setdefault(dataset, {})[model] = row
    return table


def utilisation_overall(per_level, sizes):
    """Share of all codewords in use (sum over levels of used codewords / sum of sizes)."""
    if not per_level or not sizes or len(per_level) != len(sizes):
        return None
    return sum(u * s for u, s in zip(per_level, sizes)) / sum(sizes)


def aggregate_dictionary(runs, ablation_runs):
    """Utilisation after initialisation and after the probe's epochs, k-means vs random, per dataset."""
    out = {}
    for dataset, models in runs.items():
        seeds = models.get("GemiRec", {})
        rows = {}
        sizes = None
        epochs = None
        for result in seeds.values():
            probe = result.get("dictionary_probe")
            if not probe:
                continue
            sizes = result.get("config", {}).get("interest_dictionary_sizes")
            epochs = probe["epochs"]
            for run in probe["runs"]:
                key = ("k-means" if run["kmeans_init"] else "random") + (
                    ", dead codes re-seeded" if run["reseed_dead_codes"] else ", no re-seeding")
                entry = rows.setdefault(key, {"kmeans_init": run["kmeans_init"],
                                              "reseed_dead_codes": run["reseed_dead_codes"], "init": [], "end": []})
                entry["init"].append(run["history"][0])
                entry["end"].append(run["history"][-1])
        if not rows:
            continue
        table = {}
        for key, entry in rows.items():
            row = {"kmeans_init": entry["kmeans_init"], "reseed_dead_codes": entry["reseed_dead_codes"]}
            for when in ("init", "end"):
                levels = list(zip(*[h["per_level"] for h in entry[when]]))
                row[when] = {
                    "per_level": [statistics.fmean(level) for level in levels],
                    "overall": stats([utilisation_overall(h["per_level"], sizes) for h in entry[when]]),
                    "distinct_codes": stats([h["distinct_codes"] for h in entry[when]]),
                }
            table[key] = row
        final = {}
        for name, label in (("GemiRec", "k-means (full GemiRec)"), ("GemiRec-K", "random (GemiRec-K)")):
            source = models.get(name) if name == "GemiRec" else (ablation_runs.get(dataset) or {}).get(name)
            if not source:
                continue
            finals = [r["utilisation"][-1] for r in source.values() if r.get("utilisation")]
            if finals:
                final[label] = {
                    "per_level": [statistics.fmean(level) for level in zip(*[f["per_level"] for f in finals])],
                    "overall": stats([utilisation_overall(f["per_level"], sizes) for f in finals]),
                    "distinct_codes": stats([f["distinct_codes"] for f in finals]),
                    "seeds": len(finals),
                }
        out[dataset] = {"sizes": sizes, "epochs": epochs, "seeds": len(seeds), "probe": table, "after_training": final}
    return out


def aggregate_ablations(runs, accuracy_runs):
    out = {}
    for dataset, rows in runs.items():
        table = []
        seeds_used = sorted({s for seeds in rows.values() for s in seeds})
        full_runs = {s: r for s, r in accuracy_runs.get(dataset, {}).get("GemiRec", {}).items() if s in seeds_used}
        entry = {"row": "GemiRec", "meaning": "full model", "paper_change": None}
        for metric in ("recall@50", "amr@50", "cur@50", "ndcg@50"):
            entry[metric] = stats([r["test_result"].get(metric) for r in full_runs.values()])
        entry["seeds"] = sorted(full_runs)
        table.append(entry)
        base = mean_of(entry["recall@50"])
        for name, meaning, _, paper in ABLATIONS:
            seeds = rows.get(name)
            if not seeds:
                continue
            entry = {"row": name, "meaning": meaning, "paper_change": paper, "seeds": sorted(seeds)}
            for metric in ("recall@50", "amr@50", "cur@50", "ndcg@50"):
                entry[metric] = stats([r["test_result"].get(metric) for r in seeds.values()])
            # change of Recall@50 against the full model, per seed (paired), then averaged
            changes = [ratio(seeds[s]["test_result"]["recall@50"], full_runs[s]["test_result"]["recall@50"])
                       for s in seeds if s in full_runs]
            entry["change"] = stats([c - 1 for c in changes if c is not None])
            entry["change_of_means"] = None if base in (None, 0) or entry["recall@50"] is None else \
                entry["recall@50"]["mean"] / base - 1
            table.append(entry)
        out[dataset] = table
    return out


def aggregate_speed(speed):
    out = {"train": {}, "serving": {}, "serving_memory": {}, "eval": {}}
    train = {}
    for name, r in speed.items():
        if name.startswith("train__"):
            model = name.split("__")[1]
            for stage, entry in r["stages"].items():
                train.setdefault((model, stage), []).append(entry | {"peak_rss_mb": r.get("peak_rss_mb"),
                                                                     "train_batch_size": r.get("train_batch_size")})
    for (model, stage), entries in train.items():
        out["train"].setdefault(model, {})[stage] = {
            "epoch_s": median([e["epoch_s"] for e in entries]),
            "epoch_wall_s": median([e["epoch_wall_s"] for e in entries]),
            "median_batch_s": median([e["median_batch_s"] for e in entries]),
            "batches": entries[0]["batches"],
            "repeats": len(entries),
            "peak_rss_mb": max(e["peak_rss_mb"] or 0 for e in entries),
            "train_batch_size": entries[0]["train_batch_size"],
            "stage_init_s": median([e.get("stage_init_s") for e in entries]),
        }
    for name, r in speed.items():
        if name.startswith("serving__"):
            out["serving"][r["n_items"]] = r
        elif name.startswith("serving_memory__"):
            model = (r.get("models") or [name.split("__")[1]])[0]
            out["serving_memory"].setdefault(model, {})[r["n_items"]] = r.get("peak_rss_mb")
        elif name.startswith("eval__"):
            model, catalogue = name.split("__")[1:3]
            out["eval"].setdefault(model, {})[catalogue] = r
    return out


def stage_scores(runs):
    """GemiRec's valid Recall@50 by stage, from the runs' ``valid_scores``: ``{dataset: {row: {...}}}``."""
    out = {}
    for dataset, models in runs.items():
        for name, seeds in models.items():
            per = [r.get("valid_scores") for r in seeds.values() if r.get("valid_scores")]
            if not per or not (is_gemirec_row(name) or name in tuple(a[0] for a in ABLATIONS)):
                continue
            retrieval = [max(v["score"] for v in p if v["stage"] == "retrieval") for p in per
                         if any(v["stage"] == "retrieval" for v in p)]
            # with interest_prior_weight: auto the last validations of the joint stage are the tau grid, tried on
            # the best epoch's weights (scoring only), not epochs
            candidates = [_scoring_candidates(r.get("config") or {}, _scoring_validations(r))
                          for r in seeds.values() if r.get("valid_scores")]
            grid = [len(c) for c in candidates]
            joint = [[v["score"] for v in p if v["stage"] == "joint"] for p in per]
            tau = [j[len(j) - g:] for j, g in zip(joint, grid) if g and len(j) > g]
            joint = [j[: len(j) - g] if g and len(j) > g else j for j, g in zip(joint, grid)]
            joint = [j for j in joint if j]
            out.setdefault(dataset, {})[name] = {
                "seeds": len(per),
                "retrieval_best": stats(retrieval),
                "joint_epochs": [statistics.fmean(e) for e in zip(*joint)] if joint else [],
                "joint_best": stats([max(j) for j in joint]),
                "tau_grid": [statistics.fmean(t) for t in zip(*tau)] if tau else [],
                "tau_labels": [scoring_label(*c) for c in candidates[0]] if candidates else [],
                # the model that is tested: the best epoch under the tau chosen on valid
                "final": stats([max(t) for t in tau]) if tau else stats([max(j) for j in joint]),
            }
    return out


def _scoring_validations(run):
    """How many of a run's joint-stage validations were scoring candidates rather than epochs (``None``: the
    run did not record its epochs)."""
    epochs = (run.get("epoch_times_s") or {}).get("joint")
    if epochs is None:
        return None
    return sum(1 for v in run["valid_scores"] if v["stage"] == "joint") - len(epochs)


def _scoring_candidates(config, tried=None):
    """The scoring choices a run tried on valid after its joint stage (results written before
    ``interest_masking`` existed scored without masking): under the tau grid of :data:`PRIOR_WEIGHT_GRIDS` that
    gives ``tried`` candidates, the current one when none does or ``tried`` is unknown."""
    transition = config.get("interest_predictor") == "transition"
    options = [scoring_candidates(config.get("interest_prior_weight"), config.get("interest_masking", False),
                                  config.get("novel_interest_share") if transition else None, tau_grid=grid,
                                  current_share=config.get("current_interest_share") if transition else None,
                                  ranking=config.get("within_interest_ranking"))
               for grid in PRIOR_WEIGHT_GRIDS]
    return next((c for c in options if len(c) == tried), options[0])


# The diagnostics of recbole_gemirec.diagnose shown per GemiRec row (test split), and their column titles.


def aggregate_diagnostics(runs):
    """``{dataset: {row: {key: stats}}}`` of the diagnostics stored in GemiRec runs (mean over seeds)."""
    out = {}
    for dataset, models in runs.items():
        for name, seeds in models.items():
            found = [r["diagnostics"] for r in seeds.values() if r.get("diagnostics")]
            if found:
                out.setdefault(dataset, {})[name] = {
                    key: stats([d[key] for d in found if d.get(key) is not None]) for key, _ in DIAGNOSTIC_COLUMNS}
    return out


def world_bounds(records):
    """``{dataset: {split: {ranker: {"recall@50", "cur@50"}}}}``: the means of ``benchmarks.world_bound``'s records."""
    out = {}
    for r in records.values():
        out.setdefault(r["dataset"], {})[r["split"]] = r["mean"]
    return out


def summarise(data):
    accuracy = aggregate_accuracy(data["accuracy"])
    summary = {
        "accuracy": accuracy,
        "ablations": aggregate_ablations(data["ablation"], data["accuracy"]),
        "dictionary": aggregate_dictionary(data["accuracy"], data["ablation"]),
        "gemirec_stages": stage_scores({d: {**data["accuracy"].get(d, {}), **data["ablation"].get(d, {})}
                                         for d in sorted(set(data["accuracy"]) | set(data["ablation"]))}),
        "speed": aggregate_speed(data["speed"]),
        "scale": aggregate_scale(data["scale"]),
        "diagnostics": aggregate_diagnostics({d: {**data["accuracy"].get(d, {}), **data["ablation"].get(d, {})}
                                              for d in sorted(set(data["accuracy"]) | set(data["ablation"]))}),
        "world_bound": world_bounds(data["world_bound"]),
    }
    summary["targets"] = targets(accuracy, summary["speed"], summary["gemirec_stages"], summary["scale"],
                                 data["meta"].get("machine", {}).get("memory_gib"))
    return summary


def expected_runs(settings):
    """Names of the result files the budget should produce (for the list of missing ones)."""
    names = []
    for dataset in settings["datasets"]:
        for model in settings["models"]:
            for seed in settings["seeds"]:
                names.append(f"accuracy/{dataset}/{model}__seed{seed}.json")
    for dataset, seeds in settings["ablations"].items():
        for row in settings["ablation_names"]:
            for seed in seeds:
                names.append(f"ablation/{dataset}/{row}__seed{seed}.json")
    return names
