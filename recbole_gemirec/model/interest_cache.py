"""Choosing each user's K interests and caching them (GemiRec paper §3.5; docs/design.md §2.4).

The generator ranks all interests for a user. Walking down that ranking, an interest is kept only if,
with it, no codeword of any level would appear more than epsilon (``interest_code_limit``) times among
the kept interests; the walk stops at K (``interest_num``). The limit spreads a user's K interests over
different regions of the dictionary instead of K neighbours of the top one.

The resulting list is the user's *interest cache*: serving (and ``full_sort_predict``) reads it and
never runs the GPT.
"""

import numpy as np
import torch

# How many of the top-ranked interests are examined per user before giving up on filling K slots.
CANDIDATES_PER_SLOT = 32


def select_interests(scores, codes_of, k, code_limit, candidates=None):
    """Pick up to K interest ids per user from ``scores [B, n_interests]`` under the code limit.

    Args:
        scores: higher is better (logits or counts); ``-inf`` marks interests never to take.
        codes_of: function mapping interest ids ``[...]`` to code tuples ``[..., C]``.
        k: K, interests per user.
        code_limit: epsilon, the most times a codeword of one level may be used among the kept ones.
        candidates: how many top-ranked interests to examine (default ``k * CANDIDATES_PER_SLOT``).

    Returns:
        ``[B, K]`` interest ids, ``-1`` where fewer than K could be kept.
    """
    batch, n_interests = scores.shape
    if code_limit >= 1 and codes_of(scores.new_zeros(1, dtype=torch.long)).shape[-1] == 1:
        # one-level interests are their own codewords: each is used once at most, the limit never binds, and
        # the rule keeps the K best interests that may be taken (the walk below would take them one by one).
        # Equal scores (two interests with as many items of a history) go to the lower interest id: a stable
        # sort, the order ONNX's TopK gives ties too, so every runtime serving the model picks the same K.
        top_scores, best = (t[:, :k] for t in scores.sort(dim=1, descending=True, stable=True))
        chosen = torch.where(torch.isfinite(top_scores), best, torch.full_like(best, -1))
        return torch.cat([chosen, chosen.new_full((batch, k - chosen.shape[1]), -1)], dim=1)
    n_candidates = min(candidates or k * CANDIDATES_PER_SLOT, n_interests)
    top_scores, top_ids = scores.topk(n_candidates, dim=1)
    # the walk reads small integer arrays ([B, T, C] codes) and takes a handful of operations per step: in numpy on
    # the CPU, each costs a few microseconds where a torch indexing operation costs tens (a served request
    # chooses one user's interests: docs/serving.md)
    codes = codes_of(top_ids).cpu().numpy()
    ids, takeable = top_ids.cpu().numpy(), torch.isfinite(top_scores).cpu().numpy()
    chosen = np.full((batch, k), -1, dtype=np.int64)
    free = _limit_never_binds(codes, takeable, k, code_limit)
    if free.any():
        chosen[free] = ids[free, :k]
    walk = np.flatnonzero(~free)
    if len(walk):
        chosen[walk] = _walk(ids[walk], codes[walk], takeable[walk], k, code_limit)
    return torch.from_numpy(chosen).to(scores.device)


def _limit_never_binds(codes, takeable, k, code_limit):
    """``[B]`` bool: rows whose first K candidates may all be taken (``takeable``) and together use no codeword of
    any level more than ``code_limit`` times. The walk keeps exactly those K, each with every codeword used fewer
    than ``code_limit`` times before it, so these rows need no walk."""
    first = codes[:, :k]  # [B, K, C]
    uses = (first[:, :, None, :] == first[:, None, :, :]).sum(axis=2)  # [B, K, C]: each candidate's codewords' uses
    return (uses <= code_limit).all(axis=(1, 2)) & takeable[:, :k].all(axis=1) & (codes.shape[1] >= k)


def _walk(ids, codes, takeable, k, code_limit):
    """The walk down each row's candidates (``ids [B, T]``, their codes ``[B, T, C]``, ``takeable [B, T]``):
    ``[B, K]`` kept ids, -1 where fewer than K could be kept."""
    batch, n_candidates, levels = codes.shape
    width = int(codes.max()) + 1 if codes.size else 1
    counts = np.zeros((batch, levels, width), dtype=np.int64)  # uses of each codeword of each level so far
    chosen = np.full((batch, k), -1, dtype=np.int64)
    kept = np.zeros(batch, dtype=np.int64)
    rows, level_index = np.arange(batch)[:, None], np.arange(levels)[None, :]
    for t in range(n_candidates):
        code = codes[:, t]  # [B, C]
        accept = (counts[rows, level_index, code] < code_limit).all(axis=1) & (kept < k) & takeable[:, t]
        take = np.flatnonzero(accept)
        if len(take):
            chosen[take, kept[take]] = ids[take, t]
            counts[take[:, None], level_index, code[take]] += 1
            kept[take] += 1
            if kept.min() >= k:
                break
    return chosen


def history_frequency_scores(history_ids, n_interests):
    """GemiRec-M (docs/design.md §2.6): rank interests by how often they occur in the history (ids ``[B, L]``,
    ``-1`` for padding); more recent occurrences break ties. Interests never seen score ``-inf``."""
    batch, length = history_ids.shape
    valid = history_ids >= 0
    recency = torch.arange(1, length + 1, device=history_ids.device, dtype=torch.float32) / (length + 1)
    weights = (1.0 + recency.unsqueeze(0) * 1e-3) * valid
    scores = torch.zeros(batch, n_interests, device=history_ids.device)
    scores.scatter_add_(1, history_ids.clamp(min=0), weights)
    return scores.masked_fill(scores == 0, float("-inf"))


def interest_log_probs(scores, predictor="gpt"):
    """log p(interest | user) ``[B, n_interests]`` from the predictor's scores: the softmax of the GPT's
    logits, or the history share of each interest for the frequency predictor (``-inf`` for unseen); the
    transition predictor's scores already are log-probabilities."""
    if predictor == "transition":
        return scores
    if predictor == "frequency":
        counts = scores.clamp(min=0).nan_to_num(0.0)
        return (counts / counts.sum(dim=1, keepdim=True).clamp(min=1e-12)).log()
    return torch.log_softmax(scores, dim=1)


def fill_missing(chosen):
    """Replace ``-1`` slots by the user's first interest so every row has K usable ids
    (duplicates do not change a max over interests)."""
    first = chosen[:, :1].expand_as(chosen)
    return torch.where(chosen >= 0, chosen, first)
