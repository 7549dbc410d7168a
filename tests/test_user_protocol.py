"""The `user` evaluation protocol (docs/design.md §4): the user split, the samples, and ComiRec's Recall/Hit."""

import math
import os
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import REPO_DIR, TEST_DATA, TINY_YAML, tiny_config

import recbole_gemirec  # noqa: F401  (compat shims before RecBole)
from recbole.data.interaction import Interaction
from recbole.utils import init_seed

from recbole_gemirec.config import Config
from recbole_gemirec.errors import ConfigError
from recbole_gemirec.utils import create_dataset, data_preparation, get_model, get_trainer

USER_PROTOCOL = os.path.join(REPO_DIR, "dataset_configs", "protocol_user.yaml")
L = 5  # short item_id_list, so the full history part (CUR's H) is longer than what the model sees


def _prepare(**overrides):
    settings = dict(MAX_ITEM_LIST_LENGTH=L, metrics=["Recall", "Hit", "NDCG", "CUR"], topk=[5, 10],
                    valid_metric="Recall@10", category_field="category", metric_decimal_place=10)
    settings.update(overrides)
    config = Config(model="SASRec", dataset="tiny", config_file_list=[USER_PROTOCOL, TINY_YAML],
                    config_dict=tiny_config(**settings))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    return config, dataset, train_data, valid_data, test_data


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    cwd = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("user_protocol"))
    try:
        yield _prepare()
    finally:
        os.chdir(cwd)


def _raw_sequences(dataset):
    """Each user's internal item ids in time order (ties in file order), read straight from tiny.inter."""
    frame = pd.read_csv(os.path.join(TEST_DATA, "tiny", "tiny.inter"), sep="\t", dtype=str)
    frame.columns = [c.split(":")[0] for c in frame.columns]
    frame["t"] = frame["timestamp"].astype(float)
    frame = frame.sort_values(["user_id", "t"], kind="mergesort")
    sequences = {}
    for user, group in frame.groupby("user_id", sort=False):
        uid = int(dataset.token2id("user_id", user))
        sequences[uid] = [int(i) for i in dataset.token2id("item_id", list(group["item_id"]))]
    return sequences


def _raw_categories(dataset):
    frame = pd.read_csv(os.path.join(TEST_DATA, "tiny", "tiny.item"), sep="\t", dtype=str)
    return {int(dataset.token2id("item_id", i)): c for i, c in zip(frame["item_id:token"], frame["category:token"])}


def _rows(data):
    """(interaction, {row: set of targets}) for every batch of an evaluation loader."""
    for interaction, history, positive_u, positive_i in data:
        assert history is None  # no history masking
        targets = {}
        for u, i in zip(positive_u.tolist(), positive_i.tolist()):
            targets.setdefault(u, []).append(i)
        yield interaction, targets


def test_train_valid_test_users_are_disjoint(prepared):
    _, dataset, train_data, valid_data, test_data = prepared
    split = dataset.user_split
    train, valid, test = (set(split[p].tolist()) for p in ("train", "valid", "test"))
    assert not (train & valid) and not (train & test) and not (valid & test)
    assert train | valid | test == set(_raw_sequences(dataset))
    assert (len(train), len(valid), len(test)) == (96, 12, 12)  # 120 users: int(0.8 n), int(0.9 n)
    assert set(train_data.dataset.inter_feat["user_id"].tolist()) <= train
    assert set(valid_data.dataset.inter_feat["user_id"].tolist()) == valid
    assert set(test_data.dataset.inter_feat["user_id"].tolist()) == test


def test_training_samples_are_recbole_augmentation_of_train_users_only(prepared):
    _, dataset, train_data, _, _ = prepared
    sequences = _raw_sequences(dataset)
    train_users = set(dataset.user_split["train"].tolist())
    expected = Counter()
    for uid in train_users:
        seq = sequences[uid]
        for p in range(1, len(seq)):
            expected[(uid, tuple(seq[max(0, p - L):p]), seq[p])] += 1
    feat = train_data.dataset.inter_feat
    got = Counter()
    for uid, items, length, target in zip(feat["user_id"].tolist(), feat["item_id_list"].tolist(),
                                          feat["item_length"].tolist(), feat["item_id"].tolist()):
        assert items[length:] == [0] * (L - length)  # left-aligned, zero-padded
        got[(uid, tuple(items[:length]), target)] += 1
    assert got == expected


def test_no_target_of_an_evaluation_user_is_in_that_users_training_samples(prepared):
    _, dataset, train_data, valid_data, test_data = prepared
    feat = train_data.dataset.inter_feat
    trained_items = {}
    for uid, items, target in zip(feat["user_id"].tolist(), feat["item_id_list"].tolist(), feat["item_id"].tolist()):
        trained_items.setdefault(uid, set()).update(items + [target])
    for data in (valid_data, test_data):
        for interaction, targets in _rows(data):
            for row, uid in enumerate(interaction["user_id"].tolist()):
                assert not set(targets[row]) & trained_items.get(uid, set())
                assert uid not in trained_items


def test_targets_are_exactly_the_tail_20_percent(prepared):
    _, dataset, _, valid_data, test_data = prepared
    sequences = _raw_sequences(dataset)
    seen = 0
    for data in (valid_data, test_data):
        for interaction, targets in _rows(data):
            for row, uid in enumerate(interaction["user_id"].tolist()):
                seq = sequences[uid]
                k = int(0.8 * len(seq))
                assert sorted(targets[row]) == sorted(set(seq[k:]))  # every target once, all of the tail
                length = int(interaction["item_length"][row])
                assert length == min(k, L)
                assert interaction["item_id_list"][row, :length].tolist() == seq[:k][-L:]
                seen += 1
    assert seen == 24


def test_split_depends_on_the_seed_only(in_tmp):
    first = _prepare(user_split_seed=11)[1].user_split
    again = _prepare(user_split_seed=11)[1].user_split
    other = _prepare(user_split_seed=12)[1].user_split
    for part in ("train", "valid", "test"):
        assert np.array_equal(first[part], again[part])
    assert not np.array_equal(first["test"], other["test"])


def test_recall_hit_ndcg_cur_equal_an_independent_implementation(in_tmp):
    config, dataset, train_data, valid_data, test_data = _prepare()
    model = get_model("SASRec")(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], "SASRec")(config, model)
    result = trainer.evaluate(test_data, load_best_model=False)  # no fit: CUR reads the dataset's history

    # ComiRec's formulas on the same model, with histories and targets built from the raw file.
    sequences, category = _raw_sequences(dataset), _raw_categories(dataset)
    users = sorted(dataset.user_split["test"].tolist())
    histories = [sequences[u][:int(0.8 * len(sequences[u]))] for u in users]
    targets = [set(sequences[u][int(0.8 * len(sequences[u])):]) for u in users]
    item_list = torch.zeros(len(users), L, dtype=torch.long)
    for row, history in enumerate(histories):
        item_list[row, :len(history[-L:])] = torch.tensor(history[-L:])
    batch = Interaction({"user_id": torch.tensor(users), "item_id_list": item_list,
                         "item_length": torch.tensor([min(len(h), L) for h in histories])})
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
    scores[:, 0] = -torch.inf
    ranked = torch.topk(scores, 10, dim=1).indices.tolist()
    for n in (5, 10):
        recall, hit, ndcg, cur = [], [], [], []
        hidden_by_truncation = 0
        for top, target, history in zip(ranked, targets, histories):
            hits = [item in target for item in top[:n]]
            recall.append(sum(hits) / len(target))
            hit.append(float(any(hits)))
            dcg = sum(1 / math.log2(r + 2) for r, h in enumerate(hits) if h)
            ndcg.append(dcg / sum(1 / math.log2(r + 2) for r in range(min(len(target), n))))
            unseen = {t for t in target if category[t] not in {category[i] for i in history}}
            if unseen:
                cur.append(len(unseen & set(top[:n])) / len(unseen))
            seen_last_l = {category[i] for i in history[-L:]}
            hidden_by_truncation += len({t for t in target if category[t] not in seen_last_l} - unseen)
        assert result[f"recall@{n}"] == pytest.approx(np.mean(recall), abs=1e-8)
        assert result[f"hit@{n}"] == pytest.approx(np.mean(hit), abs=1e-8)
        assert result[f"ndcg@{n}"] == pytest.approx(np.mean(ndcg), abs=1e-8)
        assert result[f"cur@{n}"] == pytest.approx(np.mean(cur), abs=1e-8)
    assert cur  # some users have unseen-category targets
    # H(u) is the whole history part: some target categories occur only before the last L items
    assert hidden_by_truncation > 0


@pytest.mark.parametrize("overrides, key", [
    ({"eval_protocol": "weekly"}, "eval_protocol"),
    ({"user_split": [0.5, 0.5]}, "user_split"),
    ({"user_split": [0.7, 0.2, 0.2]}, "user_split"),
    ({"history_ratio": 1.0}, "history_ratio"),
    ({"user_split_seed": "x"}, "user_split_seed"),
])
def test_invalid_protocol_settings_are_config_errors(in_tmp, overrides, key):
    with pytest.raises(ConfigError, match=key):
        _prepare(**overrides)


def test_user_protocol_refuses_a_non_sequential_model(in_tmp):
    config = Config(model="BPR", dataset="tiny", config_file_list=[USER_PROTOCOL, TINY_YAML],
                    config_dict=tiny_config())
    with pytest.raises(ConfigError, match="sequential"):
        create_dataset(config)


def test_pop_runs_under_the_user_protocol(tmp_path):
    # Pop keeps no user state, so it is meaningful for the unseen valid/test users of this protocol.
    from conftest import read_json, run_cli

    proc = run_cli(["--model=Pop", "--protocol=user", "--result_file=pop.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = read_json(tmp_path / "pop.json")["test_result"]
    assert 0.0 < result["hit@10"] <= 1.0 and result["recall@10"] <= result["hit@10"]
