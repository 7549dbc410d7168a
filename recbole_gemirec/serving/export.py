"""Export a trained model for serving: item index, per-user query vectors and interest caches.

What a model serves with (docs/design.md §2.4): every user has K query vectors, and an item's score is the
best inner product with any of them. For GemiRec in its joint stage the K queries are exactly what
``GemiRec.interest_vectors`` gives: the fusion of each of the user's *cached* interests with the user
vector u. u depends on the user's history, so the export runs the model once per user, on one history,
and stores the results; serving those stored queries never runs the model (nor the GPT) again.

Which history (``history``):

* ``full`` (default) - the user's whole sequence (its last ``MAX_ITEM_LIST_LENGTH`` items), every split
  included: the state a live system would serve from, to recommend the *next* item.
* ``test`` - the rows of the test loader, i.e. exactly what the offline test evaluation scored (the
  held-out items excluded). Useful to reproduce offline figures; only users with a test row are exported.

For each exported user, GemiRec's interest cache is rebuilt from that same history (the generator's
top-K under the code limit) so that the stored interest ids/code tuples and the stored queries belong
together.

To serve a history that has changed since the export (or a new user), the export also writes the
model's query side (:mod:`recbole_gemirec.serving.live`): GemiRec and the extension's baselines; for
RecBole's own models only the stored queries are served. The export refuses to finish when the rebuilt
query side does not reproduce the stored queries of its first users.

The directory holds only ``.npy`` arrays (loaded later with ``allow_pickle=False``), JSON and a faiss
index file (faiss's own binary format, not pickle):

    meta.json           format, model, dataset, checkpoint, K, sizes, index type and parameters,
                        and the shape, dtype and SHA-256 of every other file
    tokens.json         external user tokens (one per query row) and item tokens (one per index row)
    queries.npy         float32 [users, K, D]   the query vectors
    interest_ids.npy    int64   [users, K]      GemiRec only: the cached interest ids
    interest_codes.npy  int64   [users, K, C]   GemiRec only: their code tuples
    interest_log_probs.npy float32 [users, K]   GemiRec only: their log-probabilities (0 for u)
    user_features.npy   int64   [users, F]      models that read user features: each user's feature ids
    query_model.json, query_model.npz           the live query side (recbole_gemirec.serving.live)
    item_vectors.npy    float32 [items, D]      the indexed item vectors (row r = internal item r + 1)
    items.faiss         the faiss index over item_vectors (the padding item 0 is never indexed); when their
                        last column is all ones (meta.json "query_bias": true) the index holds the others
                        and each query's last value is a bias added to its scores after the search

Other models: any multi-interest model of the extension (K queries, no code tuples) and RecBole's
single-vector sequential models whose ``full_sort_predict`` is ``forward(history) @ item_embedding``
(SASRec, GRU4Rec, ...; one query). The export checks on the first batch that the exported queries
reproduce ``full_sort_predict`` and refuses a model whose scores they do not.
"""

import hashlib
import json
import os
import time

import numpy as np
import torch

from recbole_gemirec.errors import ConfigError, DataError
from recbole_gemirec.output_paths import check_writable_directory
from recbole_gemirec.serving.index import build_index, has_bias_column, indexed_columns, resolve_params
from recbole_gemirec.serving.live import QUERY_MODEL_FILE, WEIGHTS_FILE, query_side
from recbole_gemirec.serving.partitions import InterestPartitions

FORMAT = "recbole_gemirec.serving/1"
HISTORY_MODES = ("full", "test")
META_FILE = "meta.json"
TOKENS_FILE = "tokens.json"
INDEX_FILE = "items.faiss"
# Files only some exports have (GemiRec's interests, user features, the live query side).
OPTIONAL_FILES = ("interest_ids.npy", "interest_codes.npy", "interest_log_probs.npy", "user_features.npy",
                  QUERY_MODEL_FILE, WEIGHTS_FILE)


# --- loading the model -----------------------------------------------------------------------------
def load_for_serving(checkpoint, config_dict=None):
    """Rebuild model and data from a checkpoint (weights-only loading) and put GemiRec back into the
    training stage the checkpoint was written in (the joint stage scores with the interest cache).

    Returns:
        ``(config, model, dataset, test_data, stage)``.
    """
    from recbole_gemirec.checkpoint import load_checkpoint
    from recbole_gemirec.quick_start import load_data_and_model

    state = load_checkpoint(checkpoint)
    stage = (state.get("extra") or {}).get("stage")
    config, model, dataset, _, _, test_data = load_data_and_model(checkpoint, config_dict)  # restores the stage
    model.eval()
    return config, model, dataset, test_data, stage


# --- histories -------------------------------------------------------------------------------------
def _last_rows_per_user(uid):
    """Index of each user's last row (rows are in time order within a user)."""
    reversed_first = np.unique(uid[::-1], return_index=True)[1]
    return np.sort(len(uid) - 1 - reversed_first)


def _full_from_augmented(dataset, config):
    """Whole sequences from RecBole's augmented rows: the user's last row's history plus its item."""
    inter = dataset.inter_feat
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    suffix = config["LIST_SUFFIX"]
    length_field = config["ITEM_LIST_LENGTH_FIELD"]
    last = torch.from_numpy(_last_rows_per_user(inter[dataset.uid_field].numpy()))
    length = inter[length_field][last].long()
    rows = torch.arange(len(last))
    shift = (length + 1 - max_len).clamp(min=0)
    keep = torch.arange(max_len).unsqueeze(0) + shift.unsqueeze(1)
    result = {dataset.uid_field: inter[dataset.uid_field][last], length_field: torch.clamp(length + 1, max=max_len)}
    for field in inter.columns:
        list_field = field + suffix
        if list_field not in inter.columns:
            continue
        lists = inter[list_field][last]
        padded = torch.cat([lists, torch.zeros_like(lists[:, :1])], dim=1)
        padded[rows, length] = inter[field][last]
        result[list_field] = padded[rows.unsqueeze(1), keep]
    return result


def _full_from_raw(dataset, config):
    """Whole sequences from plain interaction rows (datasets that keep them, e.g. the user protocol's)."""
    inter = dataset.inter_feat
    max_len = config["MAX_ITEM_LIST_LENGTH"]
    suffix = config["LIST_SUFFIX"]
    uid = inter[dataset.uid_field].numpy()
    if dataset.time_field and dataset.time_field in inter.columns:
        order = np.lexsort((inter[dataset.time_field].numpy(), uid))
    else:
        order = np.argsort(uid, kind="stable")
    uid = uid[order]
    starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
    ends = np.r_[starts[1:], len(uid)]
    begin = np.maximum(starts, ends - max_len)
    length = ends - begin
    offsets = np.arange(max_len)
    valid = offsets[None, :] < length[:, None]
    index = torch.from_numpy(order[np.where(valid, begin[:, None] + offsets[None, :], begin[:, None])])
    valid = torch.from_numpy(valid)
    result = {dataset.uid_field: torch.from_numpy(uid[starts]),
              config["ITEM_LIST_LENGTH_FIELD"]: torch.from_numpy(length)}
    for field in inter.columns:
        if field == dataset.uid_field:
            continue
        gathered = inter[field][index]
        mask = valid.view(valid.shape + (1,) * (gathered.dim() - 2))
        result[field + suffix] = torch.where(mask, gathered, torch.zeros_like(gathered))
    return result


def user_histories(dataset, config, test_data=None, history="full"):
    """One model input row per user, as a RecBole ``Interaction`` (see the module docstring).

    ``full``: every user with a history, their whole sequence (last L items, left-aligned and
    zero-padded as RecBole lays them out), user features joined. ``test``: the test loader's rows, the
    last row of a user kept if a user has several.
    """
    from recbole.data.interaction import Interaction, cat_interactions

    if history not in HISTORY_MODES:
        raise ConfigError(f"history={history!r} is unknown; allowed: {', '.join(HISTORY_MODES)}")
    if history == "test":
        if test_data is None:
            raise ConfigError("history='test' needs the test loader")
        batches = [batch[0] for batch in test_data]
        if not batches:
            raise DataError("the test loader is empty: there is no user to export with history='test'")
        rows = cat_interactions(batches)
        last = _last_rows_per_user(rows[dataset.uid_field].numpy())
        return rows[torch.from_numpy(last)]
    list_field = dataset.iid_field + config["LIST_SUFFIX"]
    if list_field in dataset.inter_feat.columns:
        fields = _full_from_augmented(dataset, config)
    else:
        fields = _full_from_raw(dataset, config)
    if len(fields[dataset.uid_field]) == 0:
        raise DataError("the dataset has no user with a history to export")
    return dataset.join(Interaction(fields))


# --- queries ---------------------------------------------------------------------------------------
def query_source(model):
    """How the model's scores decompose: ``(kind, query_fn, item_table)``.

    ``query_fn(interaction)`` gives ``(queries [B, K, D], (interest ids, their log-probabilities) [B, K]
    each, or None)``.
    """
    from recbole_gemirec.model.multi_interest import MultiInterestRecommender

    if isinstance(model, MultiInterestRecommender):
        has_codes = model.has_interest_ids

        def queries(interaction):
            if has_codes:
                ids = model.query_interest_ids(interaction)  # aligned with the queries; -1 = u itself
                return model.interest_vectors(interaction), (ids, model.query_interest_log_probs(interaction))
            return model.interest_vectors(interaction), None

        kind = "gemirec" if has_codes else "multi_interest"
        return kind, queries, model.item_embeddings()
    forward = getattr(model, "forward", None)
    table = getattr(getattr(model, "item_embedding", None), "weight", None)
    if not hasattr(model, "ITEM_SEQ") or forward is None or table is None:
        raise ConfigError(
            f"model {type(model).__name__} cannot be served: serving needs a sequential model whose scores "
            "are inner products of user queries and an item table (GemiRec, ComiRecSA, ComiRecDR, MIND, REMI, "
            "or RecBole models such as SASRec and GRU4Rec)"
        )

    def single(interaction):
        query = forward(interaction[model.ITEM_SEQ], interaction[model.ITEM_SEQ_LEN])
        return query.unsqueeze(1), None

    return "single_vector", single, table


def _check_against_full_sort(model, interaction, queries, items):
    """Refuse a model whose ``full_sort_predict`` the exported queries do not reproduce."""
    from recbole_gemirec.model.multi_interest import max_interest_scores

    expected = model.full_sort_predict(interaction)
    got = max_interest_scores(queries, items)
    if expected.shape != got.shape or not torch.allclose(expected, got, rtol=1e-4, atol=1e-4):
        raise ConfigError(
            f"model {type(model).__name__}: full_sort_predict is not the inner product of the exported "
            "queries with its item embeddings, so an item index cannot reproduce its ranking; this model "
            "cannot be served"
        )


@torch.no_grad()
def compute_queries(model, interaction, batch_size=1024, device="cpu"):
    """Queries (and GemiRec's interest ids and code tuples) of every row of ``interaction``.

    Returns:
        dict with ``kind``, ``queries`` float32 ``[U, K, D]``, ``interest_ids`` / ``interest_codes``
        (int64) and ``interest_log_probs`` (float32) or ``None``, ``user_features`` (int64 ``[U, F]`` or
        ``None``), ``items`` float32 ``[n_items - 1, D]`` (rows 1.. of the item table).
    """
    model.eval()
    kind, query_fn, table = query_source(model)
    parts, id_parts, log_prob_parts, feature_parts = [], [], [], []
    user_features_of = getattr(model, "user_features_of", lambda interaction: None)
    for start in range(0, len(interaction), batch_size):
        batch = interaction[torch.arange(start, min(start + batch_size, len(interaction)))].to(device)
        queries, interests = query_fn(batch)
        if start == 0:
            _check_against_full_sort(model, batch, queries, table)
        parts.append(queries.detach().float().cpu())
        if interests is not None:
            id_parts.append(interests[0].detach().cpu())
            log_prob_parts.append(interests[1].detach().float().cpu())
        features = user_features_of(batch)
        if features is not None:
            feature_parts.append(features.detach().cpu())
    queries = torch.cat(parts).numpy().astype(np.float32)
    result = {"kind": kind, "queries": np.ascontiguousarray(queries), "interest_ids": None, "interest_codes": None,
              "interest_log_probs": None, "user_features": None,
              "items": np.ascontiguousarray(table[1:].detach().float().cpu().numpy())}
    if id_parts:
        ids = torch.cat(id_parts)
        result["interest_ids"] = ids.numpy().astype(np.int64)
        result["interest_codes"] = model.query_interest_codes(ids.to(table.device)).cpu().numpy().astype(np.int64)
        result["interest_log_probs"] = torch.cat(log_prob_parts).numpy().astype(np.float32)
    if feature_parts:
        result["user_features"] = torch.cat(feature_parts).numpy().astype(np.int64)
    return result


LIVE_CHECK_USERS = 8  # exported users whose live queries are compared with the stored ones
LIVE_CHECK_TOP = 100  # with interest partitions: the scores of each query's top items are compared


def _check_live(out_dir, meta, rows, exported, model):
    """Refuse an export whose live query side does not reproduce the stored queries of its first users
    (from their stored history, features and interest cache)."""
    from recbole_gemirec.serving.live import LiveModel, cached_interests

    live = LiveModel.load(out_dir, meta)
    partitions = meta.get("interest_partitions")
    if partitions:
        partitions = InterestPartitions(exported["items"], partitions["columns"], partitions["level_sizes"],
                                        partitions["bias_column"])
        top = min(LIVE_CHECK_TOP, meta["n_items"])
    item_seq = rows[model.ITEM_SEQ].cpu().numpy()
    lengths = rows[model.ITEM_SEQ_LEN].cpu().numpy()
    for row in range(min(LIVE_CHECK_USERS, len(lengths))):
        features = None if exported["user_features"] is None else exported["user_features"][row]
        cached = None
        if exported["interest_ids"] is not None:
            cached = cached_interests(exported["interest_ids"][row], exported["interest_log_probs"][row])
        queries, slot_ids = live.queries(item_seq[row, : lengths[row]], features, cached)
        stored = exported["queries"][row]
        if partitions:  # the live queries lack their normalisers: compare the scores of what they retrieve
            queries = partitions.retrieve(queries, top, live.normalise_mask(slot_ids))[2]
            stored = partitions.retrieve(stored, top)[2]
        if queries.shape != stored.shape or not np.allclose(queries, stored, rtol=1e-4, atol=1e-4):
            raise ConfigError(
                f"model {meta['model']}: the queries rebuilt from the export's query side differ from the "
                "model's own; the export is not written (a bug: please report it)"
            )


# --- writing ---------------------------------------------------------------------------------------
def _partitions(model):
    """The interest partitions a model declares (``retrieval_partitions``; RecBole's own models have none)."""
    declared = getattr(model, "retrieval_partitions", None)
    return None if declared is None else declared()


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_json(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def export_model(checkpoint, out_dir, index_type="flat", index_params=None, history="full",
                 batch_size=None, config_dict=None):
    """Export ``checkpoint`` for serving into ``out_dir`` (created if needed; see the module docstring).

    Args:
        checkpoint: a checkpoint written by the extension (for GemiRec, the joint stage's file).
        out_dir: the export directory; an earlier export there is replaced.
        index_type: ``flat`` (exact), ``ivf`` or ``hnsw``; ``index_params`` their parameters
            (:mod:`recbole_gemirec.serving.index`).
        history: ``full`` or ``test``.
        batch_size: users per model call (default: the checkpoint's ``eval_batch_size``).
        config_dict: overrides for rebuilding the run (for instance ``{'data_path': ...}``).

    Returns:
        dict: the metadata written to ``meta.json``.
    """
    import faiss

    resolve_params(index_type, index_params, 1 << 30)  # reject a bad index setting before loading anything
    if history not in HISTORY_MODES:
        raise ConfigError(f"history={history!r} is unknown; allowed: {', '.join(HISTORY_MODES)}")
    check_writable_directory(out_dir, "--out")  # before the model and the data are loaded
    config, model, dataset, test_data, stage = load_for_serving(checkpoint, config_dict)
    rows = user_histories(dataset, config, test_data, history)
    exported = compute_queries(model, rows, batch_size or config["eval_batch_size"], config["device"])
    query_bias = has_bias_column(exported["items"])
    index, params = build_index(indexed_columns(exported["items"], query_bias), index_type, index_params,
                                seed=config["seed"])

    os.makedirs(out_dir, exist_ok=True)
    meta_path = os.path.join(out_dir, META_FILE)
    if os.path.exists(meta_path):
        os.remove(meta_path)  # an interrupted export must not look complete
    user_ids = rows[dataset.uid_field].cpu().numpy()
    tokens = {
        "users": [str(t) for t in dataset.field2id_token[dataset.uid_field][user_ids]],
        "items": [str(t) for t in dataset.field2id_token[dataset.iid_field][1:]],
    }
    _write_json(os.path.join(out_dir, TOKENS_FILE), tokens)
    arrays = {"queries": exported["queries"], "item_vectors": exported["items"]}
    for name in ("interest_ids", "interest_codes", "interest_log_probs", "user_features"):
        if exported[name] is not None:
            arrays[name] = exported[name]
    files = {}
    for name, array in arrays.items():
        path = os.path.join(out_dir, f"{name}.npy")
        np.save(path, array, allow_pickle=False)
        files[f"{name}.npy"] = {"shape": list(array.shape), "dtype": str(array.dtype), "sha256": sha256_of(path)}
    side = query_side(model)
    if side is not None:
        spec, weights = side
        _write_json(os.path.join(out_dir, QUERY_MODEL_FILE), spec)
        np.savez(os.path.join(out_dir, WEIGHTS_FILE), **weights)
        for name in (QUERY_MODEL_FILE, WEIGHTS_FILE):
            files[name] = {"sha256": sha256_of(os.path.join(out_dir, name))}
    for stale in OPTIONAL_FILES:
        if stale not in files and os.path.exists(os.path.join(out_dir, stale)):
            os.remove(os.path.join(out_dir, stale))
    faiss.write_index(index, os.path.join(out_dir, INDEX_FILE))
    files[INDEX_FILE] = {"sha256": sha256_of(os.path.join(out_dir, INDEX_FILE))}
    files[TOKENS_FILE] = {"sha256": sha256_of(os.path.join(out_dir, TOKENS_FILE))}

    n_users, k, dim = exported["queries"].shape
    meta = {
        "format": FORMAT,
        "model": config["model"],
        "dataset": config["dataset"],
        "checkpoint": os.path.abspath(str(checkpoint)),
        "stage": stage,
        "kind": exported["kind"],
        "history": history,
        "max_history": int(config["MAX_ITEM_LIST_LENGTH"]),
        "n_users": int(n_users),
        "n_items": int(exported["items"].shape[0]),
        "interests": int(k),
        "dim": int(dim),
        "query_bias": query_bias,
        "code_levels": int(exported["interest_codes"].shape[-1]) if exported["interest_codes"] is not None else None,
        "dictionary_sizes": model.interest_code_sizes if exported["interest_codes"] is not None else None,
        "interest_code_limit": config["interest_code_limit"] if exported["kind"] == "gemirec" else None,
        "index": {"type": index_type, "params": params, "metric": "inner_product"},
        # an exact index of a model with interest partitions scores each query over its interest's items only
        "interest_partitions": _partitions(model) if index_type == "flat" else None,
        "user_field": dataset.uid_field,
        "item_field": dataset.iid_field,
        "live": side is not None,
        "files": files,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    if side is not None:
        _check_live(out_dir, meta, rows, exported, model)
    _write_json(meta_path, meta)  # written last: its presence marks a complete export
    return meta
