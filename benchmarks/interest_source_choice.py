"""Learned interests or the preset categories, chosen per run on the valid split: what the converge records say.

    python -m benchmarks.interest_source_choice [--results benchmarks/results/converge]

For each dataset and seed (each seed is also a user split) it reads full GemiRec's accuracy record
(``interest_source: learned``) and GemiRec-I's ablation record (``interest_source: category``), both
trained to convergence by ``python -m benchmarks.run``, and prints a Markdown table: each run's
retrieval-stage and joint-stage valid Recall@50 (what the joint stage adds over its own single
vector), which of the two a valid-split choice takes, and the test Recall@50 / AMR@50 / CUR@50 of
that choice next to each source's own. Test figures are only read, never used to choose.

This is a post-hoc choice over two separate runs (each with its own retrieval stage). The configuration
key ``interest_source: auto`` trains both joint stages from one retrieval stage instead; with
``--auto DIR`` (the results directory of GemiRec runs under it, e.g. ``python -m benchmarks.run --budget
converge --results DIR --only accuracy --models GemiRec``) a second table per dataset gives those runs'
valid scores of both candidates, their choice and its test figures, next to the baselines of
``--results`` on the same seeds.
"""

import argparse
import json
import os

import numpy as np

from benchmarks.budgets import VALID_METRIC

SOURCES = {"learned": ("accuracy", "GemiRec"), "category": ("ablation", "GemiRec-I")}
TEST_METRICS = ("recall@50", "amr@50", "cur@50")


def _record(results, dataset, source, seed):
    part, name = SOURCES[source]
    path = os.path.join(results, part, dataset, f"{name}__seed{seed}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def rows(results, dataset, seeds=(2020, 2021, 2022)):
    """One row per seed with both records: valid per stage and source, the valid choice, test figures."""
    out = []
    for seed in seeds:
        records = {source: _record(results, dataset, source, seed) for source in SOURCES}
        if any(r is None for r in records.values()):
            continue
        row = {"seed": seed}
        for source, record in records.items():
            stages = record["stage_best_valid"]
            row[source] = {"retrieval": stages["retrieval"], "joint": record["best_valid_score"],
                           "test": {m: record["test_result"][m] for m in TEST_METRICS}}
        row["choice"] = max(SOURCES, key=lambda source: row[source]["joint"])  # learned wins a tie (listed first)
        out.append(row)
    return out


def table(dataset, dataset_rows):
    lines = [f"**{dataset}** (valid {VALID_METRIC}: retrieval stage -> joint stage; test Recall@50)", "",
             "| seed | learned | category | valid choice | test learned | test category | test of the choice |",
             "|---|---|---|---|---|---|---|"]
    for row in dataset_rows:
        cells = [f"{row[s]['retrieval']:.4f} -> {row[s]['joint']:.4f}" for s in SOURCES]
        tests = [f"{row[s]['test']['recall@50']:.4f}" for s in SOURCES]
        lines.append(f"| {row['seed']} | {cells[0]} | {cells[1]} | {row['choice']} | {tests[0]} | {tests[1]} | "
                     f"{row[row['choice']]['test']['recall@50']:.4f} |")
    if dataset_rows:
        mean = {(s, m): np.mean([r[s]["test"][m] for r in dataset_rows]) for s in SOURCES for m in TEST_METRICS}
        chosen = {m: np.mean([r[r["choice"]]["test"][m] for r in dataset_rows]) for m in TEST_METRICS}
        gain = {s: np.mean([r[s]["joint"] - r[s]["retrieval"] for r in dataset_rows]) for s in SOURCES}
        lines.append(f"| mean | joint adds {gain['learned']:+.4f} | joint adds {gain['category']:+.4f} | | "
                     + " | ".join(f"{mean[(s, 'recall@50')]:.4f} (AMR {mean[(s, 'amr@50')]:.4f}, CUR "
                                  f"{mean[(s, 'cur@50')]:.4f})" for s in SOURCES)
                     + f" | {chosen['recall@50']:.4f} (AMR {chosen['amr@50']:.4f}, CUR {chosen['cur@50']:.4f}) |")
    return "\n".join(lines)


BASELINES = ("Pop", "SASRec", "ComiRecSA", "REMI")


def _accuracy_record(results, dataset, model, seed):
    path = os.path.join(results, "accuracy", dataset, f"{model}__seed{seed}.json")
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def auto_rows(auto_results, dataset, seeds=(2020, 2021, 2022)):
    """One row per seed with an ``interest_source: auto`` GemiRec record: both candidates' valid scores
    (from one retrieval stage), the source kept, and its test figures."""
    out = []
    for seed in seeds:
        record = _accuracy_record(auto_results, dataset, "GemiRec", seed)
        if record is None or "interest_source_valid" not in record:
            continue
        out.append({"seed": seed, "retrieval": record["stage_best_valid"]["retrieval"],
                    "valid": record["interest_source_valid"], "choice": record["interest_source"],
                    "test": {m: record["test_result"][m] for m in TEST_METRICS}})
    return out


def auto_table(dataset, dataset_rows, results):
    """The auto runs' rows, their mean, and the mean of each baseline of ``results`` over the same seeds."""
    lines = [f"**{dataset}, interest_source: auto** (valid {VALID_METRIC} of each candidate from one retrieval "
             "stage; test of the one kept)", "",
             "| seed | retrieval stage | learned | category | kept | test Recall@50 | AMR@50 | CUR@50 |",
             "|---|---|---|---|---|---|---|---|"]
    for row in dataset_rows:
        valid = [f"{row['valid'][s]:.4f}" if s in row["valid"] else "-" for s in SOURCES]
        lines.append(f"| {row['seed']} | {row['retrieval']:.4f} | {valid[0]} | {valid[1]} | {row['choice']} | "
                     + " | ".join(f"{row['test'][m]:.4f}" for m in TEST_METRICS) + " |")
    if not dataset_rows:
        return "\n".join(lines)
    seeds = [row["seed"] for row in dataset_rows]
    lines.append("| mean | | | | | " + " | ".join(
        f"{np.mean([r['test'][m] for r in dataset_rows]):.4f}" for m in TEST_METRICS) + " |")
    for model in BASELINES:
        records = [_accuracy_record(results, dataset, model, seed) for seed in seeds]
        if all(records):
            lines.append(f"| {model} (same seeds) | | | | | " + " | ".join(
                f"{np.mean([r['test_result'][m] for r in records]):.4f}" for m in TEST_METRICS) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join("benchmarks", "results", "converge"))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "synthetic", "synthetic2"])
    parser.add_argument("--auto", default=None, help="results directory of GemiRec runs under interest_source: auto")
    args = parser.parse_args(argv)
    tables = [table(d, rows(args.results, d)) for d in args.datasets]
    if args.auto:
        tables += [auto_table(d, auto_rows(args.auto, d), args.results) for d in args.datasets]
    print("\n\n".join(tables))


if __name__ == "__main__":
    main()
