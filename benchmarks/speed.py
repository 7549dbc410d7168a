"""Speed and memory measurements, each run in its own process by :mod:`benchmarks.worker`.

* ``train_speed`` - the time of one training epoch through the model's own trainer
  (``trainer.train_epoch``, so RecBole's loop, loss checks and GemiRec's dead-code re-seeding are
  included), per GemiRec stage; every batch is timed, and the epoch time used for ratios is the median
  batch time x the number of batches (robust to other processes taking the CPU for a while); the wall
  time of the epoch is reported next to it.
* ``serving`` - latency per user request: the user's K query vectors -> a faiss exact inner-product index
  (``IndexFlatIP`` via :func:`recbole_gemirec.serving.build_index`) searched for the top-n of each query ->
  the K lists merged by score (:func:`recbole_gemirec.serving.merge_interest_lists`). The catalogue is N
  random item vectors (10k, 100k, 1M); the query side runs the real (untrained) networks of the models on
  real histories of the dataset. Variants, timed interleaved request by request:

  - ``GemiRec (interest cache + user tower)``: the K interest ids come from the user's interest cache
    (built offline, no GPT at request time); the user tower runs on the current history and the fusion
    gives the K queries - what serving a fresh history costs;
  - ``GemiRec (cached queries)``: the K query vectors themselves are cached (what
    ``python -m recbole_gemirec.serving export`` stores); only the index search and the merge run;
  - ``GemiRec (no cache, GPT per request)``: the generator picks the interests at request time;
  - ``ComiRecSA (extractor per request)``: the self-attentive extractor runs on the current history.

* ``eval_speed`` - full-ranking evaluation throughput (users/s): ``model.full_sort_predict`` + top-k over
  a batch of real evaluation users, against the practical limit, a bare matrix multiply + max over the K
  interests + top-k over the same query vectors and the same item table; at the dataset's own catalogue
  and with the item table enlarged to N random items. Also RecBole's whole ``trainer.evaluate`` (metrics
  included) on the test split.
"""

import math
import statistics
import time

import numpy as np

from benchmarks.build import build
from recbole_gemirec.model.multi_interest import MultiInterestRecommender



def _median(values):
    return float(statistics.median(values)) if values else None


# --- training epochs ----------------------------------------------------------------------------------
def run_train_speed(spec):
    config, parts = build(spec)
    trainer, model, train_data = parts["trainer"], parts["model"], parts["train_data"]
    staged = bool(trainer.stage_names)  # GemiRec: every stage is timed
    stages = trainer.stage_names or ("train",)
    result = {"kind": "train_speed", "model": config["model"], "dataset": config["dataset"],
              "train_batch_size": config["train_batch_size"], "batches": len(train_data), "stages": {}}
    for index, stage in enumerate(stages):
        entry = {}
        if staged:
            t0 = time.perf_counter()
            trainer.enter_stage(index)  # the dictionary stage initialises its codebooks here (k-means)
            entry["stage_init_s"] = round(time.perf_counter() - t0, 4)
        stamps = []

        def timed_loss(interaction, stamps=stamps):
            stamps.append(time.perf_counter())
            return model.calculate_loss(interaction)

        t0 = time.perf_counter()
        trainer.train_epoch(train_data, 0, loss_func=timed_loss)
        t1 = time.perf_counter()
        steps = np.diff(np.array(stamps + [t1])).tolist()
        entry.update({
            "epoch_wall_s": round(t1 - t0, 4),
            "batches": len(steps),
            "median_batch_s": round(_median(steps), 6),
            "epoch_s": round(_median(steps) * len(steps), 4),  # median batch x batches
        })
        result["stages"][stage] = entry
    return result


# --- serving latency ----------------------------------------------------------------------------------
def _request_rows(parts, count):
    """Single-user interactions of real evaluation users (test, then valid), cycled to ``count``."""
    import torch

    rows = []
    for loader in (parts["test_data"], parts["valid_data"]):
        for batched in loader:
            interaction = batched[0]
            for i in range(len(interaction)):
                rows.append(interaction[torch.tensor([i])])
    if not rows:
        raise RuntimeError("no evaluation users to build requests from")
    return [rows[i % len(rows)] for i in range(count)]


def _stack(rows):
    from recbole.data.interaction import cat_interactions

    return cat_interactions(rows)


def run_serving(spec):
    import torch

    from recbole_gemirec.serving import build_index, merge_interest_lists
    from recbole_gemirec.serving.index import search

    n_items, k, topn = int(spec["n_items"]), int(spec["k"]), int(spec["topn"])
    requests, warmup = int(spec["requests"]), int(spec.get("warmup", 3))
    dim = int(spec.get("embedding_size", 64))
    rng = np.random.default_rng(int(spec.get("seed", 2020)))
    items = (rng.standard_normal((n_items, dim), dtype=np.float32) / math.sqrt(dim)).astype(np.float32)
    # one extra column of ones: a model whose queries carry a per-query bias (GemiRec's interest_weighting)
    # is served by the same index; queries without one get a zero there (their scores do not change)
    items = np.ascontiguousarray(np.concatenate([items, np.ones((n_items, 1), dtype=np.float32)], axis=1))
    t0 = time.perf_counter()
    index, _ = build_index(items, "flat")
    build_s = time.perf_counter() - t0
    del items  # the index holds its own copy

    def serve(queries):
        if queries.shape[-1] == dim:
            queries = np.concatenate([queries, np.zeros(queries.shape[:-1] + (1,), dtype=queries.dtype)], axis=-1)
        scores, found = search(index, np.ascontiguousarray(queries), topn)
        return merge_interest_lists(scores, found, topn)

    variants = {}
    for name in spec["models"]:
        sub = dict(spec, model=name)
        config, parts = build(sub, extra={"interest_num": k})
        model = parts["model"].eval()
        rows = _request_rows(parts, requests + warmup)
        with torch.no_grad():
            if name == "GemiRec":
                model.start_dictionary_stage()
                model.set_stage("joint")
                batch = _stack(rows)
                model.refresh_interest_cache(batch)  # offline: the interest cache, built by the GPT
                cached_queries = model.interest_vectors(batch).numpy()  # offline: what an export stores

                def tower(i, model=model, rows=rows):
                    return serve(model.interest_vectors(rows[i])[0].numpy())

                def cached(i, cached_queries=cached_queries):
                    return serve(cached_queries[i])

                def gpt(i, model=model, rows=rows):
                    row = rows[i]
                    model.refresh_interest_cache(row)  # the GPT and the cache's selection, per request
                    return serve(model.interest_vectors(row)[0].numpy())

                variants["GemiRec (interest cache + user tower)"] = tower
                variants["GemiRec (cached queries)"] = cached
                variants["GemiRec (no cache, GPT per request)"] = gpt
            else:
                def extractor(i, model=model, rows=rows):
                    return serve(model.interest_vectors(rows[i])[0].numpy())

                variants[f"{name} (extractor per request)"] = extractor
    names = list(variants)
    times = {name: [] for name in names}
    with torch.no_grad():
        for i in range(requests + warmup):
            order = names[i % len(names):] + names[:i % len(names)]  # rotate who goes first
            for name in order:
                t0 = time.perf_counter()
                found = variants[name](i)
                elapsed = time.perf_counter() - t0
                if len(found[0]) != min(topn, n_items):
                    raise RuntimeError(f"{name}: {len(found[0])} items returned, expected {topn}")
                if i >= warmup:
                    times[name].append(elapsed)
    return {
        "kind": "serving", "models": spec["models"], "n_items": n_items, "k": k, "topn": topn,
        "requests": requests, "index": "faiss IndexFlatIP (exact inner product)", "index_build_s": round(build_s, 4),
        "index_mb": round(n_items * dim * 4 / 2 ** 20, 1),
        "latency_ms": {name: {"median": round(1000 * _median(v), 4), "p90": round(1000 * float(np.percentile(v, 90)), 4),
                              "mean": round(1000 * float(np.mean(v)), 4)} for name, v in times.items()},
    }


# --- evaluation throughput ----------------------------------------------------------------------------
def _query_vectors(model, batch):
    """``[B, K, D]`` query vectors of the batch (K = 1 for a single-vector sequential model)."""
    from recbole_gemirec.model.multi_interest import interest_view

    view = interest_view(model, batch)
    if view is not None:
        return view[0]
    return model.forward(batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN]).unsqueeze(1)


def run_eval_speed(spec):
    import torch
    from torch import nn

    from recbole_gemirec.model.multi_interest import max_interest_scores

    config, parts = build(spec)
    model, trainer = parts["model"].eval(), parts["trainer"]
    users, repeats, topn = int(spec["users"]), int(spec["repeats"]), int(spec.get("topn", 50))
    rows = _request_rows(parts, users)
    batch = _stack(rows)
    gemirec = config["model"] == "GemiRec"
    result = {"kind": "eval_speed", "model": config["model"], "dataset": config["dataset"], "users": users,
              "repeats": repeats, "topn": topn}
    with torch.no_grad():
        if gemirec:
            model.start_dictionary_stage()
            model.set_stage("joint")
            model.refresh_interest_cache(batch)
        native = int(model.item_embedding.num_embeddings)
        n_items = spec["n_items"]
        if n_items != "native":
            n_items = int(n_items)
            old = model.item_embedding
            new = nn.Embedding(n_items + 1, old.embedding_dim, padding_idx=0)
            nn.init.normal_(new.weight, std=float(old.weight.std()))
            new.weight[:native] = old.weight
            model.item_embedding = new
        result["n_items"] = int(model.item_embedding.num_embeddings) - 1
        queries = _query_vectors(model, batch).contiguous()
        table = model.item_embeddings() if isinstance(model, MultiInterestRecommender) else model.item_embedding.weight
        table = table.detach().contiguous()
        b, k, d = queries.shape
        result["k"] = int(k)

        def model_path():
            scores = model.full_sort_predict(batch)
            return torch.topk(scores, topn, dim=1)

        def bare_path():
            if k == 1:
                scores = queries[:, 0] @ table.T
            else:
                scores = (queries.reshape(-1, d) @ table.T).view(b, k, -1).amax(dim=1)
            return torch.topk(scores, topn, dim=1)

        def scoring_path():  # the model's own scoring of given query vectors (no user encoding)
            if k == 1:
                scores = queries[:, 0] @ table.T
            else:
                scores = max_interest_scores(queries, table)
            return torch.topk(scores, topn, dim=1)

        same = torch.equal(model_path().indices, bare_path().indices)
        paths = [("model", model_path), ("scoring", scoring_path), ("bare", bare_path)]
        timings = {name: [] for name, _ in paths}
        for r in range(repeats + 1):
            for name, fn in paths[r % len(paths):] + paths[:r % len(paths)]:
                t0 = time.perf_counter()
                fn()
                if r > 0:  # the first round is a warm-up
                    timings[name].append(time.perf_counter() - t0)
        for name in timings:
            result[f"{name}_users_per_s"] = round(users / _median(timings[name]), 1)
        result["ratio"] = round(result["model_users_per_s"] / result["bare_users_per_s"], 4)
        result["scoring_ratio"] = round(result["scoring_users_per_s"] / result["bare_users_per_s"], 4)
        result["same_top_items"] = bool(same)
        if n_items == "native":  # RecBole's whole evaluation of the test split, metrics included
            test_users = sum(len(batched[0]) for batched in parts["test_data"])
            walls = []
            for _ in range(max(1, repeats // 2)):
                t0 = time.perf_counter()
                trainer.evaluate(parts["test_data"], load_best_model=False, show_progress=False)
                walls.append(time.perf_counter() - t0)
            result["recbole_evaluate_users"] = int(test_users)
            result["recbole_evaluate_users_per_s"] = round(test_users / _median(walls), 1)
    return result


KINDS = {"train_speed": run_train_speed, "serving": run_serving, "eval_speed": run_eval_speed}
