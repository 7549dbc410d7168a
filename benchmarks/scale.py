"""Scale: training and evaluation cost as the catalogue and the interactions grow, on generated data.

One measurement is one model on one generated dataset size, in its own process (:mod:`benchmarks.worker`,
which adds the process's peak RSS):

* ``load`` - RecBole's data pipeline on the extension's ``user`` protocol (read the atomic files, remap
  tokens, split users, build the sequential rows) and the model: wall time;
* ``train`` - every training stage (GemiRec: retrieval, dictionary, joint; the others: one) through the
  model's own trainer (``trainer.train_epoch``), stopped after ``cap_batches`` batches. The epoch time is
  the median batch time x the epoch's number of batches: **extrapolated** from the capped epoch, which the
  report says. A stage's start (GemiRec's k-means over every item) is timed on its own;
* ``evaluate`` - full-ranking scores (``full_sort_predict``) and the top 50 for the first ``eval_batches``
  test batches; GemiRec builds its interest cache for those users on the way (its GPT runs), as RecBole's
  evaluation does. Reported as users per second.

Memory stays bounded by construction: a batch's scores are ``[eval_batch_size, items]`` (never users x
items), multi-interest scoring goes through item blocks (``max_interest_scores``), and a full softmax
whose logits of one step would exceed 1 GiB becomes the sampled one (``item_negatives: ~``; the result
records the softmax each model used). RecBole's SASRec would need ``[batch, items]`` logits for its CE loss, so it runs with RecBole's
own sampled alternative, BPR with one uniform negative, at every size (``sasrec_config``).

The growth exponent of a cost c between sizes is the least-squares slope of log c against log size
(:func:`growth_exponent`), with size the number of interactions for training and load, and the number of
items for evaluation.
"""

import math
import statistics
import time

from benchmarks.build import build
from benchmarks.speed import timed_epoch


def growth_exponent(sizes, costs):
    """The least-squares slope of ``log cost`` against ``log size`` (``None`` with fewer than two points)."""
    points = [(math.log(s), math.log(c)) for s, c in zip(sizes, costs) if s and c and s > 0 and c > 0]
    if len(points) < 2:
        return None
    xs, ys = zip(*points)
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return None if var == 0 else round(sum((x - mx) * (y - my) for x, y in points) / var, 3)


def run_scale(spec):
    import torch

    t0 = time.perf_counter()
    config, parts = build(spec)
    load_s = time.perf_counter() - t0
    trainer, model, train_data, dataset = parts["trainer"], parts["model"], parts["train_data"], parts["dataset"]
    cap, eval_batches = int(spec["cap_batches"]), int(spec["eval_batches"])
    loss = getattr(model, "loss_fct", None)
    result = {
        "kind": "scale", "model": config["model"], "dataset": config["dataset"], "size": spec["size"],
        "n_items": int(dataset.item_num) - 1, "n_users": int(dataset.user_num) - 1,
        "interactions": int(spec["interactions"]), "train_rows": len(train_data.dataset),
        "train_batch_size": config["train_batch_size"], "eval_batch_size": config["eval_batch_size"],
        "load_s": round(load_s, 2), "cap_batches": cap,
        "softmax": getattr(loss, "mode", None) or f"RecBole loss_type {config['loss_type']}",
        "stages": {},
    }
    stages = trainer.stage_names or ("train",)
    for index, stage in enumerate(stages):
        entry = {}
        if trainer.stage_names:
            t0 = time.perf_counter()
            trainer.enter_stage(index)  # GemiRec's dictionary stage runs k-means over every item here
            entry["stage_init_s"] = round(time.perf_counter() - t0, 3)
        steps, batches = timed_epoch(trainer, model, train_data, cap)
        median = statistics.median(steps[1:] or steps)  # the first batch pays one-off costs
        entry.update({"batches_timed": len(steps), "epoch_batches": batches, "median_batch_s": round(median, 5),
                      "epoch_s_extrapolated": round(median * batches, 2)})
        result["stages"][stage] = entry
    result["epoch_s_extrapolated"] = round(sum(e["epoch_s_extrapolated"] for e in result["stages"].values()), 2)
    model.eval()
    if hasattr(model, "interest_cache"):
        model.interest_cache.fill_(-1)  # built again for the evaluated users, by the GPT, as RecBole's evaluation does
    users, elapsed = 0, 0.0
    with torch.no_grad():
        for batch_index, batched in enumerate(parts["test_data"]):
            if batch_index >= eval_batches:
                break
            interaction = batched[0]
            t0 = time.perf_counter()
            scores = model.full_sort_predict(interaction)
            torch.topk(scores.view(len(interaction), -1), 50, dim=1)
            elapsed += time.perf_counter() - t0
            users += len(interaction)
    result.update({"eval_users": users, "eval_users_per_s": round(users / elapsed, 1) if elapsed else None})
    return result


KINDS = {"scale": run_scale}
