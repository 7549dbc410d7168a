"""Exact retrieval over interest partitions: each query scores only the items it may score (docs/serving.md).

Under GemiRec's ``interest_masking`` an interest query's scores outside its interest carry a penalty that no
score overcomes (the masking columns of the item table: one one-hot block per code level) and exactly 0 inside
it. Its top-n is therefore the top-n of its interest's items alone, and the query u, whose masking columns are
zero, scores the whole catalogue. A catalogue-wide index scans all N items for each of the K + 1 queries; here
the items are laid out grouped by interest, so an interest query scans its own group (N / n_interests items on
average) and the request costs about ``N (1 + K / n_interests)`` item scores.

Both the export's stored queries and live ones are served from the same layout. Live queries may arrive
without their log-softmax normaliser (the model's ``defer_normalisers``): the normaliser of a query is then
the log-sum-exp of the scores computed here over its partition, the same set the model normalises over,
subtracted before the lists are merged, so the result is the model's scores.

Everything is read from the item vectors and the queries themselves: an item's interest is its one-hot code
in the masking columns; a query's is where its masking values are 0 (all of them 0: the query u).
"""

import numpy as np

from recbole_gemirec.errors import DataError


class InterestPartitions:
    """The item table grouped by interest, and :meth:`search` of one user's queries over it.

    Args:
        item_vectors: ``[N, D']`` the export's item table (masking columns included).
        columns: ``[first, stop]`` the masking columns.
        level_sizes: the size of each code level's one-hot block within them.
        bias_column: the column of ones whose query value is the query's bias (``None``: no bias); a deferred
            normaliser is the log-sum-exp of the scores without it.
        source: what to name in an error (the file the vectors came from).
    """

    def __init__(self, item_vectors, columns, level_sizes, bias_column=None, source="item_vectors.npy"):
        first, stop = (int(c) for c in columns)
        width = item_vectors.shape[1]
        self.level_sizes = [int(s) for s in level_sizes]
        if not 0 <= first < stop <= width or sum(self.level_sizes) != stop - first or min(self.level_sizes) < 1:
            raise DataError(f"{source}: masking columns {columns} with level sizes {level_sizes} do not fit "
                            f"its {width} columns")
        if bias_column is not None and not (0 <= bias_column < width and (item_vectors[:, bias_column] == 1).all()):
            raise DataError(f"{source}: column {bias_column} is not the column of ones of the queries' bias")
        self.bias_column = bias_column
        self.columns = (first, stop)
        masks = item_vectors[:, first:stop]
        keys = self._item_keys(masks, source)
        order = np.argsort(keys, kind="stable")
        self.rows = order.astype(np.int64)  # item row of each position of the grouped layout
        self.positions = np.argsort(self.rows)  # and the position of each item row
        self.keys, self.starts = np.unique(keys[order], return_index=True)
        self.stops = np.append(self.starts[1:], len(order))
        kept = np.r_[0:first, stop:item_vectors.shape[1]]  # within a partition the masking columns add exactly 0
        self.kept = kept
        self.vectors = np.ascontiguousarray(item_vectors[order][:, kept], dtype=np.float32)

    def _item_keys(self, masks, source):
        """Each item's interest as one integer (mixed radix over the levels' codes)."""
        keys = np.zeros(len(masks), dtype=np.int64)
        offset = 0
        for size in self.level_sizes:
            block = masks[:, offset:offset + size]
            if not (((block == 0) | (block == 1)).all() and (block.sum(axis=1) == 1).all()):
                raise DataError(f"{source}: an item's masking columns {offset}..{offset + size - 1} are not a "
                                "one-hot code")
            keys = keys * size + block.argmax(axis=1)
            offset += size
        return keys

    def query_spans(self, queries):
        """``(starts [K], stops [K])``: the positions each query scores: its interest's group, the whole layout
        for a query whose masking values are all 0 (u), an empty span for an interest no item has."""
        masks = queries[:, self.columns[0]:self.columns[1]]
        keys = np.zeros(len(queries), dtype=np.int64)
        offset = 0
        for size in self.level_sizes:
            keys = keys * size + masks[:, offset:offset + size].argmax(axis=1)
            offset += size
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        known = self.keys[at] == keys
        starts, stops = np.where(known, self.starts[at], 0), np.where(known, self.stops[at], 0)
        user = ~masks.any(axis=1)
        return np.where(user, 0, starts), np.where(user, len(self.rows), stops)

    def retrieve(self, queries, n, normalise=None, excluded=None):
        """The merged top-``n`` of one user's queries ``[K, D']``: ``(item rows, slots, scores)``, each
        ``[<= n]``, best first, as :func:`~recbole_gemirec.serving.recommender.merge_interest_lists` merges
        the queries' own top lists (an item keeps its best score and the first query that gave it; ties in
        score go to the lower item row).

        Interests do not share items, so every item has at most two scores, u's and its interest query's:
        each query's scores over its partition are folded into one best score per item, and one selection
        over the catalogue replaces a top-n per query and their merge. ``normalise [K]`` (bool): subtract
        from a query's scores the log-sum-exp of them over its partition, its bias left out (a live query's
        deferred normaliser: the model normalises the scores without the bias, then adds it). ``excluded``:
        item rows never to return (still part of every normaliser, as in the model)."""
        starts, stops = self.query_spans(queries)
        vectors = np.ascontiguousarray(queries[:, self.kept])
        parts = [self.vectors[a:b] @ vectors[slot] for slot, (a, b) in enumerate(zip(starts, stops))]
        if normalise is not None and np.any(normalise):
            shift = np.where(normalise, self._bias(queries) - _segment_logsumexp(parts), 0.0).astype(np.float32)
            parts = [part + value if value else part for part, value in zip(parts, shift)]
        best = np.full(len(self.rows), -np.inf, dtype=np.float32)
        slots = np.zeros(len(self.rows), dtype=np.int64)
        for slot, (part, a, b) in enumerate(zip(parts, starts, stops)):
            better = part > best[a:b]  # strictly: on a tie the earlier query keeps the item
            best[a:b] = np.where(better, part, best[a:b])
            slots[a:b] = np.where(better, slot, slots[a:b])
        if excluded is not None and len(excluded):
            best[self.positions[np.asarray(excluded, dtype=np.int64)]] = -np.inf
        candidates = np.flatnonzero(best > -np.inf) if n >= len(best) else None
        if candidates is None:
            top = np.argpartition(best, len(best) - n)[len(best) - n:]
            candidates = top[best[top] > -np.inf]
        rows = self.rows[candidates]
        order = np.lexsort((rows, -best[candidates]))[:n]  # best score first, then the lower item row
        chosen = candidates[order]
        return rows[order], slots[chosen], best[chosen]

    def _bias(self, queries):
        """Each query's bias (its value in the items' column of ones), 0 without one."""
        return np.zeros(len(queries), np.float32) if self.bias_column is None else queries[:, self.bias_column]


def _segment_logsumexp(parts):
    """``[K]``: the log-sum-exp of each array of ``parts`` (``-inf`` for an empty one), in a few vectorised
    passes over their concatenation rather than a handful of calls per array."""
    sizes = np.array([len(p) for p in parts])
    result = np.full(len(parts), -np.inf, dtype=np.float64)
    filled = sizes > 0
    if not filled.any():
        return result
    flat = np.concatenate([p for p in parts if len(p)])
    offsets = np.concatenate([[0], np.cumsum(sizes[filled])[:-1]])
    tops = np.maximum.reduceat(flat, offsets)
    sums = np.add.reduceat(np.exp(flat - np.repeat(tops, sizes[filled])), offsets, dtype=np.float64)
    result[filled] = tops + np.log(sums)
    return result
