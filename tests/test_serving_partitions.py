"""Retrieval over interest partitions returns what the catalogue-wide exact index returns, scanning less."""

import numpy as np
import pytest

from recbole_gemirec.errors import DataError
from recbole_gemirec.model.gemirec_queries import MASK_PENALTY
from recbole_gemirec.serving.index import build_index, search
from recbole_gemirec.serving.partitions import InterestPartitions

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


def test_each_query_finds_what_the_catalogue_wide_index_finds():
    items, _ = _catalogue()
    queries = _queries(np.array([[-1, -1], [0, 0], [1, 1], [2, 0]]), [0.0, -0.5, -1.0, -2.0])
    scores, rows = _partitions(items).search(queries, 20)
    want_scores, want_rows = search(build_index(items, "flat")[0], queries, 20)
    np.testing.assert_array_equal(rows, want_rows)
    np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-4)


def test_an_interest_query_scans_only_its_interests_items_and_u_the_catalogue():
    items, codes = _catalogue()
    partitions = _partitions(items)
    queries = _queries(np.array([[-1, -1], [1, 0], [2, 1]]), [0.0, 0.0, 0.0])
    starts, stops = partitions.query_spans(queries)
    assert (starts[0], stops[0]) == (0, len(items))
    members = partitions.rows[starts[1]:stops[1]]
    assert sorted(members.tolist()) == np.flatnonzero((codes[:, 0] == 1) & (codes[:, 1] == 0)).tolist()
    assert stops[2] == starts[2]  # interest (2, 1) has no item: nothing to scan
    scores, rows = partitions.search(queries, 10)
    assert (rows[2] == -1).all() and np.isneginf(scores[2]).all()


def test_a_partition_smaller_than_n_is_padded_and_never_filled_with_other_interests_items():
    items, codes = _catalogue(n_items=40)
    query = _queries(np.array([[0, 1]]), [0.0])
    members = np.flatnonzero((codes[:, 0] == 0) & (codes[:, 1] == 1))
    scores, rows = _partitions(items).search(query, len(members) + 5)
    assert sorted(rows[0, : len(members)].tolist()) == members.tolist()
    assert (rows[0, len(members):] == -1).all() and np.isneginf(scores[0, len(members):]).all()
    assert (np.diff(scores[0, : len(members)]) <= 0).all()  # best first


def test_a_deferred_normaliser_gives_the_models_log_softmax_plus_bias():
    """The model scores q . v + b - logsumexp over the partition of q . v (the bias left out of the sum)."""
    items, codes = _catalogue()
    slots = np.array([[-1, -1], [1, 1]])
    bias = np.array([0.25, -0.75], np.float32)
    queries = _queries(slots, bias)
    partitions = _partitions(items)
    scores, rows = partitions.search(queries, 7, normalise=np.array([True, True]))
    for k, members in enumerate([np.arange(len(items)), np.flatnonzero((codes[:, 0] == 1) & (codes[:, 1] == 1))]):
        raw = items[members] @ queries[k] - bias[k]  # q . v with the popularity column (0 weight here)
        top = float(raw.max())
        log_softmax = raw - (top + np.log(np.exp(raw - top).sum()))
        expected = dict(zip(members.tolist(), (log_softmax + bias[k]).tolist()))
        np.testing.assert_allclose(scores[k], [expected[r] for r in rows[k]], rtol=1e-5, atol=1e-5)
        assert sorted(expected, key=expected.get, reverse=True)[:7] == rows[k].tolist()
    plain, _ = partitions.search(queries, 7, normalise=np.array([False, True]))
    np.testing.assert_allclose(plain[1], scores[1])  # only the slots named are normalised
    assert not np.allclose(plain[0], scores[0])


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
