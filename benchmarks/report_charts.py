"""The charts of the benchmark report (matplotlib, Agg backend; skipped with a note when matplotlib is not
installed)."""

import os

from benchmarks.budgets import MULTI_INTEREST_BASELINES
from benchmarks.report_numbers import is_gemirec_row, mean_of, metric_label, row_order, stage_order
from benchmarks.report_targets import HEADLINE_COMIREC, HEADLINE_FACTORISED, HEADLINE_GEMIREC


def _save(plt, fig, docs, name):
    """Lay out, write ``docs/<name>`` and close the figure; returns the path."""
    fig.tight_layout()
    path = os.path.join(docs, name)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def charts(summary, docs, settings):
    """Bar charts next to the report; returns the paths written (empty without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    written = []
    accuracy = summary["accuracy"]
    datasets = [d for d in settings["datasets"] if d in accuracy]
    if datasets:
        metrics = ["recall@50", "amr@50", "cur@50"]
        fig, axes = plt.subplots(len(metrics), len(datasets), figsize=(5.5 * len(datasets), 3.2 * len(metrics)),
                                 squeeze=False)
        for j, dataset in enumerate(datasets):
            models = row_order(accuracy[dataset])
            for i, metric in enumerate(metrics):
                ax = axes[i][j]
                means = [mean_of(accuracy[dataset][m][metric]) or 0 for m in models]
                errs = [(accuracy[dataset][m][metric] or {"std": 0})["std"] for m in models]
                colors = ["tab:red" if is_gemirec_row(m) else "tab:blue" if m in MULTI_INTEREST_BASELINES else "tab:gray"
                          for m in models]
                ax.bar(range(len(models)), means, yerr=errs, color=colors, capsize=3)
                ax.set_xticks(range(len(models)))
                ax.set_xticklabels(models, rotation=45, ha="right", fontsize=8)
                ax.set_title(f"{dataset}: {metric_label(metric)}", fontsize=10)
        written.append(_save(plt, fig, docs, "benchmarks_accuracy.png"))
    ablations = summary["ablations"]
    if ablations:
        fig, axes = plt.subplots(1, len(ablations), figsize=(5.5 * len(ablations), 3.5), squeeze=False)
        for j, (dataset, table) in enumerate(ablations.items()):
            ax = axes[0][j]
            rows = [r for r in table if r["row"] != "GemiRec"]
            x = range(len(rows))
            ours = [100 * (r["change"]["mean"] if r.get("change") else 0) for r in rows]
            errs = [100 * (r["change"]["std"] if r.get("change") else 0) for r in rows]
            paper = [r["paper_change"] for r in rows]
            ax.bar([i - 0.2 for i in x], ours, width=0.4, yerr=errs, capsize=3, label="ours, Recall@50", color="tab:red")
            ax.bar([i + 0.2 for i in x], paper, width=0.4, label="paper, Recall@200", color="tab:gray")
            ax.axhline(0, color="black", linewidth=0.8)
            ax.set_xticks(list(x))
            ax.set_xticklabels([r["row"] for r in rows], fontsize=8)
            ax.set_ylabel("change vs full GemiRec (%)")
            ax.set_title(f"ablations: {dataset}", fontsize=10)
            ax.legend(fontsize=8)
        written.append(_save(plt, fig, docs, "benchmarks_ablations.png"))
    dictionary = summary["dictionary"]
    if dictionary:
        fig, axes = plt.subplots(1, len(dictionary), figsize=(5.5 * len(dictionary), 4.3), squeeze=False)
        for j, (dataset, d) in enumerate(dictionary.items()):
            ax = axes[0][j]
            keys = [k for k in ("k-means, no re-seeding", "random, no re-seeding") if k in d["probe"]]
            levels = len(d["sizes"])
            width = 0.8 / max(1, 2 * len(keys))
            bar = 0
            for key in keys:
                for when, hatch in (("init", ""), ("end", "//")):
                    values = [100 * u for u in d["probe"][key][when]["per_level"]]
                    ax.bar([lv + (bar - len(keys)) * width + width / 2 for lv in range(levels)], values, width=width,
                           hatch=hatch, color="tab:red" if key.startswith("k-means") else "tab:gray",
                           edgecolor="black", linewidth=0.5,
                           label=f"{key.split(',')[0]}, {'after init' if when == 'init' else 'after training'}")
                    bar += 1
            ax.set_xticks(range(levels))
            ax.set_xticklabels([f"level {i + 1} ({s})" for i, s in enumerate(d["sizes"])], fontsize=8)
            ax.set_ylabel("codewords in use (%)")
            ax.set_ylim(0, 105)
            ax.set_title(f"dictionary utilisation: {dataset} (no re-seeding)", fontsize=10)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
        written.append(_save(plt, fig, docs, "benchmarks_dictionary.png"))
    speed = summary["speed"]
    if speed["serving"] or speed["train"]:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
        ax = axes[0]
        sizes = sorted(speed["serving"])
        for variant in (HEADLINE_GEMIREC, "GemiRec (cached queries)", "GemiRec (no cache, GPT per request)",
                        HEADLINE_FACTORISED, HEADLINE_COMIREC):
            values = [speed["serving"][n]["latency_ms"].get(variant, {}).get("median") for n in sizes]
            if any(v is not None for v in values):
                ax.plot(sizes, values, marker="o", label=variant)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("items in the index")
        ax.set_ylabel("median latency per user (ms)")
        ax.set_title("serving latency (faiss flat, 1 thread)", fontsize=10)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=2)
        ax = axes[1]
        labels, values = [], []
        for model in ("SASRec", "ComiRecSA", "GemiRec"):
            for stage, e in sorted(speed["train"].get(model, {}).items(), key=lambda kv: stage_order(kv[0])):
                labels.append(model if stage == "train" else f"GemiRec\n{stage}")
                values.append(e["epoch_s"])
        ax.bar(range(len(values)), values, color=["tab:gray", "tab:blue", "tab:red", "tab:red", "tab:red"][:len(values)])
        ax.set_xticks(range(len(values)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_ylabel("seconds per epoch")
        ax.set_title("training epoch (same data, batch, 1 thread)", fontsize=10)
        written.append(_save(plt, fig, docs, "benchmarks_speed.png"))
    return written
