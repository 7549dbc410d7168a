"""Scoring items with K queries per user (docs/design.md §2.4, §3), without RecBole.

An item's score for a user is the best inner product with any of the user's queries. These functions are
shared by every model's ``full_sort_predict``, the AMR/CUR metrics, the serving export's check and the
live serving model.
"""

import torch

# Items scored per block in max_interest_scores: bounds the [B, K, block] temporary.
ITEM_BLOCK = 65536


def max_interest_scores(interests, items, block=ITEM_BLOCK):
    """Score every item for every user as the max over interests: ``[B, K, D] x [N, D] -> [B, N]``.

    Items are processed in blocks so memory is O(B * K * block), not O(B * K * N). Each block is one matrix
    product of the B * K queries with the block's items, reduced over K straight into the result (a
    catalogue of one block is returned as computed, without a copy).
    """
    batch, k, dim = interests.shape
    queries = interests.reshape(batch * k, dim)
    if items.shape[0] <= block:
        return (queries @ items.T).view(batch, k, -1).amax(dim=1)
    scores = interests.new_empty((batch, items.shape[0]))
    for start in range(0, items.shape[0], block):
        part = items[start:start + block]
        torch.amax((queries @ part.T).view(batch, k, -1), dim=1, out=scores[:, start:start + part.shape[0]])
    return scores


def catalogue_logsumexp(queries, items, block=ITEM_BLOCK):
    """``log sum_i exp(q . v_i)`` over the catalogue for every query ``[B, K, D] x [N, D] -> [B, K]``, in
    item blocks (memory O(B * K * block)): the normaliser of each query's softmax over items."""
    total = None
    for start in range(0, items.shape[0], block):
        part = torch.logsumexp(torch.einsum("bkd,nd->bkn", queries, items[start:start + block]), dim=-1)
        total = part if total is None else torch.logaddexp(total, part)
    return total
