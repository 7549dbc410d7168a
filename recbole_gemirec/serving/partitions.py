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
subtracted before the lists are merged, so the result is the model's scores. Interests share no item, so an
item is scored only by u and by its own interest's query: one best score per item and one selection over the
catalogue replace a top list per query and their merge.

Everything is read from the item vectors and the queries themselves: an item's interest is its one-hot code
in the masking columns; a query's is where its masking values are 0 (all of them 0: the query u).
"""

import numpy as np

from recbole_gemirec.errors import DataError


class InterestPartitions:
    """The item table grouped by interest, and :meth:`retrieve` of one user's queries over it.

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
        if bias_column is not None and not (0 <= bias_column < first and (item_vectors[:, bias_column] == 1).all()):
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
        # What a query scans, grouped: the columns before the masking ones (the embedding) and those after them
        # (GemiRec's popularity column), each scanned only where the query weighs it; within a partition the
        # masking columns add exactly 0, and the column of ones adds the query's bias, a constant
        main = [c for c in range(first) if c != bias_column]
        # a slice where the columns are contiguous (GemiRec's: the bias column follows the embedding), so a
        # request's queries are read in place
        self.main = slice(0, len(main)) if main == list(range(len(main))) else np.array(main, dtype=np.int64)
        self.extra = slice(stop, width)
        # gathered in one step each (no grouped copy of the whole table on the way)
        self.main_vectors = np.ascontiguousarray(item_vectors[np.ix_(order, main)], dtype=np.float32)
        self.extra_vectors = np.ascontiguousarray(item_vectors[np.ix_(order, np.arange(stop, width))], dtype=np.float32)
        self._span_memo = {}  # _spans: the masking values of a query, as bytes -> its (start, stop)

    def _item_keys(self, masks, source):
        """Each item's interest as one integer, after checking that every level's block is a one-hot code."""
        offset = 0
        for size in self.level_sizes:
            block = masks[:, offset:offset + size]
            if not (((block == 0) | (block == 1)).all() and (block.sum(axis=1) == 1).all()):
                raise DataError(f"{source}: an item's masking columns {offset}..{offset + size - 1} are not a "
                                "one-hot code")
            offset += size
        return self._keys(masks)

    def _keys(self, masks):
        """One integer per row of masking columns: the code of each level (where its block peaks: an item's 1, a
        query's own codeword at 0 among -penalties) in mixed radix over the levels."""
        keys = np.zeros(len(masks), dtype=np.int64)
        offset = 0
        for size in self.level_sizes:
            keys = keys * size + masks[:, offset:offset + size].argmax(axis=1)
            offset += size
        return keys

    def query_spans(self, queries):
        """``(starts [K], stops [K])``: the positions each query scores: its interest's group, the whole layout
        for a query whose masking values are all 0 (u), an empty span for an interest no item has."""
        masks = queries[:, self.columns[0]:self.columns[1]]
        keys = self._keys(masks)
        at = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        known = self.keys[at] == keys
        starts, stops = np.where(known, self.starts[at], 0), np.where(known, self.stops[at], 0)
        user = ~masks.any(axis=1)
        return np.where(user, 0, starts), np.where(user, len(self.rows), stops)

    def _spans(self, queries):
        """:meth:`query_spans`, remembered by the bytes of each query's masking values: a model's queries have one of
        ``n_interests + 1`` masking rows, so after a server's first requests a span is a dictionary lookup instead
        of a handful of array operations."""
        keys = row_keys(queries[:, self.columns[0]:self.columns[1]])
        memo = self._span_memo
        spans = [memo.get(key) for key in keys]  # read once: another thread may clear the memo meanwhile
        missing = [i for i, span in enumerate(spans) if span is None]
        if missing:
            starts, stops = self.query_spans(queries[missing])
            if len(memo) + len(missing) > SPAN_MEMO_SIZE:  # only queries from outside a model have this many rows
                memo.clear()
            for i, span in zip(missing, zip(starts.tolist(), stops.tolist())):
                spans[i] = memo[keys[i]] = span
        return np.array([span[0] for span in spans], dtype=np.int64), np.array([span[1] for span in spans], dtype=np.int64)

    def retrieve(self, queries, n, normalise=None, excluded=None):
        """The merged top-``n`` of one user's queries ``[K, D']``: ``(item rows, slots, scores)``, each
        ``[<= n]``, best first, as :func:`~recbole_gemirec.serving.recommender.merge_interest_lists` merges
        the queries' own top lists (an item keeps its best score and the first query that gave it; ties in
        score go to the lower item row).

        Interests do not share items, so an item is scored only by u and by its own interest's query: each
        query's scores over its partition are folded into one best score per item, and one selection
        over the catalogue replaces a top-n per query and their merge. ``normalise [K]`` (bool): subtract
        from a query's scores the log-sum-exp of them over its partition, its bias left out (a live query's
        deferred normaliser: the model normalises the scores without the bias, then adds it). ``excluded``:
        item rows never to return (still part of every normaliser, as in the model)."""
        starts, stops = self._spans(queries)
        slots = np.flatnonzero(stops > starts)  # the queries that score any item, in slot order
        lengths = (stops - starts)[slots]
        offsets = np.cumsum(lengths) - lengths
        # every query's scores, its bias left out, side by side in one array: a segment per query
        scores = self._segment_scores(queries, slots, starts, stops, offsets, int(lengths.sum()))
        shifts = queries[slots, self.bias_column] if self.bias_column is not None else np.zeros(len(slots), np.float32)
        normalised = np.zeros(len(slots), bool) if normalise is None else np.asarray(normalise, dtype=bool)[slots]
        if normalised.any():  # all the normalisers at once
            shifts = shifts - np.where(normalised, _segment_logsumexp(scores, offsets, lengths), np.float32(0))
        if shifts.any():
            scores += np.repeat(shifts.astype(np.float32), lengths)
        best, best_slots = None, None
        for slot, offset in zip(slots.tolist(), offsets.tolist()):
            start, stop = starts[slot], stops[slot]
            part = scores[offset:offset + stop - start]
            best, best_slots = _fold(best, best_slots, part, slot, start, stop, len(self.rows), len(queries))
        if best is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
        if excluded is not None and len(excluded):
            best[self.positions[np.asarray(excluded, dtype=np.int64)]] = -np.inf
        candidates = _top_candidates(best, n)
        found = best[candidates]
        if len(candidates) > n:  # the n best and every tie with the n-th: the ordering sorts only those
            within = found >= np.partition(found, len(found) - n)[len(found) - n]
            candidates, found = candidates[within], found[within]
        rows = self.rows[candidates]
        order = np.lexsort((rows, -found))[:n]  # best score first, then the lower item row
        return rows[order], best_slots[candidates[order]].astype(np.int64), found[order]

    def _segment_scores(self, queries, slots, starts, stops, offsets, total):
        """``[total]`` float32: each of ``slots``' scores over its partition, its bias left out, in its segment
        (at ``offsets``): the embedding columns and the further ones, each only where the query weighs them (an
        interest query ranked by popularity has no embedding part, u no popularity)."""
        main, extra = queries[:, self.main], queries[:, self.extra]
        weighs_main, weighs_extra = main.any(axis=1).tolist(), extra.any(axis=1).tolist()
        scores = np.empty(total, dtype=np.float32)
        for slot, offset in zip(slots.tolist(), offsets.tolist()):
            start, stop = starts[slot], stops[slot]
            segment = scores[offset:offset + stop - start]
            if weighs_main[slot]:
                np.dot(self.main_vectors[start:stop], main[slot], out=segment)
            else:
                segment.fill(0.0)
            if weighs_extra[slot]:
                segment += self.extra_vectors[start:stop] @ extra[slot]
        return scores


def row_keys(rows):
    """One ``bytes`` object per row of a 2-D array: equal bytes, equal rows (a dictionary key per row, read in one
    pass instead of comparing rows with each other)."""
    rows = np.ascontiguousarray(rows)
    return rows.view(f"V{rows.shape[1] * rows.itemsize}").ravel().tolist()


SPAN_MEMO_SIZE = 1 << 16  # InterestPartitions._spans: masking rows remembered before the memo starts again
SAMPLE_STRIDE = 16  # _top_candidates: one item in 16 bounds the n-th best score from below


def _fold(best, slots, part, slot, start, stop, size, k):
    """Fold one query's scores of positions ``start:stop`` into the best score and query of every position
    (strictly better only: on a tie the earlier query keeps the item). The first query over every position
    (u) becomes the fold itself, without a copy."""
    dtype = np.int16 if k < 2 ** 15 else np.int64
    if best is None and start == 0 and stop == size:
        return part, np.full(size, slot, dtype=dtype)
    if best is None:
        best, slots = np.full(size, -np.inf, dtype=np.float32), np.zeros(size, dtype=dtype)
    held, held_slots = best[start:stop], slots[start:stop]
    held_slots[part > held] = slot
    np.maximum(held, part, out=held)
    return best, slots


def _top_candidates(best, n):
    """Positions that hold the ``n`` best finite scores of ``best`` (every tie with the n-th included).

    The n-th best of a subset is at most the n-th best of all, so the n-th best of every ``SAMPLE_STRIDE``-th
    score is a lower bound: the positions at or above it are a few times n, found in one pass, instead of a
    selection over the whole catalogue (exact either way)."""
    size = len(best)
    if size <= n:
        return np.flatnonzero(best > -np.inf)
    sample = best[::SAMPLE_STRIDE]
    if len(sample) >= 4 * n:
        bound = np.partition(sample, len(sample) - n)[len(sample) - n]
        if bound > -np.inf:
            return np.flatnonzero(best >= bound)
    top = np.argpartition(best, size - n)[size - n:]
    bound = best[top].min()
    return np.flatnonzero(best >= bound) if bound > -np.inf else top[best[top] > -np.inf]


def _segment_logsumexp(scores, offsets, lengths):
    """``[segments]`` float32: the log-sum-exp of each segment of ``scores`` (non-empty, consecutive, at
    ``offsets``, of ``lengths``), each shifted by its maximum; a handful of whole-array operations however many
    segments there are. numpy sums a segment pairwise, so its float32 sum is within a few units of the last place
    of the exact one (a float64 sum would cost a converting pass over every score)."""
    top = np.maximum.reduceat(scores, offsets)
    shifted = scores - np.repeat(top, lengths)
    np.exp(shifted, out=shifted)
    return top + np.log(np.add.reduceat(shifted, offsets))
