"""Retrieval over interest partitions returns what the catalogue-wide exact index returns, scanning less."""

import numpy as np
import pytest

from recbole_gemirec.errors import DataError
from recbole_gemirec.model.gemirec_queries import MASK_PENALTY
from recbole_gemirec.serving.index import build_index, search
from recbole_gemirec.serving.partitions import InterestPartitions
from recbole_gemirec.serving.recommender import merge_interest_lists

DIM, SIZES = 8, [3, 2]  # two code levels: 6 interests, one of which no item has (below)
FIRST = DIM + 1  # embedding columns, then the bias column of ones, then the masking columns
COLUMNS = [FIRST, FIRST + sum(SIZES)]


def _one_hot(codes):
    return np.concatenate([np.eye(size, dtype=np.float32)[codes[:, level]] for level, size in enumerate(SIZES)], 1)


def _catalogue(n_items=300, seed=0):
    """Items ``[N, DIM + 1 + 5 + 1]``: embeddings, ones, the one-hot codes, a popularity column; interest (2, 1)
    has no item."""
    rng = np.random.default_rng(seed)
    codes = np.stack([rng.integers(0, 3, n_items), rng.integers(0, 2, n_items)], 1)
    codes[(codes[:, 0] == 2) & (codes[:, 1] == 1), 1] = 0
    items = np.concatenate([rng.standard_normal((n_items, DIM)), np.ones((n_items, 1)), _one_hot(codes),
                            rng.standard_normal((n_items, 1))], 1).astype(np.float32)
    return items, codes


def _queries(codes, bias, popularity=0.0, seed=1):
    """Queries of interest codes ``codes [K, 2]`` (a row of -1: u), as GemiRec's scoring columns lay them out."""
    rng = np.random.default_rng(seed)
    masks = (_one_hot(np.maximum(codes, 0)) - 1.0) * MASK_PENALTY
    masks[(codes < 0).all(1)] = 0.0
    k = len(codes)
    return np.concatenate([rng.standard_normal((k, DIM)), np.asarray(bias, np.float32).reshape(k, 1), masks,
                           np.full((k, 1), popularity)], 1).astype(np.float32)


def _partitions(items):
    return InterestPartitions(items, COLUMNS, SIZES, bias_column=DIM)


def _whole_index(items, queries, n, excluded=()):
    """What the Recommender serves without partitions: each query's top list from the exact index, merged."""
    scores, rows = search(build_index(items, "flat")[0], queries, n + len(excluded))
    return merge_interest_lists(scores, rows, n, np.asarray(excluded, dtype=np.int64))


@pytest.mark.parametrize("n", [1, 20, 299, 300, 400])
def test_the_merged_list_is_what_the_catalogue_wide_index_and_the_merge_give(n):
    items, _ = _catalogue()
    queries = _queries(np.array([[-1, -1], [0, 0], [1, 1], [2, 0], [0, 0]]), [0.0, -0.5, -1.0, -2.0, -0.5])
    excluded = [3, 77, 150]
    for exclude in ([], excluded):
        rows, slots, scores = _partitions(items).retrieve(queries, n, excluded=exclude)
        want_rows, want_slots, want_scores = _whole_index(items, queries, min(n, len(items) - len(exclude)), exclude)
        np.testing.assert_array_equal(rows, want_rows)
        np.testing.assert_array_equal(slots, want_slots)  # a repeated interest: the first query keeps the item
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-4)
        assert not set(exclude) & set(rows.tolist())


def test_an_interest_query_scans_only_its_interests_items_and_u_the_catalogue():
    items, codes = _catalogue()
    partitions = _partitions(items)
    queries = _queries(np.array([[-1, -1], [1, 0], [2, 1]]), [0.0, 0.0, 0.0])
    starts, stops = partitions.query_spans(queries)
    assert (starts[0], stops[0]) == (0, len(items))
    members = partitions.rows[starts[1]:stops[1]]
    assert sorted(members.tolist()) == np.flatnonzero((codes[:, 0] == 1) & (codes[:, 1] == 0)).tolist()
    assert stops[2] == starts[2]  # interest (2, 1) has no item: nothing to scan


def test_without_u_only_the_interests_items_are_returned_even_when_fewer_than_n():
    items, codes = _catalogue(n_items=40)
    queries = _queries(np.array([[0, 1], [2, 1]]), [0.0, 0.0])  # the second interest has no item
    members = np.flatnonzero((codes[:, 0] == 0) & (codes[:, 1] == 1))
    rows, slots, scores = _partitions(items).retrieve(queries, len(members) + 5)
    assert sorted(rows.tolist()) == members.tolist() and (slots == 0).all()
    assert (np.diff(scores) <= 0).all()  # best first


@pytest.mark.parametrize("u_first", [True, False])
def test_an_item_scored_the_same_by_u_and_its_interest_goes_to_the_lower_query(u_first):
    """Ties between queries follow the merge's rule whatever the slot order: the lower slot keeps the item."""
    items, codes = _catalogue()
    queries = _queries(np.array([[-1, -1], [1, 0], [0, 1]]), [0.0, 0.0, 0.0])
    queries[1, :DIM] = queries[0, :DIM]  # interest (1, 0) scores its items exactly as u does
    if not u_first:
        queries = queries[[1, 0, 2]]
    rows, slots, scores = _partitions(items).retrieve(queries, len(items))
    want = _whole_index(items, queries, len(items))
    np.testing.assert_array_equal(rows, want[0])
    np.testing.assert_array_equal(slots, want[1])
    tied = (codes[rows, 0] == 1) & (codes[rows, 1] == 0)
    assert tied.any() and (slots[tied] == 0).all()  # u first: u keeps them; else the interest, now slot 0


def test_a_deferred_normaliser_gives_the_models_log_softmax_plus_bias():
    """The model scores q . v + b - logsumexp over the partition of q . v (the bias left out of the sum)."""
    items, codes = _catalogue()
    bias = np.array([0.25, -0.75], np.float32)
    queries = _queries(np.array([[-1, -1], [1, 1]]), bias)
    members = [np.arange(len(items)), np.flatnonzero((codes[:, 0] == 1) & (codes[:, 1] == 1))]
    normalised = queries.copy()
    for k in range(2):
        raw = items[members[k]] @ queries[k] - bias[k]  # q . v (the popularity column has 0 weight here)
        normalised[k, DIM] -= float(raw.max() + np.log(np.exp(raw - raw.max()).sum()))
    partitions = _partitions(items)
    found = {}
    for normalise in ([True, True], [False, True]):  # only the queries named are normalised
        got = found[normalise[0]] = partitions.retrieve(queries, 30, normalise=np.array(normalise))
        expected = partitions.retrieve(np.where(np.array(normalise)[:, None], normalised, queries), 30)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])
        np.testing.assert_allclose(got[2], expected[2], rtol=1e-5, atol=1e-5)
    assert not np.allclose(found[True][2], found[False][2])  # u's normaliser moved its scores


def test_a_querys_span_is_remembered_by_its_masking_values_and_forgotten_past_the_memos_size(monkeypatch):
    """A model's queries have few distinct masking rows: a request whose rows were all seen before is served from
    the memo, without computing a span; past SPAN_MEMO_SIZE rows the memo starts again, with the same spans."""
    from recbole_gemirec.serving import partitions as module

    items, _ = _catalogue()
    partitions = _partitions(items)
    queries = _queries(np.array([[-1, -1], [1, 0], [2, 1], [0, 1]]), [0.0, -0.5, -1.0, -2.0])
    want = partitions.query_spans(queries)
    first = partitions.retrieve(queries, 30)
    assert len(partitions._span_memo) == 4

    def computed(queries):
        raise AssertionError("a remembered span was computed again")

    with monkeypatch.context() as patch:
        patch.setattr(partitions, "query_spans", computed)
        again = _queries(np.array([[1, 0], [-1, -1]]), [0.0, 0.0], seed=7)  # other vectors, the same masking rows
        np.testing.assert_array_equal(np.stack(partitions._spans(again)), np.stack(want)[:, [1, 0]])
        for got, expected in zip(partitions.retrieve(queries, 30), first):
            np.testing.assert_array_equal(got, expected)
    monkeypatch.setattr(module, "SPAN_MEMO_SIZE", 5)
    fresh = _queries(np.array([[0, 0], [1, 1], [-1, -1]]), [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.stack(partitions._spans(fresh)), np.stack(partitions.query_spans(fresh)))
    assert [len(span) for span in partitions._spans(fresh[:0])] == [0, 0]  # no query: no span
    assert len(partitions._span_memo) == 2  # 4 + 2 new rows > 5: started again with this request's new ones


@pytest.mark.parametrize("change,message", [
    (lambda items: items.__setitem__((0, FIRST), 0.5), "not a one-hot code"),
    (lambda items: items.__setitem__((3, slice(FIRST + 3, FIRST + 5)), 1.0), "not a one-hot code"),  # two codes
    (lambda items: items.__setitem__((5, DIM), 2.0), "not the column of ones"),
])
def test_an_item_table_whose_columns_do_not_fit_the_partitions_is_refused(change, message):
    items, _ = _catalogue(n_items=20)
    change(items)
    with pytest.raises(DataError, match=message) as err:
        InterestPartitions(items, COLUMNS, SIZES, bias_column=DIM, source="export/item_vectors.npy")
    assert "export/item_vectors.npy" in str(err.value)


@pytest.mark.parametrize("columns,sizes", [([FIRST, FIRST + 4], SIZES), ([FIRST, 99], [90]), ([4, 2], [2])])
def test_masking_columns_outside_the_table_are_refused(columns, sizes):
    items, _ = _catalogue(n_items=20)
    with pytest.raises(DataError, match="do not fit"):
        InterestPartitions(items, columns, sizes)


def test_a_repeated_query_is_left_out_and_the_lists_stay_the_same():
    """GemiRec's cache fills the slots a user's interests cannot fill with their first interest: such a repeat
    scores every item as the earlier row does and loses every tie to it, so serving leaves it out (fewer scans)
    and returns the same items, slots and scores, over partitions and over the whole index."""
    from recbole_gemirec.serving.recommender import _with_slots_of, distinct_queries

    items, _ = _catalogue()
    queries = _queries(np.array([[-1, -1], [1, 0], [1, 0], [0, 1], [1, 0]]), [0.0, 2.0, 2.0, -1.0, 2.0])
    queries[2] = queries[1]
    queries[4] = queries[1]  # slots 2 and 4 repeat slot 1 exactly
    keep = distinct_queries(queries)
    assert keep.tolist() == [0, 1, 3]
    normalise = np.array([True, True, False, True, True])  # the same row with another flag is not a repeat
    assert distinct_queries(queries, normalise).tolist() == [0, 1, 2, 3]
    # with interest ids, a row of an interest already served is a repeat even where rounding changed its bytes;
    # u (id -1) and a different interest are not
    rounded = queries.copy()
    rounded[4, 0] = np.nextafter(rounded[4, 0], np.float32(np.inf))
    assert distinct_queries(rounded).tolist() == [0, 1, 3, 4]
    assert distinct_queries(rounded, slot_ids=np.array([-1, 7, 7, 3, 7])).tolist() == [0, 1, 3]
    assert distinct_queries(rounded, slot_ids=np.array([-1, 7, 7, 3, 5])).tolist() == [0, 1, 3, 4]
    partitions = _partitions(items)
    for found, want in [
        (_with_slots_of(keep, partitions.retrieve(queries[keep], 40)), partitions.retrieve(queries, 40)),
        (_with_slots_of(keep, _whole_index(items, queries[keep], 40)), _whole_index(items, queries, 40)),
    ]:
        for got, expected in zip(found, want):
            np.testing.assert_array_equal(got, expected)
    assert 1 in partitions.retrieve(queries, 40)[1]  # the repeated interest does retrieve items, as slot 1
