"""The faiss item index that serving searches: exact inner product, IVF or HNSW.

Every index scores by inner product (``u_k . v_i``), the score GemiRec and the other multi-interest
models rank by, so an exact index reproduces ``full_sort_predict`` and the approximate ones trade recall
for speed:

* ``flat`` - ``faiss.IndexFlatIP``, exact (the default);
* ``ivf``  - ``faiss.IndexIVFFlat`` over an inner-product coarse quantiser: ``nlist`` k-means cells,
  ``nprobe`` of them searched per query;
* ``hnsw`` - ``faiss.IndexHNSWFlat`` with ``METRIC_INNER_PRODUCT``: graph degree ``M``,
  ``ef_construction`` while building and ``ef_search`` while searching.

Both approximate indexes store the full vectors, so the scores they return are exact; only which items
are found can differ from the exact index. The search-time parameters (``nprobe``, ``ef_search``) can be
changed after loading (:func:`configure`).
"""

import math

import numpy as np

from recbole_gemirec.errors import ConfigError

INDEX_TYPES = ("flat", "ivf", "hnsw")
#: faiss's index parameters are C ints.
FAISS_INT_MAX = 2 ** 31 - 1

# Parameters each index type takes, with the value used when none is given (None: derived from the data).
DEFAULT_PARAMS = {
    "flat": {},
    "ivf": {"nlist": None, "nprobe": None},
    "hnsw": {"M": 32, "ef_construction": 200, "ef_search": 128},
}
# Parameters that may change after the index is built (the rest are fixed at build time).
SEARCH_PARAMS = {"flat": (), "ivf": ("nprobe",), "hnsw": ("ef_search",)}


def resolve_params(index_type, params, n_items):
    """Check ``index_type`` and its ``params`` and fill in the defaults for a catalogue of ``n_items``.

    IVF defaults: ``nlist = 4 sqrt(N)`` (at most N), ``nprobe = nlist / 4`` (at least 1), a setting
    that keeps recall high on embedding catalogues; smaller ``nprobe`` is faster and less exact.

    Raises:
        ConfigError: unknown index type, unknown parameter, or a value that is not a positive integer.
    """
    if index_type not in INDEX_TYPES:
        raise ConfigError(f"index type {index_type!r} is unknown; allowed: {', '.join(INDEX_TYPES)}")
    given = {k: v for k, v in (params or {}).items() if v is not None}
    allowed = DEFAULT_PARAMS[index_type]
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise ConfigError(f"index type {index_type!r} takes no parameter {', '.join(unknown)}; its parameters: {names}")
    resolved = dict(allowed)
    for key, value in given.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
            raise ConfigError(f"index parameter {key}={value!r} must be a positive integer")
        if int(value) > FAISS_INT_MAX:  # faiss takes a C int: a larger one fails inside its constructor
            raise ConfigError(f"index parameter {key}={value!r} is too large; allowed: a positive integer up to "
                              f"{FAISS_INT_MAX:,}")
        resolved[key] = int(value)
    if index_type == "ivf":
        if resolved["nlist"] is None:
            resolved["nlist"] = max(1, min(n_items, int(round(4 * math.sqrt(max(n_items, 1))))))
        if resolved["nlist"] > n_items:
            raise ConfigError(f"index parameter nlist={resolved['nlist']} exceeds the {n_items} items to index")
        if resolved["nprobe"] is None:
            resolved["nprobe"] = max(1, resolved["nlist"] // 4)
        resolved["nprobe"] = min(resolved["nprobe"], resolved["nlist"])
    return resolved


def build_index(vectors, index_type="flat", params=None, seed=2020):
    """Build and fill an inner-product faiss index over ``vectors`` (``[N, D]``, row i = item i).

    Returns:
        ``(index, params)`` with the parameters actually used.
    """
    import faiss

    data = np.ascontiguousarray(vectors, dtype=np.float32)
    n_items, dim = data.shape
    params = resolve_params(index_type, params, n_items)
    if index_type == "flat":
        index = faiss.IndexFlatIP(dim)
    elif index_type == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, params["nlist"], faiss.METRIC_INNER_PRODUCT)
        index.cp.seed = int(seed)
        index.cp.min_points_per_centroid = 1  # small catalogues: no warning, every cell usable
        index.train(data)  # faiss's Python wrapper keeps the quantiser alive with the index
    else:
        index = faiss.IndexHNSWFlat(dim, params["M"], faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = params["ef_construction"]
    index.add(data)
    configure(index, index_type, params)
    return index, params


def configure(index, index_type, params):
    """Apply the search-time parameters (``nprobe`` / ``ef_search``) to a built or loaded index."""
    import faiss

    if index_type == "ivf":
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    elif index_type == "hnsw":
        index.hnsw.efSearch = int(params["ef_search"])
    return index


def index_kind(index):
    """The type name (``flat``, ``ivf``, ``hnsw``) of a faiss index object, ``None`` for any other."""
    import faiss

    if isinstance(index, faiss.IndexFlat):
        return "flat"
    if isinstance(index, faiss.IndexIVFFlat):
        return "ivf"
    if isinstance(index, faiss.IndexHNSWFlat):
        return "hnsw"
    return None


def has_bias_column(vectors):
    """Whether the item table's last column is all ones (GemiRec's ``interest_weighting``): a query's value
    there is then a bias added to every item's score, which leaves that query's ranking as it is, so the
    index holds the other columns only and :func:`search` adds the bias to the scores it returns (one
    column fewer to scan, and a width of 64 instead of 65, which faiss's kernels favour)."""
    vectors = np.asarray(vectors)
    return bool(vectors.ndim == 2 and vectors.shape[1] > 1 and len(vectors) and (vectors[:, -1] == 1.0).all())


def indexed_columns(vectors, query_bias):
    """The columns of the item table the index holds (all, or all but the bias column)."""
    return vectors[:, :-1] if query_bias else vectors


def search(index, queries, n, query_bias=False):
    """Top-``n`` rows of ``index`` for each query (``[Q, D]``): ``(scores [Q, n], rows [Q, n])``, row
    ``-1`` where the index found fewer than ``n`` items. With ``query_bias`` the queries' last column is
    each query's bias (:func:`has_bias_column`): the index is searched with the other columns and the
    bias is added to the returned scores, the same scores as an index holding the column of ones."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = int(min(n, index.ntotal))
    if n <= 0 or len(queries) == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    if query_bias:
        scores, rows = index.search(np.ascontiguousarray(queries[:, :-1]), n)
        scores = scores + queries[:, -1:]
    else:
        scores, rows = index.search(queries, n)
    return scores, rows.astype(np.int64)


def recall_at(approx_rows, exact_rows):
    """Mean share of each query's exact top-n rows that the approximate search also returned."""
    hits = [len(set(a[a >= 0].tolist()) & set(e[e >= 0].tolist())) / max(1, int((e >= 0).sum()))
            for a, e in zip(approx_rows, exact_rows)]
    return float(np.mean(hits)) if hits else 1.0
