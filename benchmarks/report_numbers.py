"""Numbers of the benchmark report: statistics over seeds and how they are written (means ± std, ratios,
percentages, markdown tables)."""

import statistics

from benchmarks.budgets import MODELS


METRIC_NAMES = {"recall": "Recall", "ndcg": "NDCG", "hit": "Hit", "amr": "AMR", "cur": "CUR"}


def stats(values):
    values = [float(v) for v in values if v is not None]
    if not values:
        return None
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def mean_of(s):
    return None if s is None else s["mean"]


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(s, digits=4):
    if s is None:
        return "-"
    if s["n"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def fmt_ratio(r, digits=2):
    return "-" if r is None else f"{r:.{digits}f}x"


def pct(r):
    return "-" if r is None else f"{100 * r:+.1f}%"


def mark(met):
    return {True: "**met**", False: "**missed**", None: "not measured"}[met]


def md_table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def metric_label(key):
    name, n = key.split("@")
    return f"{METRIC_NAMES[name]}@{n}"


def num(value, digits=1):
    return "-" if value is None else f"{value:,.{digits}f}"


def pct_stats(s, sign="+"):
    """A share or change (``{'mean', 'std', 'n'}``) as a percentage, ``± std`` over several seeds."""
    if s is None:
        return "-"
    value = format(100 * s["mean"], f"{sign}.1f") + "%"
    return value if s["n"] == 1 else f"{value} ± {100 * s['std']:.1f}"


def pct_value(s):
    return pct_stats(s, sign="")


def stage_order(stage):
    return {"train": 0, "retrieval": 1, "dictionary": 2, "joint": 3}.get(stage, 9)


def is_gemirec_row(name):
    """GemiRec's own accuracy rows: ``GemiRec`` (its defaults) and ``GemiRec <preset>`` (an opt-in preset's runs,
    ``benchmarks.report --preset``); not the ablations (``GemiRec-I`` ...), which have their own section."""
    return name == "GemiRec" or name.startswith("GemiRec ")


def row_order(models):
    """The accuracy rows present in ``models``: the budget's models in their order, then the presets' GemiRec rows."""
    return [m for m in MODELS if m in models] + sorted(m for m in models if is_gemirec_row(m) and m not in MODELS)
