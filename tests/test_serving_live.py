"""Serving from a history: the exported query side reproduces the model's own queries and rankings."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from conftest import TEST_DATA, train_tiny
from test_serving import _serving_cli

GEMIREC = dict(interest_category_field="category", recipe="paper", gpt_layers=2, stage_epochs={"retrieval": 2, "dictionary": 1, "joint": 1})


def _train_and_export(root, model, **settings):
    """Train ``model`` on a copy of the tiny data, export it, then delete the data: everything served
    afterwards comes from the export alone."""
    from recbole_gemirec.serving import export_model

    data = root / "data"
    shutil.copytree(TEST_DATA, data)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        result = train_tiny(root, model, data_path=str(data), **settings)
        checkpoint = str(root / result["checkpoint"])
        export_model(checkpoint, str(root / "export"), config_dict={"data_path": str(data)})
        reference = _reference(checkpoint, str(data))
    finally:
        os.chdir(cwd)
    shutil.rmtree(data)
    return str(root / "export"), reference


def _reference(checkpoint, data_path):
    """What the RecBole model itself ranks, for checking the live path: the model, every user's whole
    history (as exported) and the token tables."""
    from recbole_gemirec.serving import user_histories
    from recbole_gemirec.serving.export import load_for_serving

    config, model, dataset, _, _ = load_for_serving(checkpoint, {"data_path": data_path})
    rows = user_histories(dataset, config, history="full")
    return {"model": model, "rows": rows, "dataset": dataset}


@pytest.fixture(scope="module")
def gemirec(tmp_path_factory):
    return _train_and_export(tmp_path_factory.mktemp("live_gemirec"), "GemiRec", **GEMIREC)


@pytest.fixture(scope="module")
def factorised(tmp_path_factory):
    """GemiRec's factorised recipe (masked interest queries): an exact export serves it over interest partitions."""
    return _train_and_export(tmp_path_factory.mktemp("live_factorised"), "GemiRec", interest_category_field="category",
                             recipe="factorised", stage_epochs={"retrieval": 1, "dictionary": 0, "joint": 1})


@pytest.fixture(scope="module")
def comirec(tmp_path_factory):
    return _train_and_export(tmp_path_factory.mktemp("live_comirec"), "ComiRecSA")


def _history_of(reference, position):
    rows, dataset = reference["rows"], reference["dataset"]
    length = int(rows[reference["model"].ITEM_SEQ_LEN][position])
    ids = rows[reference["model"].ITEM_SEQ][position, :length].numpy()
    user = dataset.id2token(dataset.uid_field, rows[dataset.uid_field][position : position + 1].numpy())[0]
    return str(user), [str(t) for t in dataset.id2token(dataset.iid_field, ids)]


def _model_top(reference, position, history_tokens, n):
    """The RecBole model's own top-n for the user at ``position`` with ``history_tokens`` instead of their
    history (GemiRec: interests chosen afresh from that history)."""
    model, rows, dataset = reference["model"], reference["rows"], reference["dataset"]
    row = rows[torch.tensor([position])]
    ids = torch.from_numpy(dataset.token2id(dataset.iid_field, history_tokens)[-model.max_seq_length:])
    seq = torch.zeros_like(row[model.ITEM_SEQ])
    seq[0, : len(ids)] = ids
    row.interaction[model.ITEM_SEQ] = seq
    row.interaction[model.ITEM_SEQ_LEN] = torch.tensor([len(ids)])
    with torch.no_grad():
        if getattr(model, "has_interest_ids", False):
            model.refresh_interest_cache(row)
        scores = model.full_sort_predict(row)[0]
    scores[0] = -np.inf
    top = scores.topk(n)
    return [str(t) for t in dataset.id2token(dataset.iid_field, top.indices.numpy())], top.values.numpy()


@pytest.mark.parametrize("which", ["gemirec", "factorised", "comirec"])
def test_the_stored_history_served_live_gives_the_stored_recommendation(which, request):
    from recbole_gemirec.serving import Recommender

    export, reference = request.getfixturevalue(which)
    recommender = Recommender.load(export)
    for position in (0, 7, 33):
        user, history = _history_of(reference, position)
        stored = recommender.recommend(user, n=10)
        for interests in ("cache", "generator"):
            live = recommender.recommend_history(history, n=10, user=user, interests=interests)
            assert live.items == stored.items and live.interest_slots == stored.interest_slots
            np.testing.assert_allclose(live.scores, stored.scores, rtol=1e-4, atol=1e-5)
            assert live.interest_codes == stored.interest_codes
            assert live.source == ({"cache": "cache", "generator": "generator"}[interests] if which != "comirec" else "history")


def test_a_users_stored_cache_is_read_as_a_view_of_the_exports_rows_in_their_layout_only(gemirec):
    """A request reads a known user's interest cache as a view of the stored rows when every row holds u in the same
    leading slots (the export's layout); any other layout is read row by row, with the same lists."""
    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving.live import cached_interests, interest_slots

    assert interest_slots(np.array([[-1, 4, 2], [-1, 3, 3]])) == slice(1, None)
    assert interest_slots(np.array([[4, 2], [3, 3]])) == slice(0, None)
    assert interest_slots(np.array([[-1, 4, 2], [4, -1, 2]])) is None  # u elsewhere in one row
    assert interest_slots(np.array([[-1, 4, 2], [-1, 3, -1]])) is None
    assert interest_slots(np.zeros((0, 3), dtype=np.int64)) is None
    export, reference = gemirec
    recommender = Recommender.load(export)
    assert isinstance(recommender._interest_slots, slice)
    user, history = _history_of(reference, 5)
    row = recommender.user_row(user)
    ids, log_probs = recommender._stored_cache(row)
    expected = cached_interests(recommender.interest_ids[row], recommender.interest_log_probs[row])
    assert ids.shape == (1, len(expected[0])) and np.shares_memory(ids, recommender.interest_ids)
    np.testing.assert_array_equal(ids[0], expected[0])
    np.testing.assert_array_equal(log_probs[0], expected[1])
    viewed = recommender.recommend_history(history, n=10, user=user, interests="cache")
    recommender._interest_slots = None  # another layout: the row's own cache
    assert recommender.recommend_history(history, n=10, user=user, interests="cache") == viewed


@pytest.mark.parametrize("which", ["gemirec", "factorised", "comirec"])
def test_a_changed_history_is_ranked_as_the_model_ranks_it(which, request):
    from recbole_gemirec.serving import Recommender

    export, reference = request.getfixturevalue(which)
    recommender = Recommender.load(export)
    changed_any = False
    for position in (2, 11, 40):
        user, history = _history_of(reference, position)
        newer = history[3:] + [t for t in recommender.item_tokens[:40] if t not in history][:6]
        expected, scores = _model_top(reference, position, newer, 10)
        live = recommender.recommend_history(newer, n=10, user=user, interests="generator")
        assert live.items == expected
        np.testing.assert_allclose(live.scores, scores, rtol=1e-4, atol=1e-5)
        changed_any |= live.items != recommender.recommend(user, n=10).items
    assert changed_any, "a different history should change some user's recommendation"


def test_masked_interest_queries_are_served_over_interest_partitions_as_the_whole_index_serves_them(factorised):
    """Under masking each interest query scans only its interest's items, and the live queries' normalisers
    come from those scans: the same lists and scores as every query over the whole faiss index."""
    from recbole_gemirec.serving import Recommender, build_index
    from recbole_gemirec.serving.index import search
    from recbole_gemirec.serving.recommender import merge_interest_lists

    export, reference = factorised
    meta = json.load(open(os.path.join(export, "meta.json")))
    assert meta["interest_partitions"] == reference["model"].retrieval_partitions()
    assert meta["interest_partitions"]["normalise"]["user"]
    partitioned = Recommender.load(export)
    assert partitioned.partitions is not None and partitioned.live.normalise_slots is not None
    assert partitioned.index is None  # the exact index is not kept beside the partitions
    index = build_index(partitioned.item_vectors, "flat")[0]
    codes = partitioned.item_vectors[:, slice(*meta["interest_partitions"]["columns"])]
    for position in (1, 8, 21):
        user, history = _history_of(reference, position)
        a = partitioned.recommend(user, n=25)
        rows, slots, scores = merge_interest_lists(*search(index, partitioned.queries[partitioned.user_row(user)], 25),
                                                   25)
        assert a.items == [partitioned.item_tokens[r] for r in rows] and a.interest_slots == slots.tolist()
        np.testing.assert_allclose(a.scores, scores, rtol=1e-5, atol=1e-5)
        ids = partitioned.interest_ids[partitioned.user_row(user)]
        for item, slot in zip(a.items, a.interest_slots):  # an interest's query returns its interest's items only
            if ids[slot] >= 0:
                assert codes[partitioned.item_row(item)].argmax() == partitioned.live.codes_of(ids[slot:slot + 1])[0, 0]


def _inputs_of(live, ids, cached=None):
    """The query function's inputs for a history (and a stored cache), as torch tensors."""
    seq = torch.zeros((1, live.max_length), dtype=torch.long)
    seq[0, : len(ids[-live.max_length:])] = torch.from_numpy(ids[-live.max_length:])
    inputs = [seq, torch.tensor([min(len(ids), live.max_length)])]
    if live.uses_features:
        inputs.append(torch.zeros((1, len(live._cardinalities)), dtype=torch.long))
    if cached is not None:
        inputs += [torch.from_numpy(np.asarray(a)).view(1, -1) for a in cached]
    return inputs


@pytest.mark.parametrize("mode", ["generator", "cache"])
def test_the_compiled_query_function_agrees_with_the_eager_model_on_many_requests(factorised, mode):
    """The compiled functions are checked on their first request only, so here they must agree with the eager
    model on many others: with the interests chosen now (the predictor's scores compiled, the model's selection,
    ties to the lower interest id, then the queries) and with a stored cache."""
    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving.live import _split, cached_interests

    export, reference = factorised
    recommender = Recommender.load(export)
    live = recommender.live
    lengths = set()
    for position in range(0, 60, 4):
        user, history = _history_of(reference, position)
        ids = reference["dataset"].token2id(reference["dataset"].iid_field, history)
        cached = None
        if mode == "cache":
            row = recommender.user_row(user)
            cached = cached_interests(recommender.interest_ids[row], recommender.interest_log_probs[row])
        queries, slot_ids = live.queries(ids, cached=cached)
        inputs = _inputs_of(live, ids, cached)
        with torch.no_grad():
            eager, eager_ids = live.model.queries_from_history(*_split(inputs, live.uses_features, cached is not None))
        np.testing.assert_array_equal(slot_ids, eager_ids[0].numpy())
        np.testing.assert_allclose(queries, eager[0].numpy(), rtol=1e-5, atol=1e-5)
        lengths.add(min(len(ids), live.max_length))
    assert live.runtime == "onnxruntime"
    # histories that fill every position and shorter ones (of several lengths, one function for all of them),
    # each served as it is, without padding, length or mask
    assert live.max_length in lengths and len({n for n in lengths if n < live.max_length}) >= 2
    assert set(live._functions) - {"scores"} == {(True, "full"), (True, "short")}


@pytest.mark.parametrize("length", [3, "full"])
def test_the_first_request_compiles_the_query_functions_of_both_history_kinds(gemirec, length):
    """A history that fills every position and a shorter one are served by two compiled functions (L items, and
    any shorter length): both are compiled on the first request, whichever kind it is, so that no later request
    pays a compile; an eager query side builds only what it serves."""
    from recbole_gemirec.serving import Recommender

    export, reference = gemirec
    user, history = _history_of(reference, 0)
    recommender = Recommender.load(export)
    history = history[:3] if length == 3 else (history * 20)[: recommender.live.max_length]
    first = recommender.recommend_history(history, n=5, user=user)
    assert {(True, "full"), (True, "short")} <= set(recommender.live._functions)
    eager = Recommender.load(export, compile_live=False)
    assert eager.recommend_history(history, n=5, user=user).items == first.items
    assert set(eager.live._functions) == {(True, "short" if length == 3 else "full")}


def test_a_runtime_that_fixes_the_history_length_does_not_serve_the_shorter_histories(gemirec, monkeypatch):
    """The function of shorter histories serves every length below L: a runtime whose function keeps the length it
    was compiled at (here ONNX without the dynamic axis) fails its check on a second length and is passed over."""
    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving import live as live_module

    used = []

    def fixed(module, tensors, lengths_vary=False):
        used.append(lengths_vary)
        return live_module._onnx_function(module, tensors, False)

    monkeypatch.setattr(live_module, "RUNTIMES", (("fixed", fixed), ("torchscript", live_module._frozen_trace)))
    export, reference = gemirec
    user, history = _history_of(reference, 0)
    recommender = Recommender.load(export)
    live = recommender.live
    first = recommender.recommend_history(history[:3], n=5, user=user)
    assert True in used and False in used  # both kinds were offered to the first runtime
    assert live.runtime != "fixed"  # the short function, compiled last, is not the fixed-length one
    eager = Recommender.load(export, compile_live=False)
    for size in (1, 2, 5):
        got = recommender.recommend_history(history[:size], n=5, user=user)
        want = eager.recommend_history(history[:size], n=5, user=user)
        assert got.items == want.items
        np.testing.assert_allclose(got.scores, want.scores, rtol=1e-5, atol=1e-5)
    assert first.items == eager.recommend_history(history[:3], n=5, user=user).items


def test_a_runtime_that_fails_leaves_the_next_one_and_then_eager(gemirec, monkeypatch):
    """A runtime that cannot build the query function, or builds one whose outputs differ from the eager
    model's, is passed over: the next one serves, and the eager function where none can."""
    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving import live as live_module

    def fails(module, tensors, lengths_vary=False):
        raise RuntimeError("unsupported operator")

    def wrong(module, tensors, lengths_vary=False):
        eager = live_module._on_arrays(module)
        return lambda *arrays: tuple(a + 1 if a.dtype.kind == "f" else a for a in eager(*arrays))

    export, reference = gemirec
    _, history = _history_of(reference, 0)
    ids = reference["dataset"].token2id(reference["dataset"].iid_field, history)
    served = {}
    for runtimes, expected in [((("broken", fails), ("torchscript", live_module._frozen_trace)), "torchscript"),
                               ((("broken", fails), ("wrong", wrong)), "eager")]:
        monkeypatch.setattr(live_module, "RUNTIMES", runtimes)
        live = Recommender.load(export).live
        served[expected] = live.queries(ids)[0]
        assert live.runtime == expected
    np.testing.assert_allclose(served["torchscript"], served["eager"], rtol=1e-5, atol=1e-6)


def test_the_onnx_session_reads_the_query_sides_own_weights(gemirec):
    """ONNX Runtime is handed the query side's weight arrays instead of keeping a copy (a million-item table is
    256 MiB): a change made in place to the model's item table after compiling shows in the compiled output."""
    from recbole_gemirec.serving import Recommender

    export, reference = gemirec
    _, history = _history_of(reference, 3)
    ids = reference["dataset"].token2id(reference["dataset"].iid_field, history)
    live = Recommender.load(export).live
    before = live.queries(ids)[0]
    assert live.runtime == "onnxruntime"
    with torch.no_grad():
        live.model.item_embedding.weight[torch.from_numpy(np.asarray(ids))] *= 2.0
    assert not np.allclose(live.queries(ids)[0], before, atol=1e-3)


@pytest.mark.parametrize("interests", ["generator", "cache"])
def test_a_recommender_that_does_not_compile_serves_the_same_lists_eagerly(factorised, interests, monkeypatch):
    """``compile_live=False`` (the command line: one request per process) runs the eager model and never tries a
    runtime, and its lists, slots and scores are the compiled query side's."""
    from recbole_gemirec.serving import Recommender
    from recbole_gemirec.serving import live as live_module

    export, reference = factorised
    compiled = Recommender.load(export)
    requests = [_history_of(reference, position) for position in (0, 7, 21)]
    want = [compiled.recommend_history(history, n=10, user=user, interests=interests) for user, history in requests]
    assert compiled.live.runtime == "onnxruntime"

    def never(module, tensors, lengths_vary=False):
        raise AssertionError("a runtime was tried")

    monkeypatch.setattr(live_module, "RUNTIMES", (("never", never),))
    eager = Recommender.load(export, compile_live=False)
    for (user, history), expected in zip(requests, want):
        got = eager.recommend_history(history, n=10, user=user, interests=interests)
        assert got.items == expected.items and list(got.interest_slots) == list(expected.interest_slots)
        np.testing.assert_allclose(got.scores, expected.scores, rtol=1e-5, atol=1e-5)
    assert eager.live.runtime == "eager"


def test_an_approximate_index_of_masked_queries_is_served_without_partitions(factorised, tmp_path):
    """IVF and HNSW search the whole catalogue for every query: no partitions, and the live query side computes
    its normalisers itself (the export's own check compares them with the stored queries)."""
    from recbole_gemirec.serving import Recommender, export_model

    _, reference = factorised
    checkpoint = None
    for root, _, files in os.walk(os.path.dirname(factorised[0])):
        checkpoint = checkpoint or next((os.path.join(root, f) for f in files if f.endswith("-joint.pth")), None)
    data = tmp_path / "data"
    shutil.copytree(TEST_DATA, data)
    meta = export_model(checkpoint, str(tmp_path / "hnsw"), index_type="hnsw", config_dict={"data_path": str(data)})
    assert meta["interest_partitions"] is None
    recommender = Recommender.load(tmp_path / "hnsw")
    assert recommender.partitions is None and recommender.live.normalise_slots is None
    user, history = _history_of(reference, 4)
    assert recommender.recommend_history(history, n=5, user=user).items == recommender.recommend(user, n=5).items


@pytest.mark.parametrize("partitions,message", [
    ({"columns": [65], "level_sizes": [9], "bias_column": 64, "normalise": {"user": True, "interests": True}},
     "'interest_partitions' must be null or hold"),
    ({"columns": [65, 74], "level_sizes": [9], "bias_column": "64", "normalise": {"user": True, "interests": True}},
     "'interest_partitions' must be null or hold"),
    ({"columns": [65, 74], "level_sizes": [9], "bias_column": 64, "normalise": "yes"},
     "'interest_partitions' must be null or hold"),
    ({"columns": [60, 69], "level_sizes": [9], "bias_column": None, "normalise": {"user": True, "interests": True}},
     "item_vectors.npy: an item's masking columns"),
    ({"columns": [65, 74], "level_sizes": [9], "bias_column": 3, "normalise": {"user": True, "interests": True}},
     "item_vectors.npy: column 3 is not the column of ones"),
])
def test_damaged_interest_partitions_in_meta_are_refused(factorised, tmp_path, partitions, message):
    from recbole_gemirec.errors import DataError
    from recbole_gemirec.serving import Recommender

    directory = _copy(factorised[0], tmp_path, "damaged")
    meta_path = directory / "meta.json"
    meta = json.loads(meta_path.read_text())
    assert meta["interest_partitions"]["columns"] == [65, 74]  # the tiny data's 9 categories after 64 + 1 columns
    meta["interest_partitions"] = partitions
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match=message):
        Recommender.load(directory)


def test_interest_partitions_need_the_exact_index(factorised, tmp_path):
    from recbole_gemirec.errors import DataError
    from recbole_gemirec.serving import Recommender

    directory = _copy(factorised[0], tmp_path, "approximate")
    meta = json.loads((directory / "meta.json").read_text())
    meta["index"] = {"type": "hnsw", "params": {"M": 32, "ef_construction": 200, "ef_search": 128}, "metric": "inner_product"}
    (directory / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(DataError, match="'interest_partitions' needs the exact index"):
        Recommender.load(directory)


def test_a_new_user_is_served_from_the_history_alone(gemirec):
    from recbole_gemirec.serving import Recommender

    export, reference = gemirec
    recommender = Recommender.load(export)
    user, history = _history_of(reference, 5)
    new = recommender.recommend_history(history, n=15, interests="cache")
    assert new.user is None and new.source == "generator"  # a new user has no cache: the generator chooses
    assert len(new.items) == 15 and len(set(new.items)) == 15
    assert all(code is not None for code in new.interest_codes)
    excluded = recommender.recommend_history(history, n=15, exclude_history=True)
    assert not set(excluded.items) & set(history)


def test_the_query_side_holds_only_numeric_arrays_and_the_models_own_weights(gemirec):
    export, reference = gemirec
    spec = json.load(open(os.path.join(export, "query_model.json")))
    assert spec["model"] == "GemiRec" and spec["architecture"]["stage"] == "joint"
    with np.load(os.path.join(export, "query_model.npz"), allow_pickle=False) as weights:
        state = reference["model"].state_dict()
        assert "item_embedding.weight" in weights.files and "interest_cache" not in weights.files
        for key in weights.files:
            np.testing.assert_array_equal(weights[key], state[key].numpy())


def _copy(export, tmp_path, name):
    target = tmp_path / name
    shutil.copytree(export, target)
    return target


def _rewrite(directory, name, write):
    """Change one file of an export and record its new checksum, so the check under test is the one that
    fires (not the checksum's)."""
    from recbole_gemirec.serving.export import sha256_of

    path = os.path.join(directory, name)
    write(path)
    meta_path = os.path.join(directory, "meta.json")
    meta = json.load(open(meta_path))
    meta["files"][name]["sha256"] = sha256_of(path)
    json.dump(meta, open(meta_path, "w"))


def _set_spec(**changes):
    def write(path):
        spec = json.load(open(path))
        for key, value in changes.items():
            if key == "model":
                spec["model"] = value
            else:
                spec["architecture"][key] = value
        json.dump(spec, open(path, "w"))
    return write


@pytest.mark.parametrize("name,write,message", [
    ("query_model.json", _set_spec(model="os"), "not one of this extension's models"),
    ("query_model.json", _set_spec(model="SASRec"), "not one of this extension's models"),
    ("query_model.json", _set_spec(model="ComiRecSA"), "meta.json records 'GemiRec'"),
    ("query_model.json", _set_spec(n_items=10**12), "n_items"),
    ("query_model.json", _set_spec(embedding_size=10**6), "larger than the"),
    ("query_model.json", _set_spec(embedding_size=48), "does not hold the weights"),
    ("query_model.json", _set_spec(tower_layers="two"), "tower_layers='two' is not allowed"),
    ("query_model.json", _set_spec(gpt_layers=10**30), "larger than the"),  # would never finish building
    ("query_model.json", _set_spec(interest_dictionary_sizes=[32, 10**30]), "larger than the"),
    ("query_model.json", _set_spec(tower_heads=0), "tower_heads=0 is not allowed"),
    ("query_model.json", _set_spec(interest_num=-1), "interest_num=-1 is not allowed"),
    ("query_model.json", lambda p: open(p, "w").write("{not json"), "not a readable JSON"),
    ("query_model.npz", lambda p: np.savez(p, x=np.zeros(3)), "larger than the 3 weights"),
    ("query_model.npz", lambda p: np.savez(p, x=np.zeros(10**6)), "does not hold the weights"),
    ("query_model.npz", lambda p: open(p, "wb").write(b"garbage"), "without pickle"),
])
def test_a_damaged_query_side_is_refused_with_the_file_named(gemirec, tmp_path, name, write, message):
    from recbole_gemirec.errors import DataError
    from recbole_gemirec.serving import Recommender

    directory = _copy(gemirec[0], tmp_path, "damaged")
    _rewrite(str(directory), name, write)
    recommender = Recommender.load(directory)  # the stored queries still serve
    assert recommender.recommend(recommender.user_tokens[0], n=3).items
    with pytest.raises(DataError, match=message) as err:
        recommender.recommend_history([recommender.item_tokens[0]], n=3)
    assert name in str(err.value)


def test_bad_live_requests_are_clear_errors(gemirec, tmp_path):
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.serving import Recommender, UnknownTokenError, export_model

    recommender = Recommender.load(gemirec[0])
    item = recommender.item_tokens[0]
    with pytest.raises(UnknownTokenError, match="'no-such-item'"):
        recommender.recommend_history([item, "no-such-item"])
    with pytest.raises(ConfigError, match="history is empty"):
        recommender.recommend_history([])
    with pytest.raises(ConfigError, match="list of item tokens"):
        recommender.recommend_history(item)
    with pytest.raises(ConfigError, match="interests='fresh' is unknown"):
        recommender.recommend_history([item], interests="fresh")
    with pytest.raises(UnknownTokenError, match="user token"):
        recommender.recommend_history([item], user="no-such-user")
    sasrec = train_tiny(tmp_path, "SASRec")
    export_model(str(tmp_path / sasrec["checkpoint"]), str(tmp_path / "sasrec"))
    with pytest.raises(ConfigError, match="no query side"):
        Recommender.load(tmp_path / "sasrec").recommend_history([item])


def _serving_main(args, capsys):
    """The serving command's ``main`` in this process: ``(exit status, stderr)`` (argparse's usage errors exit)."""
    from recbole_gemirec.serving.__main__ import main

    try:
        status = main(list(args))
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


def test_live_recommendation_through_the_command_line(gemirec, tmp_path, capsys):
    export, reference = gemirec
    user, history = _history_of(reference, 9)
    args = ["recommend", "--index", export, "--history", *history, "-n", "5", "--json"]
    known = _serving_cli(args + ["--user", user], tmp_path)
    assert known.returncode == 0, known.stderr
    payload = json.loads(known.stdout)
    stored = json.loads(_serving_cli(["recommend", "--index", export, "--user", user, "-n", "5", "--json"], tmp_path).stdout)
    assert payload["items"] == stored["items"] and payload["source"] == "cache"
    new = _serving_cli(args + ["--interests", "generator"], tmp_path)
    assert new.returncode == 0, new.stderr
    assert json.loads(new.stdout)["user"] is None and json.loads(new.stdout)["source"] == "generator"
    table = _serving_cli(["recommend", "--index", export, "--history", *history, "-n", "3"], tmp_path)
    assert table.returncode == 0 and "new user" in table.stdout
    bad = _serving_cli(["recommend", "--index", export, "--history", "no-such-item"], tmp_path)  # as a process
    assert bad.returncode == 2 and bad.stderr.strip().startswith("error:") and "'no-such-item'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    capsys.readouterr()
    for args, message in ((["--history", history[0], "--interests", "fresh"], "interests='fresh' is unknown"),
                          (["--history", history[0], "--user", user, "--user", user], "at most once"),
                          (["--user", user, "--interests", "generator"], "apply to --history"),
                          (["--user", user, "--exclude-history"], "apply to --history"),
                          ([], "needs --user TOKEN")):  # the same command's main, in this process
        status, stderr = _serving_main(["recommend", "--index", export] + args, capsys)
        assert status == 2 and stderr.strip().startswith("error:") and message in stderr, args
        assert len(stderr.strip().splitlines()) == 1


def test_an_earlier_stage_is_served_live_with_the_user_vector(tmp_path):
    from recbole_gemirec.serving import Recommender, export_model

    result = train_tiny(tmp_path, "GemiRec", **GEMIREC)
    retrieval = str(tmp_path / result["checkpoint"]).replace("-joint.pth", "-retrieval.pth")
    meta = export_model(retrieval, str(tmp_path / "export"))
    assert meta["kind"] == "multi_interest" and meta["interests"] == 1 and meta["live"] is True
    recommender = Recommender.load(tmp_path / "export")
    user = recommender.user_tokens[3]
    stored = recommender.recommend(user, n=5)
    history = recommender.item_tokens[:7]
    live = recommender.recommend_history(history, n=5, user=user)
    assert live.source == "history" and live.interest_codes is None and set(live.interest_slots) == {0}
    assert len(live.items) == 5 and stored.items


@pytest.mark.parametrize("model,settings", [
    ("ComiRecDR", {}), ("MIND", {"dynamic_interest_num": True}), ("REMI", {}),
    ("GemiRec", dict(GEMIREC, interest_source="category", user_query=False)),
    # the transition predictor's table and beta travel with the weights
    ("GemiRec", dict(GEMIREC, interest_source="category", interest_predictor="transition", novel_interest_share=0.3,
                     interest_masking=True, interest_weighting="log_joint", target_softmax="interest")),
    # alpha, and the within-interest popularity column of the item table
    ("GemiRec", dict(GEMIREC, interest_source="category", interest_predictor="transition", novel_interest_share=0.3,
                     current_interest_share=0.5, within_interest_ranking="popularity", interest_masking=True,
                     interest_weighting="log_joint", target_softmax="interest")),
])
def test_every_extension_model_serves_live(model, settings, tmp_path):
    from recbole_gemirec.serving import Recommender

    export, reference = _train_and_export(tmp_path, model, **settings)  # the export checks its live queries
    recommender = Recommender.load(export)
    assert recommender.meta["live"] is True
    user, history = _history_of(reference, 4)
    expected, _ = _model_top(reference, 4, history[:-2], 8)
    assert recommender.recommend_history(history[:-2], n=8, user=user, interests="generator").items == expected
    print("RUNTIME", model, recommender.live.runtime)
