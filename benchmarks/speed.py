"""Speed and memory measurements, each run in its own process by :mod:`benchmarks.worker`.

* ``train_speed`` - the time of one training epoch through the model's own trainer
  (``trainer.train_epoch``, so RecBole's loop, loss checks and GemiRec's dead-code re-seeding are
  included), per GemiRec stage; every batch is timed, and the epoch time used for ratios is the median
  batch time x the number of batches (robust to other processes taking the CPU for a while); the wall
  time of the epoch is reported next to it.
* ``serving`` - latency of one user request through the real serving path,
  :class:`recbole_gemirec.serving.Recommender`: ``recommend_history`` (the query side computes the queries
  from the history now, as :mod:`recbole_gemirec.serving.live` does for an export) or ``recommend`` (the
  stored queries), then a faiss exact inner-product index (``IndexFlatIP``) searched for the top-n of each
  query and the lists merged by score. The catalogue is N random item vectors (10k, 100k, 1M), the same
  embedding columns for every model (one faiss index where two models index the same columns); the models
  are the real (untrained) networks, their query side rebuilt with ``for_serving`` from their weights, on
  real histories of the dataset. Both models score K queries per user: GemiRec K - 1 interests plus u
  (``user_query``), ComiRecSA K interests (``same_queries``, default on). Variants, timed interleaved
  request by request, in a new random order for every request, each model's beside the baseline's
  (``baseline``, ComiRecSA) in a group of their own, one group after the other (:func:`serving_groups`);
  every variant records the baseline's live request measured in its group (``vs``), what its ratio is to. The
  whole measurement is repeated (``repeats``, the groups in a rotating order); every figure is the median over the
  repeats, and every ratio (``ratio``: median and p99) the median of the repeats' ratios (:func:`_over_repeats`):

  - ``GemiRec (interest cache + user tower)``: the interests come from the user's stored interest cache
    (built offline, no GPT at request time); the user tower runs on the history and the fusion gives the
    queries - what serving a fresh history costs;
  - ``GemiRec (cached queries)``: the stored query vectors (what the export keeps per user); only the
    index search and the merge run;
  - ``GemiRec (no cache, GPT per request)``: the generator picks the interests from the history now (what
    a new user costs);
  - ``ComiRecSA (extractor per request)``: the self-attentive extractor runs on the history;
  - ``ComiRecSA (cached queries)``: its stored queries.

  ``GemiRec factorised`` is GemiRec under ``recipe: factorised`` (what the default recipe trains where a
  category field is named, as on ml-100k), with the recipe's own K: its interest queries score only their
  interest's items, so the Recommender scores each over its interest's partition
  (:mod:`recbole_gemirec.serving.partitions`); the random items take the categories (and popularity column)
  of random real items. Its variants are the three above (the predictor per request is its transition
  table, not a GPT) and ``GemiRec factorised, one index (cached queries)``: the same stored queries, each
  searched over the whole catalogue in the faiss index (the same catalogue), as an
  export without partitions serves them (an approximate index; live queries would add their normalisers'
  scan of the catalogue to that).

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
class _EpochCap(Exception):
    """Raised by the timed loss after the capped number of batches: ends ``train_epoch`` early."""


def timed_epoch(trainer, model, train_data, cap=None):
    """One epoch through ``trainer.train_epoch`` with every batch timed, stopped after ``cap`` batches
    (``None``: the whole epoch); ``(batch times [s], batches of the whole epoch)``."""
    stamps = []

    def timed_loss(interaction):
        stamps.append(time.perf_counter())
        if cap is not None and len(stamps) > cap:
            raise _EpochCap
        return model.calculate_loss(interaction)

    try:
        trainer.train_epoch(train_data, 0, loss_func=timed_loss)
        stamps.append(time.perf_counter())
    except _EpochCap:
        pass
    return np.diff(np.array(stamps)).tolist(), len(train_data)


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
        t0 = time.perf_counter()
        steps, _ = timed_epoch(trainer, model, train_data)
        t1 = time.perf_counter()
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


SERVED = {  # a served model's name -> (RecBole model, configuration added to the measurement's)
    "GemiRec": ("GemiRec", {}),
    "GemiRec factorised": ("GemiRec", {"recipe": "factorised"}),
    "ComiRecSA": ("ComiRecSA", {}),
}


def _random_items(model, n_items, seed):
    """``n_items`` random item vectors of the width of ``model``'s item table: random embedding columns
    (scaled as an initialised table), and the further columns (GemiRec's bias column of ones, masking codes,
    popularity) those of the model's own items, the dataset's items keeping theirs and every further item
    another real item's, so interests are as large, relative to the catalogue, as in the dataset. The embedding
    columns are drawn first from ``seed``, so every model measured with one seed (of the same embedding size) has
    the same ones: the models are compared over one catalogue."""
    rng = np.random.default_rng(seed)
    table = model.item_embedding.weight.shape[1]
    real = model.item_embeddings()[1:].detach().float().numpy()
    items = np.empty((n_items, real.shape[1]), dtype=np.float32)
    items[:, :table] = rng.standard_normal((n_items, table), dtype=np.float32) / np.float32(math.sqrt(table))
    if real.shape[1] > table:
        donors = np.arange(n_items) % len(real)
        donors[len(real):] = rng.integers(0, len(real), n_items - len(real)) if n_items > len(real) else []
        items[:, table:] = real[donors, table:]
    return items


def _flat_index(vectors, indexes):
    """``(faiss flat index, params)`` of ``vectors``: the one ``indexes`` (a dict, content digest -> index) already
    holds for the same vectors, else a new one, kept there. Models measured over one catalogue whose indexed
    columns are the same (GemiRec's without its bias column, ComiRecSA's) search one index, in one place in
    memory: their searches differ by their queries alone."""
    import hashlib

    from recbole_gemirec.serving import build_index

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    key = (vectors.shape, hashlib.blake2b(memoryview(vectors).cast("B"), digest_size=16).digest())
    if key not in indexes:
        indexes[key] = build_index(vectors, "flat")
    return indexes[key]


def _served(model, rows, n_items, seed, indexes, partitioned=True):
    """A :class:`~recbole_gemirec.serving.Recommender` of ``model`` over ``n_items`` random item vectors
    (:func:`_random_items` of ``seed``), built in memory as an export would be: the users of ``rows`` (tokens
    ``u0``, ``u1``, ...) with their stored queries (and GemiRec's interest cache), the model's query side rebuilt
    from its weights (``for_serving``, as the export's ``query_model.npz`` is loaded), and a flat index
    (:func:`_flat_index`, shared through ``indexes``). Item token ``t`` is index row ``t``; the dataset's items
    keep their ids, so the real histories are valid requests. With ``partitioned`` the interest partitions the
    model declares are served, as an exact export's are."""
    import faiss
    import torch

    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving.index import has_bias_column, indexed_columns
    from recbole_gemirec.serving.export import compute_queries
    from recbole_gemirec.serving.live import LiveModel, query_side

    items = _random_items(model, n_items, seed)
    dim = items.shape[1]
    query_bias = has_bias_column(items)
    index, params = _flat_index(indexed_columns(items, query_bias), indexes)
    batch = _stack(rows)
    exported = compute_queries(model, batch, batch_size=len(rows))
    spec, weights = query_side(model)
    live_model = type(model).for_serving(spec["architecture"])
    live_model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    arrays = {name: exported[name] for name in ("queries", "interest_ids", "interest_codes", "interest_log_probs",
                                                "user_features") if exported[name] is not None}
    arrays["item_vectors"] = items
    partitions = model.retrieval_partitions() if partitioned else None
    meta = {"model": type(model).__name__, "n_items": n_items, "interests": exported["queries"].shape[1],
            "dim": dim, "query_bias": query_bias, "index": {"type": "flat", "params": params}, "live": True,
            "interest_partitions": partitions}
    tokens = {"users": [f"u{i}" for i in range(len(rows))], "items": [str(t) for t in range(n_items)]}
    recommender = Recommender(None, meta, tokens, arrays, index,
                              live=LiveModel(live_model, spec["architecture"]["max_seq_length"], partitions))
    faiss.omp_set_num_threads(1)
    return recommender


SERVING_NOVEL_SHARE = 0.5  # beta of a served transition predictor; any beta > 0 gives the same caches' sizes


def _trained_transitions(model):
    """A transition predictor as training leaves it: the population's transitions counted (the joint stage's
    start) and a share beta > 0 for the interests a history lacks (chosen on valid in training; the accuracy runs
    choose 0.1-0.9). With the untrained table (zeros, beta 0) only a history's own interests are finite, so most
    caches repeat their first interest to fill K and the served queries are fewer than a trained model's;
    the speed of a request does not depend on beta's value beyond that. No-op for other predictors."""
    if model.interest_predictor != "transition":
        return
    model.count_interest_transitions()
    model.set_scoring(model.interest_masking, float(model.prior_weight), novel_share=SERVING_NOVEL_SHARE)


def _normalisers(model, served):
    """Where a served model's live queries get their log-softmax normalisers: ``"partitions"`` (the partition
    scans over the N served items), ``"item table"`` (the query side, over the model's own item table: the
    dataset's items, not the N served ones, so a model trained on N items would cost more) or ``"none"`` (its
    scores are inner products, plus a log-probability bias for GemiRec's ``log_prob`` weighting)."""
    if served.partitions is not None:
        return "partitions"
    return "item table" if getattr(model, "scores_normalised", False) else "none"


def _history_tokens(model, row):
    """A request row's history as item tokens of :func:`_served`'s catalogue (token = item id - 1)."""
    length = int(row[model.ITEM_SEQ_LEN][0])
    return [str(int(i) - 1) for i in row[model.ITEM_SEQ][0, :length]]


def run_serving(spec):
    """Latency of one request through :class:`~recbole_gemirec.serving.Recommender`, per variant (module
    docstring), interleaved request by request; median, p90 and p99."""
    import torch

    n_items, k, topn = int(spec["n_items"]), int(spec["k"]), int(spec["topn"])
    requests, warmup = int(spec["requests"]), int(spec.get("warmup", 3))
    seed, indexes = int(spec.get("seed", 2020)), {}  # one catalogue for every model (_random_items, _flat_index)
    variants, build_s, queries_per_user, normalisers = {}, {}, {}, {}
    owners = {}  # variant -> the served model it belongs to
    for name in spec["models"]:
        before = set(variants)
        recbole_model, settings = SERVED[name]
        extra = dict(settings)
        if not settings:  # the paper's recipe and ComiRecSA: K queries each (a recipe keeps its own K)
            same = name == "GemiRec" and spec.get("same_queries", True)
            extra["interest_num"] = k - 1 if same else k  # with user_query u is one more: K - 1 interests + u
        config, parts = build(dict(spec, model=recbole_model), extra=extra)
        model = parts["model"].eval()
        rows = _request_rows(parts, requests + warmup)
        with torch.no_grad():
            if recbole_model == "GemiRec":
                model.start_dictionary_stage()
                model.set_stage("joint")
                _trained_transitions(model)
            t0 = time.perf_counter()
            served = _served(model, rows, n_items, seed, indexes)
            build_s[name] = round(time.perf_counter() - t0, 4)
            compare = served.partitions is not None and spec.get("one_index", True)  # not in a memory-only run
            one_index = _served(model, rows, n_items, seed, indexes, partitioned=False) if compare else None
        queries_per_user[name] = served.interests_per_user
        normalisers[name] = _normalisers(model, served)
        histories = [_history_tokens(model, row) for row in rows]
        users = served.user_tokens
        if recbole_model == "GemiRec":
            predictor = "GPT" if model.interest_predictor == "gpt" else model.interest_predictor
            variants[f"{name} (interest cache + user tower)"] = \
                lambda i, r=served, h=histories, u=users: r.recommend_history(h[i], n=topn, user=u[i], interests="cache")
            variants[f"{name} (cached queries)"] = lambda i, r=served, u=users: r.recommend(u[i], n=topn)
            variants[f"{name} (no cache, {predictor} per request)"] = \
                lambda i, r=served, h=histories: r.recommend_history(h[i], n=topn, interests="generator")
            if one_index is not None:
                variants[f"{name}, one index (cached queries)"] = lambda i, r=one_index, u=users: r.recommend(u[i], n=topn)
        else:
            variants[f"{name} (extractor per request)"] = \
                lambda i, r=served, h=histories: r.recommend_history(h[i], n=topn)
            variants[f"{name} (cached queries)"] = lambda i, r=served, u=users: r.recommend(u[i], n=topn)
        owners.update({variant: name for variant in set(variants) - before})
    baseline = spec.get("baseline") if spec.get("baseline") in spec["models"] else None
    groups = serving_groups(spec["models"], baseline)
    torch.set_num_threads(1)
    shuffle = np.random.default_rng(seed)
    per_repeat = [_serving_repeat(variants, owners, groups, baseline, rotation, requests, warmup, topn, n_items, shuffle)
                  for rotation in range(max(1, int(spec.get("repeats", 1))))]
    return {
        "kind": "serving", "models": spec["models"], "n_items": n_items, "k": k, "topn": topn,
        "queries_per_user": queries_per_user, "normalisers": normalisers, "requests": requests,
        "repeats": len(per_repeat),  # each the groups' interleaved requests; every figure is the median over them
        "catalogue": "shared",  # every model over the same random embedding columns (_random_items)
        "order": "shuffled",  # the variants in a new random order for every request
        "path": "Recommender.recommend_history (live) / Recommender.recommend (cached queries)",
        "index": "faiss IndexFlatIP (exact inner product)", "index_build_s": build_s,
        "index_mb": round(n_items * 64 * 4 / 2 ** 20, 1),
        "groups": groups,  # the models whose variants were interleaved together, one group after the other
        "latency_ms": {name: _over_repeats([r[name] for r in per_repeat]) for name in variants},
    }


def _serving_repeat(variants, owners, groups, baseline, rotation, requests, warmup, topn, n_items, shuffle):
    """One repeat of the serving measurement: the groups one after the other, starting with group ``rotation``
    (modulo their number: no group always runs first, in the machine's state a previous one leaves), each group's
    variants interleaved (:func:`_interleaved`). Returns each variant's :func:`_latency`, with ``vs``, the
    baseline's live request measured in the same group, and ``ratio``, the variant's median and p99 as ratios of
    that request's; the baseline's own variants are those of the first group of :func:`serving_groups`."""
    start = rotation % len(groups)
    measured = {}
    for group in groups[start:] + groups[:start]:
        names = [name for name in variants if owners[name] in group]
        measured[tuple(group)] = _interleaved({name: variants[name] for name in names}, requests, warmup, topn,
                                              n_items, shuffle)
    stats = {}
    for group in groups:
        times = measured[tuple(group)]
        beside = _latency(times[f"{baseline} (extractor per request)"]) if baseline else None
        for name, seconds in times.items():
            if name in stats:  # a variant of a model in several groups (the baseline's): its first group's
                continue
            stats[name] = _latency(seconds)
            if beside is not None:
                stats[name]["ratio"] = {key: round(stats[name][key] / beside[key], 4) for key in ("median", "p99")}
                if owners[name] != baseline:
                    stats[name]["vs"] = beside
    return stats


def _over_repeats(stats):
    """A variant's figures over the repeats of :func:`_serving_repeat`: the median of each (latencies, ``vs`` and
    ``ratio``: a ratio is the median of the repeats' ratios, each of two requests measured together), and the
    repeats' own medians, p99s and ratios (``per_repeat``: how far the machine's speed and the ratios moved between
    repeats)."""
    def median_of(rows):
        return {key: round(_median([row[key] for row in rows]), 4) for key in rows[0] if key not in ("vs", "ratio")}

    out = median_of(stats)
    for part in ("vs", "ratio"):
        if part in stats[0]:
            out[part] = median_of([row[part] for row in stats])
    out["per_repeat"] = [{key: row[key] for key in ("median", "p99", "ratio") if key in row} for row in stats]
    return out


def serving_groups(models, baseline=None):
    """The groups of ``models`` whose variants :func:`run_serving` interleaves: each model with ``baseline`` (a
    server holds one model: measured beside the baseline alone, a model's requests share the machine's caches with
    the baseline's, not with those of the other models measured), or all models in one group without a baseline."""
    if not baseline or baseline not in models or len(models) < 2:
        return [list(models)]
    return [[model, baseline] for model in models if model != baseline]


def _interleaved(variants, requests, warmup, topn, n_items, shuffle):
    """Each variant's request times (``warmup`` requests left out), the variants interleaved request by request in
    a new random order for every request: a rotation would keep each variant after the same one, whose memory (the
    caches it leaves warm or cold) then weighs on it alone."""
    names = list(variants)
    times = {name: [] for name in names}
    for i in range(requests + warmup):
        for name in [names[j] for j in shuffle.permutation(len(names))]:
            t0 = time.perf_counter()
            found = variants[name](i)
            elapsed = time.perf_counter() - t0
            if len(found.items) != min(topn, n_items):
                raise RuntimeError(f"{name}: {len(found.items)} items returned, expected {topn}")
            if i >= warmup:
                times[name].append(elapsed)
    return times


def _latency(seconds):
    """Median, p90, p99 and mean of request times, in milliseconds."""
    return {"median": round(1000 * _median(seconds), 4), "p90": round(1000 * float(np.percentile(seconds, 90)), 4),
            "p99": round(1000 * float(np.percentile(seconds, 99)), 4), "mean": round(1000 * float(np.mean(seconds)), 4)}


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

        def cache_path():  # GemiRec: the interest cache of these users rebuilt (the GPT and the code limit)
            model.refresh_interest_cache(batch)

        same = torch.equal(model_path().indices, bare_path().indices)
        paths = [("model", model_path), ("scoring", scoring_path), ("bare", bare_path)]
        if gemirec:
            paths.append(("cache", cache_path))
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
        if gemirec:  # the rebuild's share of an evaluation that rebuilds the cache, then scores from it
            cache, scored = _median(timings["cache"]), _median(timings["model"])
            result["cache_share"] = round(cache / (cache + scored), 4)
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
