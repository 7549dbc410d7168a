"""The benchmark's targets (accuracy, separation, novelty, latency), each checked against the aggregated
figures and marked met or missed, as measured."""

from benchmarks.budgets import BASELINES
from benchmarks.report_numbers import fmt_ratio, is_gemirec_row, mean_of, ratio
from recbole_gemirec.model.gemirec import STAGES


HEADLINE_GEMIREC = "GemiRec (interest cache + user tower)"


HEADLINE_COMIREC = "ComiRecSA (extractor per request)"


# GemiRec under the factorised recipe (what the default trains where a category field is named), live
HEADLINE_FACTORISED = "GemiRec factorised (interest cache + user tower)"

# the serving target's rows: the variant measured against ComiRecSA's live request, and what it is
SERVING_HEADLINES = [
    (HEADLINE_GEMIREC, "GemiRec from a history with its interest cache"),
    (HEADLINE_FACTORISED, "GemiRec factorised, the default recipe where a category field is named, from a history "
                          "with its interest cache, over interest partitions"),
]


def baseline_of(latency, variant):
    """The ComiRecSA live request a serving variant's ratio is to: the one measured beside it (``vs``, in its group
    of :func:`benchmarks.speed.serving_groups`), else the result's own (results of one group)."""
    return latency[variant].get("vs") or latency.get(HEADLINE_COMIREC, {})


def serving_ratio(latency, variant, stat="median"):
    """A serving variant's ``stat`` (median or p99) as a ratio of the baseline's live request: the median over the
    repeats of each repeat's ratio where the result records them (``ratio``, :func:`benchmarks.speed._over_repeats`:
    the two requests of each ratio measured together), else the ratio of the figures (results of one repeat)."""
    stored = (latency[variant].get("ratio") or {}).get(stat)
    if stored is not None:
        return stored
    return ratio(latency[variant].get(stat), baseline_of(latency, variant).get(stat))


# The scale target: every model trains and evaluates at this catalogue and this many interactions.
SCALE_ITEMS, SCALE_INTERACTIONS = 1_000_000, 10_000_000


def _serving_targets(serving):
    """One latency target per measured row of :data:`SERVING_HEADLINES`: median and tail within 1.0x of
    ComiRecSA's live request at every catalogue size."""
    rows = []
    for variant, what in SERVING_HEADLINES:
        sizes = [n for n in sorted(serving) if variant in serving[n]["latency_ms"]]
        if not sizes:
            continue
        parts, within = [], []
        for n in sizes:
            lat = serving[n]["latency_ms"]
            gem, csa = lat[variant], baseline_of(lat, variant)
            tail = "p99" if "p99" in gem and "p99" in csa else "p90"
            r50, rtail = serving_ratio(lat, variant), serving_ratio(lat, variant, tail)
            parts.append(f"{n:,} items {fmt_ratio(r50)} ({tail} {fmt_ratio(rtail)})")
            if r50 is not None and rtail is not None and r50 <= 1.0 and rtail <= 1.0:
                within.append(f"{n:,}")
        met = len(within) == len(sizes)
        measured = ", ".join(parts)
        if within and not met:
            measured += f" (within 1.0x at {', '.join(within)} items only)"
        rows.append({"target": f"serving latency per request <= 1.0x ComiRecSA, median and tail ({what})",
                     "measured": measured, "met": met})
    return rows


def _accuracy_targets(name, dataset, accuracy, stages, best):
    """The accuracy, separation and novelty targets of the GemiRec row ``name`` on ``dataset``."""
    g = accuracy[dataset].get(name)
    if not g:
        return []
    rows = []
    generated = dataset.startswith("synthetic")
    mine = mean_of(g["recall@50"])
    value, who = best(dataset, "recall@50", BASELINES)
    need = 1.1 if generated else 1.0
    r = ratio(mine, value)
    rows.append({"target": f"{dataset}: {name} Recall@50 >= {need:g}x the best baseline",
                 "measured": f"{fmt_ratio(r)} ({mine:.4f} vs {who} {value:.4f})" if r else "-",
                 "met": None if r is None else r >= need, "value": r,
                 "dataset": dataset, "row": name, "need": need, "baseline": who, "baseline_value": value})
    if stages and stages.get("retrieval_best") and stages.get("final"):
        joint, single = mean_of(stages["final"]), mean_of(stages["retrieval_best"])
        rows.append({"target": f"{dataset}: {name} >= its own retrieval stage (valid Recall@50; the retrieval "
                               "stage has no test figure)",
                     "measured": f"{joint:.4f} vs {single:.4f}", "met": joint >= single})
    if not generated:
        return rows
    value, who = best(dataset, "amr@50", BASELINES)
    amr = mean_of(g["amr@50"])
    rows.append({"target": f"{dataset}: {name} AMR@50 above every baseline",
                 "measured": f"{amr:.4f} vs best baseline {who} {value:.4f}" if value is not None else "-",
                 "met": None if value is None else amr > value, "value": ratio(amr, value),
                 "dataset": dataset, "row": name})
    cur = mean_of(g["cur@50"])
    c, pop = accuracy[dataset].get("ComiRecSA"), accuracy[dataset].get("Pop")
    r = ratio(cur, mean_of(c["cur@50"])) if c else None
    rows.append({"target": f"{dataset}: {name} CUR@50 >= 2x ComiRecSA's",
                 "measured": f"{fmt_ratio(r)} ({cur:.4f} vs {mean_of(c['cur@50']):.4f})" if r else "-",
                 "met": None if r is None else r >= 2.0, "value": r})
    if pop:
        rows.append({"target": f"{dataset}: {name} CUR@50 above Pop's",
                     "measured": f"{cur:.4f} vs {mean_of(pop['cur@50']):.4f}", "met": cur > mean_of(pop["cur@50"])})
    return rows


def targets(accuracy, speed_summary, gemirec_stages=None, scale=None, memory_gib=None):
    """The issue's targets, each ``{target, measured, met}`` (met: True, False or None = not measured)."""
    rows = []
    gemirec_stages = gemirec_stages or {}

    def best(dataset, metric, models):
        found = [(mean_of(accuracy[dataset][m][metric]), m) for m in models
                 if m in accuracy.get(dataset, {}) and accuracy[dataset][m][metric] is not None]
        return max(found) if found else (None, None)

    names = sorted({m for table in accuracy.values() for m in table if is_gemirec_row(m)}, key=lambda m: (m != "GemiRec", m))
    for name in names:
        for dataset in sorted(accuracy, key=lambda d: (d.startswith("synthetic"), d)):
            rows += _accuracy_targets(name, dataset, accuracy, gemirec_stages.get(dataset, {}).get(name), best)
    if not rows:
        rows.append({"target": "accuracy targets", "measured": "no GemiRec run in this budget yet", "met": None})
    rows += _serving_targets(speed_summary["serving"])
    train = speed_summary["train"]
    if "GemiRec" in train and "SASRec" in train:
        sas = train["SASRec"]["train"]["epoch_s"]
        parts, met = [], True
        for stage in STAGES:
            if stage in train["GemiRec"]:
                r = ratio(train["GemiRec"][stage]["epoch_s"], sas)
                parts.append(f"{stage} {fmt_ratio(r)}")
                met = met and r is not None and r <= 1.5
        rows.append({"target": "training epoch <= 1.5x SASRec (every GemiRec stage)", "measured": ", ".join(parts),
                     "met": met})
    for model in ("GemiRec", "ComiRecSA"):
        evals = speed_summary["eval"].get(model, {})
        if not evals:
            continue
        parts, met = [], True
        for catalogue, r in sorted(evals.items(), key=lambda kv: (kv[0] != "native", str(kv[0]))):
            value = r.get("scoring_ratio", r["ratio"])
            parts.append(f"{r['n_items']:,} items {fmt_ratio(value)}")
            met = met and value >= 0.8
        shares = [r["cache_share"] for r in evals.values() if r.get("cache_share") is not None]
        if shares:
            parts.append(f"cache rebuild {100 * max(shares):.0f}% of an evaluation at most")
        rows.append({"target": f"evaluation: {model}'s multi-interest scoring + top-k >= 0.8x the matrix-multiply "
                               "limit at every catalogue size", "measured": ", ".join(parts), "met": met})
    if scale:
        parts, met = [], True
        for model, entry in sorted(scale.items()):
            largest = entry["sizes"][-1]
            fits = memory_gib is None or (largest["peak_rss_mb"] or 0) < 1024 * float(memory_gib)
            reached = largest["n_items"] >= SCALE_ITEMS and largest["interactions"] >= SCALE_INTERACTIONS
            parts.append(f"{model} {largest['n_items']:,} items / {largest['interactions']:,} interactions, "
                         f"peak {largest['peak_rss_mb'] / 1024:.1f} GiB")
            met = met and fits and reached
        rows.append({"target": f"scale: every model trains and evaluates at {SCALE_ITEMS:,} items and "
                               f"{SCALE_INTERACTIONS:,} interactions within the machine's memory",
                     "measured": "; ".join(parts), "met": met})
    return rows
