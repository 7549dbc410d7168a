"""Serving from a history: the query side of a model, rebuilt from an export (docs/design.md, serving).

An export (:mod:`recbole_gemirec.serving.export`) stores each user's queries as they were at export
time. To serve a user whose history has changed since, or a user the export has never seen, the
queries must be computed from the history at request time. The export therefore also writes the
model's *query side*: the parts its queries depend on (for GemiRec the item embeddings, user tower,
dictionary, generator and fusion; for the baselines the item table and the extractor), rebuilt here
with the model's own ``build_query_parts`` and ``queries_from_history``
(:class:`~recbole_gemirec.model.multi_interest.MultiInterestRecommender`), so a live query is the
model's query. No RecBole configuration, dataset or data loader is built at request time.

Files (next to the export's others, listed with their SHA-256 in ``meta.json``):

    query_model.json        {"model": class name, "architecture": what build_query_parts reads}
    query_model.npz         the query side's weights under the model's state-dict keys (numeric arrays only,
                            read with allow_pickle=False)
    interest_log_probs.npy  float32 [users, K]  GemiRec: log p of each exported user's cached interests
                            (aligned with interest_ids.npy; 0 for the query u)
    user_features.npy       int64 [users, F]    models with user features: each exported user's feature ids

The model class is looked up by name among the extension's own models only; a name that is not one of
them, an architecture whose parts do not have the stored weights' shapes, or a damaged file is refused
with :class:`~recbole_gemirec.errors.DataError` before anything is allocated at the stored sizes (the
parts are first built on torch's ``meta`` device, which holds no memory).
"""

import json
import os

import numpy as np

from recbole_gemirec.errors import DataError

QUERY_MODEL_FILE = "query_model.json"
WEIGHTS_FILE = "query_model.npz"
LOG_PROBS_FILE = "interest_log_probs.npy"
FEATURES_FILE = "user_features.npy"
INTEREST_MODES = ("cache", "generator")


# --- writing (export time, the trained model at hand) ----------------------------------------------------
def query_side(model):
    """``(spec, weights)`` of a model that can serve from a history, or ``None``.

    ``spec`` is the JSON of ``query_model.json``; ``weights`` the numpy arrays of the query side, under
    the model's state-dict keys (the keys a query-only instance has).
    """
    from recbole_gemirec.model.multi_interest import MultiInterestRecommender

    if not isinstance(model, MultiInterestRecommender):
        return None
    architecture = model.serving_architecture()
    if architecture is None:
        return None
    import torch

    with torch.device("meta"):
        keys = type(model).for_serving(architecture).state_dict().keys()
    state = model.state_dict()
    weights = {key: state[key].detach().cpu().numpy() for key in keys}
    spec = {"model": type(model).__name__, "architecture": architecture}
    json.dumps(spec)  # plain JSON values only (raises TypeError otherwise: a bug of the model's description)
    return spec, weights


def cached_interests(slot_ids, log_probs):
    """``(interest ids [K], log-probabilities [K])`` of a stored cache from the export's rows aligned with
    the queries (``interest_ids.npy``, ``interest_log_probs.npy``), the query u (id -1) left out."""
    keep = np.asarray(slot_ids) >= 0
    return np.asarray(slot_ids)[keep], np.asarray(log_probs, dtype=np.float32)[keep]


def interest_slots(slot_ids):
    """The slots of an export's interest rows ``[users, K']`` that hold the cached interests, as one ``slice``
    where every row holds u (id -1) in the same leading slots and interests after them (the layout an export
    writes: u first under ``user_query``), so that a user's cache is a view of the stored rows
    (``rows[row:row + 1, slots]``, what :meth:`LiveModel.queries` takes) instead of a per-request
    :func:`cached_interests`; ``None`` for any other layout."""
    ids = np.asarray(slot_ids)
    if ids.ndim != 2 or ids.shape[0] == 0:
        return None
    lead = int((ids[0] < 0).sum())
    if (ids[:, :lead] < 0).all() and (ids[:, lead:] >= 0).all():
        return slice(lead, None)
    return None


# --- loading (request time) ------------------------------------------------------------------------------
def _model_class(path, name):
    from recbole_gemirec.model.multi_interest import MultiInterestRecommender
    from recbole_gemirec.utils import extension_model

    cls = extension_model(name) if isinstance(name, str) else None
    if cls is None or not issubclass(cls, MultiInterestRecommender) or \
            cls.build_query_parts is MultiInterestRecommender.build_query_parts:
        raise DataError(f"{path}: model {name!r} is not one of this extension's models that serve from a history")
    return cls


def _build(path, cls, architecture, device=None):
    import torch

    try:
        with torch.device(device or "cpu"):
            return cls.for_serving(architecture)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"{path}: the architecture cannot be built ({type(err).__name__}: {err})") from None


def _read_weights(directory):
    path = os.path.join(directory, WEIGHTS_FILE)
    try:
        with np.load(path, allow_pickle=False) as archive:
            weights = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError) as err:
        raise DataError(f"{path} cannot be read as numeric arrays without pickle ({err})") from None
    for key, array in weights.items():
        if array.dtype.kind not in "fiub":
            raise DataError(f"{path}: {key!r} holds {array.dtype} data; only numeric arrays are accepted")
    return path, weights


def _check_sizes(path, architecture, n_weights, weights_path):
    """Refuse an architecture with a count or size (an integer, or an integer of a list) above the number of
    stored weights: every layer, head or row it counts holds at least one weight, so such a value cannot
    describe these weights, and building it (even on the meta device, part by part) would not finish."""
    for key, value in architecture.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, int) and not isinstance(item, bool) and item > n_weights:
                raise DataError(f"{path}: {key}={value!r} is larger than the {n_weights:,} weights "
                                f"{weights_path} holds; export the model again")


def _check_rules(path, model_class, architecture):
    """Refuse an architecture value that the model's own configuration rules (``CONFIG_RULES``, the checks a
    training run's configuration passes) do not allow, such as 0 heads or a negative K: a training run could
    never have written it, and some of them only fail inside torch at the first request."""
    rules = getattr(model_class, "CONFIG_RULES", {}) or {}
    for key, value in architecture.items():
        spec = rules.get(key)
        if spec is not None and value is not None and not spec.accepts(value):
            raise DataError(f"{path}: {key}={value!r} is not allowed (allowed: {spec}); export the model again")


class LiveModel:
    """The query side of an exported model: ``queries(item ids, features, cached)`` for one request."""

    def __init__(self, model, max_length, partitions=None, compile=True):
        """``partitions``: the interest partitions of a partitioned export (``meta.json``'s, as the model declares
        them): the model's normalisers are then deferred to the retrieval, and :attr:`normalise_slots` says
        ``(u, interests)``, whether each kind of query is normalised there; ``None`` otherwise. ``compile``: compile
        the query functions on the first request (:data:`RUNTIMES`), which pays from the first few requests of a
        serving process on; ``False`` runs the eager model, for a process that serves one request (the command
        line), where compiling would cost about a second (docs/serving.md) to save a millisecond."""
        self.normalise_slots = None
        if partitions:
            model.defer_normalisers()
            self.normalise_slots = (bool(partitions["normalise"]["user"]), bool(partitions["normalise"]["interests"]))
        model.freeze_for_serving()  # the weights are final from here on
        self.model = model
        self.max_length = max_length
        self.has_interest_ids = bool(model.has_interest_ids)
        self.unpadded_without_length = bool(model.UNPADDED_WITHOUT_LENGTH)
        cardinalities = (getattr(model, "architecture", None) or {}).get("feature_cardinalities") or []
        self._cardinalities = np.asarray(cardinalities, dtype=np.int64)
        self.uses_features = len(self._cardinalities) > 0
        self._unknown_features = np.zeros(len(self._cardinalities), dtype=np.int64)  # RecBole's padding value
        self._functions = {}  # what _compiled compiled, by its key
        self.compile = bool(compile)
        self.runtime = None  # what runs the last compiled query function: one of RUNTIMES' names, or "eager"

    @classmethod
    def load(cls, directory, meta, compile=True):
        """Read ``query_model.json`` and ``query_model.npz`` of an export (checked against ``meta``); ``compile`` as
        for the constructor."""
        import torch

        path = os.path.join(directory, QUERY_MODEL_FILE)
        try:
            with open(path, encoding="utf-8") as f:
                spec = json.load(f)
        except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise DataError(f"{path} is not a readable JSON file ({err}); export the model again") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("architecture"), dict):
            raise DataError(f"{path} must hold an object with 'model' and 'architecture'")
        architecture = spec["architecture"]
        model_class = _model_class(path, spec.get("model"))
        if spec["model"] != meta["model"]:
            raise DataError(f"{path} describes {spec['model']!r}, but meta.json records {meta['model']!r}")
        if architecture.get("n_items") != meta["n_items"] + 1:
            raise DataError(f"{path}: n_items={architecture.get('n_items')!r}; the export's catalogue has "
                            f"{meta['n_items']} items plus padding ({meta['n_items'] + 1})")
        weights_path, weights = _read_weights(directory)
        _check_sizes(path, architecture, sum(int(v.size) for v in weights.values()), weights_path)
        _check_rules(path, model_class, architecture)
        expected = {k: tuple(v.shape) for k, v in _build(path, model_class, architecture, "meta").state_dict().items()}
        got = {k: tuple(v.shape) for k, v in weights.items()}
        if got != expected:
            wrong = sorted(k for k in set(got) | set(expected) if got.get(k) != expected.get(k))
            raise DataError(f"{weights_path} does not hold the weights the architecture of {path} needs "
                            f"(differs at {', '.join(wrong[:5])}{', ...' if len(wrong) > 5 else ''})")
        model = _build(path, model_class, architecture)
        state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in weights.items()}
        model.load_state_dict(state, strict=True)
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise DataError(f"{weights_path}: {name!r} holds NaN or infinite values")
        return cls(model, int(architecture["max_seq_length"]), _checked_partitions(path, model, meta), compile)

    def queries(self, item_ids, features=None, cached=None):
        """The queries of one history.

        Args:
            item_ids: internal item ids (1..n), oldest first; the last ``max_length`` are read.
            features: user-feature ids ``[F]`` (``None``: unknown, RecBole's padding value 0).
            cached: ``(interest ids [K], log-probabilities [K])`` of a stored interest cache, or ``None``:
                the model chooses the interests from this history now (GemiRec's generator).

        Returns:
            ``(queries float32 [K', D], interest ids [K'] or None)``; :meth:`codes_of` gives the ids' codes.
        """
        ids = np.asarray(item_ids, dtype=np.int64)[-self.max_length:]
        rest = [self._features(features).reshape(1, -1)] if self.uses_features else []
        if cached is not None:
            rest += [np.asarray(cached[0], dtype=np.int64).reshape(1, -1),
                     np.asarray(cached[1], dtype=np.float32).reshape(1, -1)]
        elif self.has_interest_ids:  # the interests chosen now from this history, then served as a cache is
            rest += self._chosen_interests(self._padded(ids) + rest)
        if self.unpadded_without_length and len(ids) > 0:  # the history as it is, without padding or length
            if self.compile and (self.has_interest_ids, "full") not in self._functions:
                self._compile_unpadded(ids, rest)  # both kinds on the first request, not one later
            key = (self.has_interest_ids, "full" if len(ids) == self.max_length else "short")
            inputs = [ids.reshape(1, -1)] + rest
        else:
            key, inputs = (self.has_interest_ids, "length"), self._padded(ids) + rest
        outputs = self._compiled(key, inputs)(*inputs)
        slot_ids = outputs[1][0] if self.has_interest_ids else None
        return np.ascontiguousarray(outputs[0][0], dtype=np.float32), slot_ids

    def _padded(self, ids):
        """``[item_seq [1, L], item_seq_len [1]]`` of a history laid out as RecBole's (left-aligned, zero-padded):
        what the functions with a length take (and the predictor's scores)."""
        seq = np.zeros((1, self.max_length), dtype=np.int64)
        seq[0, : len(ids)] = ids
        return [seq, np.array([len(ids)], dtype=np.int64)]

    def _compile_unpadded(self, ids, rest):
        """Compile, on the first request, the two functions of unpadded histories (models that declare
        ``UNPADDED_WITHOUT_LENGTH``): ``full``, histories of L items (a fixed shape), and for L > 1 ``short``, every
        shorter history in one function whose length is its input's own (no padding, so no length and no mask:
        GemiRec's tower reads the final position). Each is compiled on the request's items cycled to its length
        and checked against the eager model there; ``short`` also on one item, so a runtime that fixed the length
        it was compiled at is not used."""
        length = self.max_length
        self._compiled((self.has_interest_ids, "full"), [np.resize(ids, length).reshape(1, -1)] + rest)
        if length > 1:
            self._compiled((self.has_interest_ids, "short"), [np.resize(ids, length - 1).reshape(1, -1)] + rest,
                           also=[[ids[-1:].reshape(1, -1)] + rest])

    def _chosen_interests(self, inputs):
        """``[ids [1, K], log-probabilities [1, K]]`` of the interests the model chooses for a history now: the
        predictor's scores of every interest (compiled as the queries are), then the model's own selection
        (``select_interests``: the K best under the code limit), run eagerly: under multi-level codes it walks
        the ranking step by step, which a compiled function would freeze, and it is a handful of operations."""
        import torch

        scores = self._compiled("scores", inputs)(*inputs)[0]
        with torch.inference_mode():
            ids, log_probs = self.model.select_interests(torch.from_numpy(scores))
        return [ids.numpy(), log_probs.numpy()]

    def normalise_mask(self, slot_ids):
        """``[K']`` bool: which of the queries with these slot ids (-1: u) the retrieval normalises, ``None``
        where the query side computes its normalisers itself."""
        if self.normalise_slots is None:
            return None
        user, interests = self.normalise_slots
        return np.where(np.asarray(slot_ids) < 0, user, interests)

    def codes_of(self, slot_ids):
        """Code tuples ``[K', C]`` of the interest ids :meth:`queries` returned (-1 rows for u)."""
        import torch

        with torch.inference_mode():
            return self.model.query_interest_codes(torch.from_numpy(np.asarray(slot_ids)).view(1, -1))[0].numpy()

    def _features(self, features):
        cardinalities = self._cardinalities
        if features is None:
            return self._unknown_features
        values = np.asarray(features, dtype=np.int64)
        if values.shape != cardinalities.shape or not ((values >= 0) & (values < cardinalities)).all():
            raise DataError(f"user features {values.tolist()}: expected {len(cardinalities)} ids below "
                            f"{cardinalities.tolist()}")
        return values

    def _compiled(self, key, inputs, also=()):
        """A function of the request's numpy arrays to a tuple of numpy arrays, compiled on the first request
        (in memory only, never saved or loaded) into the first of the :data:`RUNTIMES` that builds and
        reproduces the eager result on that request (and on the requests ``also``); the eager function where none
        does, or where :attr:`compile` is off. ``key``: ``(with interests, history kind)``, ``queries_from_history``
        with given interests (a stored cache's, or those chosen now) giving the queries and their slot ids, or
        without interests (the queries alone), for padded histories with their length (``"length"``) or, for
        models that declare ``UNPADDED_WITHOUT_LENGTH``, unpadded ones without it (``"full"``: L items;
        ``"short"``: any shorter length, the input's length varying); ``"scores"``, the predictor's scores of
        every interest."""
        if key not in self._functions:
            if key == "scores":
                module = _scores_function(self.model, self.uses_features)
            else:
                module = _query_function(self.model, self.uses_features, key[0], key[1] == "length", self.has_interest_ids)
            eager = _on_arrays(module)
            if self.compile:
                lengths_vary = key != "scores" and key[1] == "short"
                function, self.runtime = _first_runtime(module, eager, [inputs, *also], lengths_vary)
            else:
                function, self.runtime = eager, "eager"
            self._functions[key] = function
        return self._functions[key]


def _first_runtime(module, eager, checks, lengths_vary=False):
    """``(function, runtime name)``: ``module`` built by the first of the :data:`RUNTIMES` that builds it and
    reproduces ``eager`` (the same function, eager) on every request of ``checks`` (lists of input arrays, the
    first the one it is built on); ``(eager, "eager")`` where none does. ``lengths_vary``: the first input's second
    dimension (the history's length) differs from request to request."""
    import torch

    tensors = tuple(torch.from_numpy(array) for array in checks[0])
    expected = [eager(*inputs) for inputs in checks]  # the references every runtime is checked against
    for name, build in RUNTIMES:
        try:
            candidate = build(module, tensors, lengths_vary)
            if all(_same_outputs(candidate(*inputs), want) for inputs, want in zip(checks, expected)):
                return candidate, name
        except Exception:  # noqa: BLE001 - a runtime that cannot run this function leaves the next one
            continue
    return eager, "eager"


ONNX_OPSET = 17


def _onnx_function(module, tensors, lengths_vary=False):
    """The query function on ONNX Runtime: exported to ONNX in memory (torch's TorchScript-based exporter,
    which traces it as :func:`_frozen_trace` does) and run by one ONNX Runtime session. A request's graph is
    a few dozen small operations; ONNX Runtime fuses some of them (layer norms, GELU, matmul + bias) and runs
    each with less fixed cost than TorchScript's interpreter: about 2.5x faster per request than the frozen trace
    for GemiRec's query function and for ComiRec-SA's (docs/serving.md), and the request's arrays go in and come
    out without torch. The session reads the module's own weight arrays (:func:`_shared_weights`) instead of
    keeping a copy of them: the item table of a million items of 64 floats is 256 MiB. ``lengths_vary``: the first
    input's second dimension is left free (a dynamic axis), so one session serves histories of every length."""
    import io
    import warnings

    import onnxruntime
    import torch

    names = [f"input{i}" for i in range(len(tensors))]
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter notices: the output check decides
        torch.onnx.export(module, tensors, buffer, dynamo=False, opset_version=ONNX_OPSET, input_names=names,
                          dynamic_axes={names[0]: {1: "length"}} if lengths_vary else None)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()  # as the process runs torch
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # no busy wait between requests
    options.log_severity_level = 3  # errors only
    shared = _shared_weights(module, options)
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    used = [(names.index(arg.name), arg.name) for arg in session.get_inputs()]  # unused inputs are dropped

    def run(*arrays):
        return tuple(session.run(None, {name: arrays[i] for i, name in used}))

    run.shared_weights = shared  # the session reads these arrays: they live as long as the function
    return run


def _shared_weights(module, options):
    """Hand ONNX Runtime the module's weights under their state-dict names (the names the exporter gives the
    weights it uses as they are), as arrays over the module's own memory, so the session uses them in place of
    the copies the exported graph carries; names the graph does not have are ignored. Only for weights that no
    longer change (a served model's). Returns what must live as long as the session: the arrays and their
    ONNX Runtime values."""
    import onnxruntime

    kept = []
    for name, tensor in module.state_dict().items():
        try:
            array = np.ascontiguousarray(tensor.detach().cpu().numpy())  # no copy for a contiguous CPU tensor
        except TypeError:  # a dtype numpy has no type for (bfloat16): the graph's own copy serves
            continue
        value = onnxruntime.OrtValue.ortvalue_from_numpy(array)
        options.add_initializer(name, value)
        kept.append((array, value))
    return kept


def _frozen_trace(module, tensors, lengths_vary=False):
    """The query function as a frozen TorchScript trace: the same operations without Python's per-operation
    overhead, the weights folded in as constants (about 2.5x faster than eager for GemiRec's user tower and
    fusion on one request). A trace records the sizes it reads as operations, so it may serve other lengths
    (``lengths_vary``): the checks of :func:`_first_runtime` on two lengths decide."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and deprecation notices: the output check decides
        return _on_arrays(torch.jit.freeze(torch.jit.trace(module, tensors, check_trace=False)))


# The runtimes a query function is compiled to, tried in this order (LiveModel._compiled).
RUNTIMES = (("onnxruntime", _onnx_function), ("torchscript", _frozen_trace))


def _on_arrays(function):
    """A torch query function (eager or traced) as one from numpy arrays to a tuple of numpy arrays."""
    import torch

    def run(*arrays):
        with torch.inference_mode():
            outputs = function(*(torch.from_numpy(array) for array in arrays))
        return tuple(output.numpy() for output in (outputs if isinstance(outputs, tuple) else (outputs,)))

    return run


def _checked_partitions(path, model, meta):
    """The interest partitions of a partitioned export (:mod:`~recbole_gemirec.serving.partitions`), after
    checking that the model declares the same ones; ``None`` for an export without them."""
    partitions = meta.get("interest_partitions")
    if not partitions:
        return None
    declared = model.retrieval_partitions()
    if declared is None or any(declared[key] != partitions.get(key) for key in declared):
        raise DataError(f"{path}: the model's interest partitions {declared} are not the ones meta.json records "
                        f"({partitions}); export the model again")
    return partitions


def _same_outputs(compiled, eager):
    """Whether a compiled function's outputs (tuples of numpy arrays) reproduce the eager ones: the queries to
    float tolerance, ids exactly."""
    return len(compiled) == len(eager) and all(
        c.shape == e.shape and (np.allclose(c, e, rtol=1e-5, atol=1e-6) if e.dtype.kind == "f" else np.array_equal(c, e))
        for c, e in zip(compiled, eager))


def _split(inputs, with_features, with_interests, with_length=True):
    """``(item_seq, item_seq_len, user_features, interests)`` of the query function's flat inputs (the length
    ``None`` where they leave it out: an unpadded history)."""
    length = inputs[1] if with_length else None
    features = inputs[1 + with_length] if with_features else None
    interests = tuple(inputs[-2:]) if with_interests else None
    return inputs[0], length, features, interests


def _scores_function(model, with_features):
    """``interest_scores_of`` of ``model`` (the predictor's scores of every interest ``[B, n_interests]``) as an
    ``nn.Module`` of the query function's first inputs (history, length, features)."""
    import torch

    class ScoresFunction(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            item_seq, item_seq_len, features, _ = _split(inputs, with_features, False)
            return self.model.interest_scores_of(item_seq, item_seq_len, features)

    return ScoresFunction().eval()


def _query_function(model, with_features, with_interests, with_length, with_slots):
    """``queries_from_history`` of ``model`` with a fixed set of inputs as an ``nn.Module`` (what
    ``torch.jit.trace`` takes; without the length input, ``with_length`` false, for unpadded histories):
    ``(queries, slot ids)`` where the queries have interest ids (``with_slots``), else the queries
    alone (a trace cannot return ``None``)."""
    import torch

    class QueryFunction(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            queries, slot_ids = self.model.queries_from_history(
                *_split(inputs, with_features, with_interests, with_length))
            return (queries, slot_ids) if with_slots else queries

    return QueryFunction().eval()
