"""Learned interests or the preset categories, chosen per run on the valid split: what the converge records say.

    python -m benchmarks.interest_source_choice [--results benchmarks/results/converge]

For each dataset and seed (each seed is also a user split) it reads full GemiRec's accuracy record
(``interest_source: learned``) and GemiRec-I's ablation record (``interest_source: category``), both
trained to convergence by ``python -m benchmarks.run``, and prints a Markdown table: each run's
retrieval-stage and joint-stage valid Recall@50 (what the joint stage adds over its own single
vector), which of the two a valid-split choice takes, and the test Recall@50 / AMR@50 / CUR@50 of
that choice next to each source's own. Test figures are only read, never used to choose.

This is a post-hoc choice over two separate runs (each with its own retrieval stage), not a
configuration key: ``interest_source: auto`` would train both joint stages from one retrieval stage.
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=os.path.join("benchmarks", "results", "converge"))
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "synthetic", "synthetic2"])
    args = parser.parse_args(argv)
    print("\n\n".join(table(d, rows(args.results, d)) for d in args.datasets))


if __name__ == "__main__":
    main()
