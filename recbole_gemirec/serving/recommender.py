"""Load a serving export and recommend from it, without the model and without pickle.

:class:`Recommender` reads an export directory written by
:func:`recbole_gemirec.serving.export.export_model`. Every file is checked before use: ``meta.json``
and ``tokens.json`` must be valid JSON of the expected structure; each ``.npy`` is read with
``np.load(allow_pickle=False)`` (an object array is refused) and must have the dtype and shape the
metadata records and that agree with each other; every file must still have the SHA-256 recorded at
export time; the faiss index must be of the recorded type and size. Anything else raises
:class:`~recbole_gemirec.errors.DataError` naming the file and what was expected.

Retrieval (docs/design.md §2.4): each of the user's K queries searches the index for its top-n items; the K
lists are merged by score (an item found by several interests keeps its best score) and de-duplicated;
each item remembers which interest found it with that score (its slot 0..K-1 and, for GemiRec, the
interest's code tuple). With the exact index the result is the top-n of ``full_sort_predict``.
"""

import json
import os
from dataclasses import asdict, dataclass
from typing import List, Optional

import numpy as np

from recbole_gemirec.errors import ConfigError, DataError
from recbole_gemirec.serving.export import FORMAT, INDEX_FILE, META_FILE, TOKENS_FILE, sha256_of
from recbole_gemirec.serving.index import SEARCH_PARAMS, configure, index_kind, resolve_params, search
from recbole_gemirec.serving.live import (
    FEATURES_FILE, INTEREST_MODES, LOG_PROBS_FILE, QUERY_MODEL_FILE, WEIGHTS_FILE, cached_interests, interest_slots,
)
from recbole_gemirec.serving.partitions import InterestPartitions, row_keys

REQUIRED_META = {
    "format": str, "model": str, "dataset": str, "kind": str, "n_users": int, "n_items": int,
    "interests": int, "dim": int, "index": dict, "files": dict,
}
KINDS = ("gemirec", "multi_interest", "single_vector")


class UnknownTokenError(DataError):
    """A user or item token that the export does not contain."""


@dataclass
class Recommendation:
    """The top-n items of one user, best first.

    ``interest_slots[i]`` is which of the user's K queries retrieved ``items[i]`` (with its best score);
    ``interest_codes[i]`` is that interest's code tuple (GemiRec), ``None`` for other models.
    """

    user: Optional[str]
    items: List[str]
    scores: List[float]
    interest_slots: List[int]
    interest_codes: Optional[List[List[int]]]
    # where the queries came from: "stored" (the export's), "cache" (the history now, the stored
    # interest cache) or "generator" (the history now, interests chosen now); "history" for models
    # without interests of a dictionary
    source: str = "stored"

    def as_dict(self):
        return asdict(self)


def _examples(tokens, limit=5):
    shown = ", ".join(repr(t) for t in tokens[:limit])
    return shown + (", ..." if len(tokens) > limit else "")


class Recommender:
    """A loaded export: ``Recommender.load(directory).recommend(user_tokens, n)``."""

    def __init__(self, directory, meta, tokens, arrays, index, live=None, compile_live=True):
        self.directory = directory
        self.meta = meta
        self.user_tokens = tokens["users"]
        self.item_tokens = tokens["items"]
        self._user_row = {t: i for i, t in enumerate(self.user_tokens)}
        self._item_row = {t: i for i, t in enumerate(self.item_tokens)}
        self.queries = arrays["queries"]
        self.item_vectors = arrays["item_vectors"]
        self.interest_ids = arrays.get("interest_ids")
        self.interest_codes = arrays.get("interest_codes")
        self.interest_log_probs = arrays.get("interest_log_probs")
        self.user_features = arrays.get("user_features")
        # the slots of the stored interest rows that hold a user's cache: a request reads a view of its row
        self._interest_slots = None if self.interest_log_probs is None else interest_slots(self.interest_ids)
        self.index = index
        self.query_bias = bool(meta.get("query_bias", False))  # the queries' last column: a bias, not indexed
        self.index_type = meta["index"]["type"]
        self.index_params = dict(meta["index"]["params"])
        self._live = live  # the query side; loaded from the directory on first use when None
        self.compile_live = bool(compile_live)  # whether that query side compiles its functions (load's)
        # an exact index of a model that declares interest partitions (GemiRec under interest_masking): each
        # query scores only its own interest's items (serving/partitions.py), the same lists as the index
        partitions = meta.get("interest_partitions")
        self.partitions = None if not partitions else InterestPartitions(
            self.item_vectors, partitions["columns"], partitions["level_sizes"], partitions["bias_column"],
            os.path.join(directory or "", "item_vectors.npy"))
        if self.partitions is not None:
            self.index = None  # the partitions hold what the exact index would scan: not kept twice in memory

    # --- loading ------------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory, verify_checksums=True, compile_live=True, **search_params):
        """Load and check an export directory.

        Args:
            directory: what ``export`` wrote.
            verify_checksums: compare every file with the SHA-256 recorded at export time.
            compile_live: compile the query side of :meth:`recommend_history` on its first request (a serving
                process); ``False`` runs the eager model (a process that serves one request, as the command
                line does: compiling costs about a second). Either gives the same results.
            **search_params: ``nprobe`` (IVF) or ``ef_search`` (HNSW) to use instead of the exported ones.

        Raises:
            DataError: missing directory or file, bad JSON, wrong shapes or dtypes, object arrays,
                changed files, an index that does not match.
            ConfigError: a search parameter that the index type does not take.
        """
        import faiss

        directory = str(directory)
        if not os.path.isdir(directory):
            raise DataError(f"serving export directory not found: {directory}")
        meta = _read_json(directory, META_FILE, missing_hint=(
            "it is not a complete serving export; create one with "
            "'python -m recbole_gemirec.serving export --checkpoint PATH --out DIR'"))
        _check_meta(directory, meta)
        files = meta["files"]
        tokens = _read_json(directory, TOKENS_FILE)
        _check_tokens(directory, tokens, meta)
        arrays = {name[:-4]: _load_array(directory, name, info) for name, info in files.items() if name.endswith(".npy")}
        _check_arrays(directory, arrays, meta)
        index_path = os.path.join(directory, INDEX_FILE)
        if not os.path.isfile(index_path):
            raise DataError(f"{index_path} is missing: the export is incomplete")
        try:
            index = faiss.read_index(index_path)
        except RuntimeError as err:
            raise DataError(f"{index_path} is not a readable faiss index: {str(err).splitlines()[-1][:200]}") from None
        _check_index(index_path, index, meta)
        if verify_checksums:  # last, so that the checks above can name what exactly is wrong
            for name, info in files.items():
                path = os.path.join(directory, name)
                if not os.path.isfile(path):
                    raise DataError(f"{path} is missing: the export is incomplete")
                if sha256_of(path) != info.get("sha256"):
                    raise DataError(f"{path} was changed after the export (its SHA-256 does not match meta.json); "
                                    "export the model again")
        recommender = cls(directory, meta, tokens, arrays, index, compile_live=compile_live)
        recommender.set_search_params(**search_params)
        return recommender

    def set_search_params(self, **params):
        """Change ``nprobe`` (IVF) or ``ef_search`` (HNSW) of the loaded index."""
        params = {k: v for k, v in params.items() if v is not None}
        if not params:
            return
        allowed = SEARCH_PARAMS[self.index_type]
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            raise ConfigError(
                f"{', '.join(unknown)} does not apply to a {self.index_type!r} index; "
                f"its search parameters: {', '.join(allowed) or 'none'}"
            )
        merged = dict(self.index_params)
        merged.update(params)
        merged = resolve_params(self.index_type, merged, self.meta["n_items"])
        configure(self.index, self.index_type, merged)
        self.index_params = merged

    # --- lookups ------------------------------------------------------------------------------------
    @property
    def interests_per_user(self):
        return self.meta["interests"]

    def user_row(self, token):
        """Row of a user token; :class:`UnknownTokenError` if the export has no such user."""
        row = self._user_row.get(str(token))
        if row is None:
            raise UnknownTokenError(
                f"user token {str(token)!r} is not in this export ({len(self.user_tokens)} users, e.g. "
                f"{_examples(self.user_tokens)}); user tokens are the {self.meta.get('user_field', 'user')} "
                "values of the dataset, and only users with a history are exported"
            )
        return row

    def item_row(self, token):
        """Index row of an item token; :class:`UnknownTokenError` if the catalogue has no such item."""
        row = self._item_row.get(str(token))
        if row is None:
            raise UnknownTokenError(
                f"item token {str(token)!r} is not in this export's catalogue ({len(self.item_tokens)} items, "
                f"e.g. {_examples(self.item_tokens)})"
            )
        return row

    def user_interests(self, user):
        """The user's K interests: ``[{'slot', 'interest_id', 'code'}]`` (ids and codes ``None`` unless GemiRec)."""
        row = self.user_row(user)
        result = []
        for slot in range(self.interests_per_user):
            entry = {"slot": slot, "interest_id": None, "code": None}
            if self.interest_ids is not None:
                entry["interest_id"] = int(self.interest_ids[row, slot])
                entry["code"] = [int(c) for c in self.interest_codes[row, slot]]
            result.append(entry)
        return result

    # --- retrieval ----------------------------------------------------------------------------------
    def recommend(self, users, n=20, exclude=None):
        """Top-``n`` items for one user token (returns a :class:`Recommendation`) or a list of tokens
        (returns a list), merged across the user's K interests.

        Args:
            users: a user token or a list of user tokens (tokens are strings, as in the dataset files).
            n: how many items per user (at most the catalogue size).
            exclude: item tokens never to recommend (for instance items the user has just seen).
        """
        single = isinstance(users, (str, int, np.integer))
        tokens = [str(users)] if single else [str(u) for u in users]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n={n!r}: the number of items to recommend must be a positive integer")
        rows = np.array([self.user_row(t) for t in tokens], dtype=np.int64)
        excluded = np.array(sorted({self.item_row(t) for t in (exclude or [])}), dtype=np.int64)
        merged = self._retrieve(self.queries[rows], n, excluded)
        results = [self._pack(token, *found, self._codes_of_row(row)) for token, row, found in zip(tokens, rows, merged)]
        return results[0] if single else results

    def _retrieve(self, queries, n, excluded, normalise=None, slot_ids=None):
        """``[(item rows, interest slots, scores)]`` of each user's queries ``[B, K, D]``: every query's
        top ``n + len(excluded)`` from the index (or from its interest's partition), merged
        (:func:`merge_interest_lists`). ``normalise [K]``: which queries lack their log-softmax normaliser
        (live queries of a partitioned export); only a partitioned export takes it. ``slot_ids [B, K]``: the
        queries' interest ids, where a repeated interest is a repeated query (:func:`distinct_queries`)."""
        batch = queries.shape[0]
        n = int(min(n, self.meta["n_items"] - len(excluded)))
        if batch == 0 or n <= 0:
            empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))
            return [empty] * batch
        kept = [distinct_queries(queries[b], normalise, None if slot_ids is None else slot_ids[b]) for b in range(batch)]
        if self.partitions is not None:
            return [_with_slots_of(keep, self.partitions.retrieve(
                queries[b, keep], n, None if normalise is None else normalise[keep], excluded))
                for b, keep in enumerate(kept)]
        scores, found = search(self.index, np.concatenate([queries[b, keep] for b, keep in enumerate(kept)]),
                               n + len(excluded), self.query_bias)
        ends = np.cumsum([len(keep) for keep in kept])
        return [_with_slots_of(keep, merge_interest_lists(scores[end - len(keep):end], found[end - len(keep):end],
                                                          n, excluded))
                for keep, end in zip(kept, ends)]

    # --- serving from a history ---------------------------------------------------------------------
    @property
    def live(self):
        """The export's query side (:class:`~recbole_gemirec.serving.live.LiveModel`), loaded on first use."""
        if self._live is None:
            from recbole_gemirec.serving.live import LiveModel

            if not self.meta.get("live"):
                raise ConfigError(
                    f"the export in {self.directory} has no query side ({self.meta['model']}): it serves the "
                    "users it stored only; serving from a history needs GemiRec or one of the extension's "
                    "baselines, exported by this version"
                )
            self._live = LiveModel.load(self.directory, self.meta, compile=self.compile_live)
        return self._live

    def recommend_history(self, history, n=20, user=None, interests="cache", exclude=None, exclude_history=False):
        """Top-``n`` items for a history given now, as a :class:`Recommendation`.

        The queries are computed from ``history`` at request time by the exported query side of the model
        (no RecBole configuration, dataset or data loader; :mod:`recbole_gemirec.serving.live`), so a user
        whose history changed since the export, or a user it never saw, is served.

        Args:
            history: item tokens the user interacted with, oldest first (the last ``max_history`` are read).
            n: how many items.
            user: a user token of the export, or ``None`` for a new user. A known user brings their
                stored user features and interest cache; a new user has unknown features (RecBole's
                padding value).
            interests: GemiRec only. ``cache``: the user's stored interest cache with a fresh user vector
                from ``history`` (a new user has none: the generator chooses, and ``source`` says so);
                ``generator``: the generator chooses the K interests from ``history`` now.
            exclude: item tokens never to recommend.
            exclude_history: also never recommend the items of ``history``.
        """
        if interests not in INTEREST_MODES:
            raise ConfigError(f"interests={interests!r} is unknown; allowed: {', '.join(INTEREST_MODES)}")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ConfigError(f"n={n!r}: the number of items to recommend must be a positive integer")
        if isinstance(history, (str, bytes)) or not hasattr(history, "__iter__"):
            raise ConfigError(f"history={history!r}: expected a list of item tokens, oldest first")
        tokens = [str(t) for t in history]
        if not tokens:
            raise ConfigError("history is empty: serving from a history needs at least one item token")
        item_rows = np.array([self.item_row(t) for t in tokens], dtype=np.int64)
        row = None if user is None else self.user_row(user)
        live = self.live
        features = None if row is None or self.user_features is None else self.user_features[row]
        cached, source, codes = None, "history", None
        if live.has_interest_ids:
            source = "generator"
            if interests == "cache" and row is not None and self.interest_ids is not None:
                cached, source = self._stored_cache(row), "cache"
        queries, slot_ids = live.queries(item_rows + 1, features, cached)
        normalise = live.normalise_mask(slot_ids)  # a partitioned export's live queries lack their normalisers
        if slot_ids is not None:  # the stored cache's codes are the export's; the generator's are looked up
            codes = self.interest_codes[row] if source == "cache" else live.codes_of(slot_ids)
        excluded = {self.item_row(t) for t in (exclude or [])}
        if exclude_history:
            excluded |= set(item_rows.tolist())
        excluded = np.array(sorted(excluded), dtype=np.int64)
        found = self._retrieve(queries[None], n, excluded, normalise, None if slot_ids is None else slot_ids[None])[0]
        return self._pack(None if user is None else str(user), *found, codes, source)

    def _stored_cache(self, row):
        """``(interest ids, log-probabilities)`` of an exported user's interest cache, u left out: ``[1, K]`` views of
        the stored rows in the export's layout (:func:`~recbole_gemirec.serving.live.interest_slots`), else the
        row's own ``[K]``."""
        slots = self._interest_slots
        if slots is None:
            return cached_interests(self.interest_ids[row], self.interest_log_probs[row])
        return self.interest_ids[row:row + 1, slots], self.interest_log_probs[row:row + 1, slots]

    def score(self, user, items):
        """Exact scores of given item tokens for a user: ``[(item, score, slot, code)]`` in the given order."""
        row = self.user_row(user)
        item_rows = np.array([self.item_row(t) for t in items], dtype=np.int64)
        per_interest = self.queries[row] @ self.item_vectors[item_rows].T  # [K, M]
        slots = per_interest.argmax(axis=0)
        best = per_interest.max(axis=0)
        codes = self._codes_of_row(row)
        return [
            (str(t), float(s), int(k), None if codes is None else [int(c) for c in codes[k]])
            for t, s, k in zip(items, best, slots)
        ]

    def _codes_of_row(self, row):
        """The stored code tuples of an exported user's queries ``[K, C]``, or ``None``."""
        return None if self.interest_codes is None else self.interest_codes[row]

    def _pack(self, token, items, slots, scores, codes, source="stored"):
        """A :class:`Recommendation`; ``codes [K, C]`` are the code tuples of the queries (or ``None``)."""
        return Recommendation(
            user=token,
            items=[self.item_tokens[i] for i in items.tolist()],
            scores=np.asarray(scores, dtype=np.float64).tolist(),
            interest_slots=slots.tolist(),
            interest_codes=None if codes is None else np.asarray(codes)[slots].tolist(),
            source=source,
        )


def distinct_queries(queries, normalise=None, slot_ids=None):
    """The rows of one user's queries ``[K, D]`` that repeat no earlier row (with the same ``normalise`` flag), in
    order. A repeat (GemiRec's cache fills the slots a user's interests cannot fill with their first interest)
    scores every item as the earlier row does and loses every tie to it, as the merge keeps the first query, so
    leaving it out changes no list, only the work. Rows are compared by their bytes (a row that differs only as
    -0.0 from 0.0 is kept, which costs a scan and changes nothing); with ``slot_ids [K]`` (live queries of a
    model with interest ids) a row of an interest already served is a repeat whatever its bytes: the model computes
    it from the same inputs, but a matrix product may round one row of a batch differently from another, and a
    repeat that won a tie by one unit in the last place would take the item from the earlier slot."""
    keys = row_keys(queries)
    if slot_ids is not None:
        keys = [key if slot < 0 else slot for key, slot in zip(keys, np.asarray(slot_ids).tolist())]
    if normalise is not None:
        keys = list(zip(keys, np.asarray(normalise, dtype=bool).tolist()))
    first = {}
    for slot, key in enumerate(keys):
        first.setdefault(key, slot)
    return np.fromiter(first.values(), dtype=np.int64, count=len(first))  # in insertion order: ascending


def _with_slots_of(kept, found):
    """``(item rows, slots, scores)`` of a retrieval over the queries ``kept``, its slots as the user's own."""
    rows, slots, scores = found
    return rows, kept[slots], scores


def merge_interest_lists(scores, rows, n, excluded=None):
    """Merge K ranked lists (``scores``/``rows`` ``[K, m]``, row ``-1`` = nothing found) into one top-n.

    An item found by several interests keeps its best score and the interest that gave it. Ties in
    score are broken by the lower item row, so the order is deterministic.

    Returns:
        ``(item rows [<=n], interest slots [<=n], scores [<=n])``.
    """
    k, m = rows.shape
    flat_rows = rows.reshape(-1)
    flat_scores = scores.reshape(-1)
    flat_slots = np.repeat(np.arange(k), m)
    keep = flat_rows >= 0
    if excluded is not None and len(excluded):
        keep &= ~np.isin(flat_rows, excluded)
    flat_rows, flat_scores, flat_slots = flat_rows[keep], flat_scores[keep], flat_slots[keep]
    order = np.lexsort((flat_slots, flat_rows, -flat_scores))  # best score first, then item row, then slot
    flat_rows, flat_scores, flat_slots = flat_rows[order], flat_scores[order], flat_slots[order]
    _, first = np.unique(flat_rows, return_index=True)  # first occurrence = the item's best score
    first = np.sort(first)[:n]
    return flat_rows[first], flat_slots[first], flat_scores[first]


# --- checks --------------------------------------------------------------------------------------------
def _read_json(directory, name, missing_hint="the export is incomplete"):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing: {missing_hint}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not valid JSON ({err}); the export is damaged, export the model again") from None


def _check_meta(directory, meta):
    path = os.path.join(directory, META_FILE)
    if not isinstance(meta, dict):
        raise DataError(f"{path} must hold a JSON object, found {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise DataError(f"{path} has format {meta.get('format')!r}; this version reads {FORMAT!r}")
    for key, kind in REQUIRED_META.items():
        value = meta.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise DataError(f"{path}: '{key}' must be a {kind.__name__}, found {value!r}")
    if meta["kind"] not in KINDS:
        raise DataError(f"{path}: kind {meta['kind']!r} is unknown; allowed: {', '.join(KINDS)}")
    index = meta["index"]
    if not isinstance(index.get("type"), str) or index["type"] not in SEARCH_PARAMS \
            or not isinstance(index.get("params"), dict):
        raise DataError(f"{path}: index must name a type among {', '.join(SEARCH_PARAMS)} and its params")
    try:
        resolve_params(index["type"], index["params"], max(1, meta["n_items"]))
    except ConfigError as err:
        raise DataError(f"{path}: {err}") from None
    needed = {"queries.npy", "item_vectors.npy", INDEX_FILE, TOKENS_FILE}
    if meta["kind"] == "gemirec":
        needed |= {"interest_ids.npy", "interest_codes.npy"}
    for flag in ("live", "query_bias"):
        if meta.get(flag) is not None and not isinstance(meta[flag], bool):
            raise DataError(f"{path}: '{flag}' must be true or false, found {meta[flag]!r}")
    _check_partitions(path, meta)
    if meta.get("live"):
        needed |= {QUERY_MODEL_FILE, WEIGHTS_FILE} | ({LOG_PROBS_FILE} if meta["kind"] == "gemirec" else set())
    files = meta["files"]
    missing = sorted(needed - set(files))
    if missing:
        raise DataError(f"{path}: 'files' does not list {', '.join(missing)}")
    for name, info in files.items():
        if not isinstance(info, dict) or os.path.basename(name) != name:
            raise DataError(f"{path}: bad entry for file {name!r}")


def _check_partitions(path, meta):
    """``interest_partitions``: absent or null, or (an exact index only) the masking columns, their level sizes
    and which live queries are normalised at retrieval; how they fit the item table is checked on loading it."""
    partitions = meta.get("interest_partitions")
    if partitions is None:
        return
    normalise = partitions.get("normalise") if isinstance(partitions, dict) else None
    columns, sizes = (partitions.get(key) for key in ("columns", "level_sizes")) if normalise is not None else (0, 0)
    ints = lambda values: isinstance(values, list) and values and all(  # noqa: E731
        isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values)
    bias = partitions.get("bias_column") if isinstance(partitions, dict) else None
    if not (isinstance(normalise, dict) and ints(columns) and len(columns) == 2 and ints(sizes)
            and (bias is None or ints([bias]))
            and all(isinstance(normalise.get(key), bool) for key in ("user", "interests"))):
        raise DataError(f"{path}: 'interest_partitions' must be null or hold 'columns' [first, stop], "
                        "'level_sizes', 'bias_column' (a column or null) and 'normalise' "
                        "{'user': bool, 'interests': bool}")
    if meta["index"]["type"] != "flat":
        raise DataError(f"{path}: 'interest_partitions' needs the exact index (type flat), found "
                        f"{meta['index']['type']!r}")


def _load_array(directory, name, info):
    path = os.path.join(directory, name)
    if not os.path.isfile(path):
        raise DataError(f"{path} is missing: the export is incomplete")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as err:
        raise DataError(f"{path} cannot be loaded without pickle ({err}); only numeric arrays are accepted") from None
    except (OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable .npy file ({err})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        raise DataError(f"{path} holds {getattr(array, 'dtype', type(array).__name__)} data; only numeric arrays are accepted")
    if str(array.dtype) != info.get("dtype") or list(array.shape) != info.get("shape"):
        raise DataError(
            f"{path} is {array.dtype} {list(array.shape)}, but meta.json records "
            f"{info.get('dtype')} {info.get('shape')}"
        )
    return array


def _expect(path, array, dtype, shape):
    if array.dtype != np.dtype(dtype) or tuple(array.shape) != tuple(shape):
        raise DataError(f"{path} is {array.dtype} {list(array.shape)}; expected {dtype} {list(shape)}")


def _check_arrays(directory, arrays, meta):
    users, k, dim, n_items = meta["n_users"], meta["interests"], meta["dim"], meta["n_items"]
    _expect(os.path.join(directory, "queries.npy"), arrays["queries"], "float32", (users, k, dim))
    _expect(os.path.join(directory, "item_vectors.npy"), arrays["item_vectors"], "float32", (n_items, dim))
    if meta["kind"] == "gemirec":
        levels = meta.get("code_levels")
        sizes = meta.get("dictionary_sizes")
        if not isinstance(levels, int) or not isinstance(sizes, list) or len(sizes) != levels:
            raise DataError(f"{os.path.join(directory, META_FILE)}: code_levels and dictionary_sizes disagree")
        _expect(os.path.join(directory, "interest_ids.npy"), arrays["interest_ids"], "int64", (users, k))
        codes = arrays["interest_codes"]
        _expect(os.path.join(directory, "interest_codes.npy"), codes, "int64", (users, k, levels))
        user_slot = arrays["interest_ids"] < 0  # the query u itself (user_query): no interest, codes all -1
        bad = (codes < 0) & ~user_slot[..., None] | (codes >= np.asarray(sizes)) | (user_slot[..., None] & (codes != -1))
        if codes.size and bad.any():
            raise DataError(f"{os.path.join(directory, 'interest_codes.npy')} holds codes outside the dictionary sizes {sizes}")
    if "interest_log_probs" in arrays:
        _expect(os.path.join(directory, LOG_PROBS_FILE), arrays["interest_log_probs"], "float32", (users, k))
    if "user_features" in arrays:
        features = arrays["user_features"]
        path = os.path.join(directory, FEATURES_FILE)
        if features.dtype != np.int64 or features.ndim != 2 or features.shape[0] != users or (features < 0).any():
            raise DataError(f"{path} is {features.dtype} {list(features.shape)}; expected int64 [{users}, F] "
                            "of feature ids >= 0")
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            raise DataError(f"{os.path.join(directory, name + '.npy')} holds NaN or infinite values")


def _check_tokens(directory, tokens, meta):
    path = os.path.join(directory, TOKENS_FILE)
    if not isinstance(tokens, dict):
        raise DataError(f"{path} must hold a JSON object with 'users' and 'items'")
    for key, count in (("users", meta["n_users"]), ("items", meta["n_items"])):
        values = tokens.get(key)
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise DataError(f"{path}: '{key}' must be a list of strings")
        if len(values) != count:
            raise DataError(f"{path}: {len(values)} {key}, but meta.json records {count}")
        if len(set(values)) != len(values):
            raise DataError(f"{path}: '{key}' has repeated tokens")


def _check_index(path, index, meta):
    import faiss

    kind = index_kind(index)
    if kind != meta["index"]["type"]:
        raise DataError(f"{path} is a {kind or type(index).__name__} index, but meta.json records {meta['index']['type']!r}")
    dim = meta["dim"] - int(bool(meta.get("query_bias")))  # the bias column is not indexed
    if index.ntotal != meta["n_items"] or index.d != dim:
        raise DataError(f"{path} holds {index.ntotal} vectors of size {index.d}; expected {meta['n_items']} of size {dim}")
    if index.metric_type != faiss.METRIC_INNER_PRODUCT:
        raise DataError(f"{path} does not score by inner product")
