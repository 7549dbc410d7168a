"""Per-user quantities behind AMR@N and CUR@N, and the averages the metrics report (docs/design.md §5).

The definitions are the project's own (the GemiRec paper does not publish its formulas). For a user u
with K interest vectors:

* ``L_k(u)`` = top-N items of interest k alone, ``M(u)`` = the merged top-N (ranking by the maximum
  over interests, i.e. the scores the model ranks with), ``T(u)`` = the user's target items (a set),
  ``H(u)`` = every item of the user's history part, ``cat(i)`` = the item's category.
* ``AMR@N(u) = max(0, 1 - max_k |L_k ∩ T| / |M ∩ T|)``, averaged over users with ``|M ∩ T| > 0``.
* ``U(u) = {t in T : cat(t) not in cat(H)}``; ``CUR@N(u) = |M ∩ U| / |U|``, averaged over users with
  ``U`` non-empty.

Evaluation is done batch by batch. For each user of a batch this module reduces the model output to a
few integers (``|M ∩ T|`` and ``max_k |L_k ∩ T|`` per N; ``|U|`` and ``|M ∩ U|`` per N); the metric
classes in :mod:`recbole_gemirec.evaluator.metrics` only average them. No ``[users, K, items]`` score
tensor is ever built: the per-interest top-N lists are found block by block over the catalogue, with at
most :data:`SCORE_BUDGET` scores alive at a time, so memory stays bounded for a catalogue of millions of
items.

Items with category id 0 (RecBole's padding token, i.e. no category) never count as unseen-category
targets and contribute nothing to ``cat(H)``.
"""

import torch

from recbole_gemirec.data.categories import first_category_tokens
from recbole_gemirec.errors import ConfigError

#: Keys of the per-user counts in RecBole's DataStruct (one row per evaluated user).
AMR_KEY = "mi.amr"
CUR_KEY = "mi.cur"

#: Metric names (lower case) that need the multi-interest collection.
MULTI_INTEREST_METRICS = ("amr", "cur")

#: Most interest-item scores held at once while searching per-interest top-N lists (64 MiB of float32).
SCORE_BUDGET = 1 << 24


def requested_multi_interest_metrics(config):
    """The subset of ``('amr', 'cur')`` that ``config['metrics']`` asks for."""
    metrics = config["metrics"] or []
    if isinstance(metrics, str):
        metrics = [metrics]
    wanted = {m.lower() for m in metrics}
    return tuple(m for m in MULTI_INTEREST_METRICS if m in wanted)


def check_multi_interest_config(config):
    """Raise :class:`ConfigError` when AMR/CUR are requested in a setting that cannot compute them.

    Both need full ranking (``eval_args.mode: full``): the per-interest top-N lists are over the whole
    catalogue. CUR needs ``category_field``.
    """
    requested = requested_multi_interest_metrics(config)
    if not requested:
        return
    modes = (config["eval_args"] or {}).get("mode") or {}
    if isinstance(modes, str):
        modes = {"valid": modes, "test": modes}
    for phase in ("valid", "test"):
        if modes.get(phase) != "full":
            raise ConfigError(
                f"eval_args.mode.{phase}={modes.get(phase)!r} is not allowed with metrics "
                f"{[m.upper() for m in requested]}: AMR and CUR rank the whole catalogue, so the mode must be 'full'"
            )
    if "cur" in requested and not config["category_field"]:
        raise ConfigError(
            f"category_field={config['category_field']!r}: the CUR metric needs the name of an item field "
            "holding the item category (a token or token_seq field of the .item file, e.g. 'class' for "
            "ml-100k); set category_field or remove CUR from metrics"
        )


def item_categories(dataset, field):
    """Category id of every item, ``LongTensor [n_items]`` (0 = none), from the item field ``field``.

    A ``token`` field gives its value, a ``token_seq`` field its first value (docs/design.md §5).
    """
    from recbole.utils import FeatureType

    item_feat = dataset.item_feat
    available = sorted(item_feat.columns) if item_feat is not None else []
    if item_feat is None or field not in available:
        raise ConfigError(
            f"category_field={field!r} is not a loaded item field of dataset {dataset.dataset_name!r}; "
            f"loaded item fields: {available or 'none (no .item file loaded)'}. Name a token or token_seq "
            "field of the .item file (it is added to load_col automatically)"
        )
    ftype = dataset.field2type[field]
    if ftype in (FeatureType.TOKEN, FeatureType.TOKEN_SEQ):
        categories = first_category_tokens(dataset, field)
    else:
        raise ConfigError(
            f"category_field={field!r} has type {ftype.value}; allowed: token or token_seq (first value is used)"
        )
    if len(categories) != dataset.item_num:
        raise ConfigError(
            f"category_field={field!r} has {len(categories)} rows but the dataset has {dataset.item_num} items"
        )
    return categories


def gather_csr(indptr, values, rows):
    """For CSR ``(indptr, values)`` and row ids ``rows [B]``: ``(batch_row [M], value [M])`` of all entries."""
    rows = rows.long()
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    batch_row = torch.repeat_interleave(torch.arange(len(rows), device=rows.device), lengths)
    if len(batch_row) == 0:
        return batch_row, values.new_empty(0)
    offsets = torch.cumsum(lengths, 0) - lengths
    position = starts[batch_row] + torch.arange(len(batch_row), device=rows.device) - offsets[batch_row]
    return batch_row, values[position]


def csr_from_pairs(rows, values, n_rows):
    """CSR ``(indptr [n_rows + 1], values)`` holding the distinct ``values`` of each row, sorted."""
    rows = rows.long()
    values = values.long()
    if len(rows) == 0:
        return torch.zeros(n_rows + 1, dtype=torch.long), values.new_empty(0)
    width = int(values.max()) + 1
    keys = torch.unique(rows * width + values)
    key_rows = torch.div(keys, width, rounding_mode="floor")
    counts = torch.bincount(key_rows, minlength=n_rows)
    indptr = torch.zeros(n_rows + 1, dtype=torch.long)
    indptr[1:] = torch.cumsum(counts, 0)
    return indptr, keys - key_rows * width


def per_interest_topk(interests, items, n, excluded=None, budget=SCORE_BUDGET):
    """Item ids of each interest's own top-``n`` list, ``[B, K, n]``, best first.

    Scores are inner products ``interests [B, K, D] . items [N, D]``. The catalogue is scanned in blocks
    sized so that at most ``budget`` scores exist at once, keeping a running top-``n`` per interest:
    memory is O(B * K * (block + n)), never O(B * K * N). Item 0 (padding) is never retrieved, nor
    ``excluded = (rows, items)`` pairs (the history masking RecBole applies to non-sequential loaders).
    """
    batch, k_num, _ = interests.shape
    n_items = items.shape[0]
    n = min(n, n_items)
    block = max(n, budget // max(1, batch * k_num))
    best_scores = best_ids = None
    for start in range(0, n_items, block):
        part = items[start:start + block]
        stop = start + part.shape[0]
        scores = torch.einsum("bkd,nd->bkn", interests, part)
        if start == 0:
            scores[:, :, 0] = -torch.inf
        if excluded is not None:
            rows, cols = excluded
            inside = (cols >= start) & (cols < stop)
            if bool(inside.any()):
                scores[rows[inside], :, cols[inside] - start] = -torch.inf
        ids = torch.arange(start, stop, device=interests.device).expand(batch, k_num, -1)
        if best_scores is not None:
            scores = torch.cat([best_scores, scores], dim=-1)
            ids = torch.cat([best_ids, ids], dim=-1)
        best_scores, position = torch.topk(scores, min(n, scores.shape[-1]), dim=-1)
        best_ids = torch.gather(ids, -1, position)
    return best_ids


def _is_target(retrieved, target_rows, target_items, n_items):
    """Bool tensor shaped like ``retrieved [B, ...]``: is the retrieved item a target of its row?"""
    batch = retrieved.shape[0]
    rows = torch.arange(batch, device=retrieved.device).view(batch, *([1] * (retrieved.dim() - 1)))
    keys = rows * n_items + retrieved
    target_keys = target_rows.to(retrieved.device).long() * n_items + target_items.to(retrieved.device).long()
    return torch.isin(keys, target_keys)


def _hits_at(is_target, topk):
    """Number of hits within the first N of each list, for each N of ``topk`` -> ``[..., len(topk)]``."""
    cumulative = torch.cumsum(is_target.long(), dim=-1)
    width = cumulative.shape[-1]
    index = torch.tensor([min(n, width) - 1 for n in topk], device=cumulative.device)
    return cumulative.index_select(-1, index)


def amr_counts(merged_topk, interest_topk, target_rows, target_items, n_items, topk):
    """Per-user AMR inputs, ``LongTensor [B, len(topk), 2]``: ``|M ∩ T|`` and ``max_k |L_k ∩ T|`` per N.

    Args:
        merged_topk: ``[B, max(topk)]`` item ids of the merged list M, best first.
        interest_topk: ``[B, K, max(topk)]`` item ids of each interest's own list L_k, or ``None`` for a
            single-vector model (K = 1: L_1 = M, hence AMR = 0).
        target_rows, target_items: the (row, item) pairs of T; repeated pairs count once.
        n_items: catalogue size (item ids are < n_items).
        topk: the cut-offs N.
    """
    merged = _hits_at(_is_target(merged_topk, target_rows, target_items, n_items), topk)
    if interest_topk is None or interest_topk.shape[1] == 1:
        best = merged
    else:
        per_interest = _hits_at(_is_target(interest_topk, target_rows, target_items, n_items), topk)
        best = per_interest.max(dim=1).values
    return torch.stack([merged, best], dim=-1)


def unseen_category_targets(target_rows, target_categories, history_rows, history_categories):
    """Bool mask over targets: the category is known (> 0) and absent from the row's history categories."""
    target_rows = target_rows.long()
    target_categories = target_categories.long()
    width = int(max(target_categories.max().item() if len(target_categories) else 0,
                    history_categories.max().item() if len(history_categories) else 0)) + 1
    seen = torch.isin(target_rows * width + target_categories,
                      history_rows.long().to(target_rows.device) * width + history_categories.long().to(target_rows.device))
    return (target_categories > 0) & ~seen


def cur_counts(merged_topk, target_rows, target_items, unseen, n_items, topk):
    """Per-user CUR inputs, ``LongTensor [B, 1 + len(topk)]``: ``|U|`` then ``|M ∩ U|`` per N.

    ``unseen`` is the mask over the (row, item) target pairs selecting U (see
    :func:`unseen_category_targets`); repeated pairs count once.
    """
    batch = merged_topk.shape[0]
    keys = target_rows.long() * n_items + target_items.long()
    keys, first = _unique_with_first_index(keys)
    unseen = unseen[first]
    unseen_keys = keys[unseen]
    unseen_rows = torch.div(unseen_keys, n_items, rounding_mode="floor")
    size = torch.bincount(unseen_rows, minlength=batch).to(merged_topk.device)
    hits = _hits_at(_is_target(merged_topk, unseen_rows, unseen_keys - unseen_rows * n_items, n_items), topk)
    return torch.cat([size.unsqueeze(1), hits], dim=1)


def _unique_with_first_index(keys):
    """Sorted distinct ``keys`` and, for each, the index of one of its occurrences."""
    unique, inverse = torch.unique(keys, return_inverse=True)
    first = torch.empty(len(unique), dtype=torch.long, device=keys.device)
    first.scatter_(0, inverse, torch.arange(len(keys), device=keys.device))
    return unique, first


def amr_values(counts):
    """AMR@N for each N from the ``[users, len(topk), 2]`` counts (also accepted flattened to
    ``[users, 2 * len(topk)]``, as they are stored); 0.0 where no user qualifies."""
    counts = counts.double().reshape(counts.shape[0], -1, 2)
    merged, best = counts[..., 0], counts[..., 1]
    qualifies = merged > 0
    per_user = torch.clamp(1.0 - best / torch.where(qualifies, merged, torch.ones_like(merged)), min=0.0)
    per_user = torch.where(qualifies, per_user, torch.zeros_like(per_user))
    users = qualifies.sum(dim=0)
    return [float(s / u) if u > 0 else 0.0 for s, u in zip(per_user.sum(dim=0), users)]


def cur_values(counts):
    """CUR@N for each N from the stacked ``[users, 1 + len(topk)]`` counts (0.0 where no user qualifies)."""
    counts = counts.double()
    size, hits = counts[:, 0], counts[:, 1:]
    qualifies = size > 0
    if not bool(qualifies.any()):
        return [0.0] * hits.shape[1]
    return (hits[qualifies] / size[qualifies].unsqueeze(1)).mean(dim=0).tolist()
