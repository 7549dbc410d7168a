"""AMR@N and CUR@N (docs/design.md §5): hand-built cases worked out here, and end-to-end runs inside RecBole."""

import os

import pytest
import torch
from torch import nn

from conftest import REPO_DIR, TINY_YAML, tiny_config

import recbole_gemirec  # noqa: F401  (compat shims before RecBole)
from recbole.evaluator.collector import DataStruct
from recbole.utils import init_seed

from recbole_gemirec.config import Config
from recbole_gemirec.errors import ConfigError
from recbole_gemirec.evaluator.metrics import AMR, CUR
from recbole_gemirec.evaluator.multi_interest_eval import (
    AMR_KEY,
    CUR_KEY,
    amr_counts,
    cur_counts,
    per_interest_topk,
    unseen_category_targets,
)
from recbole_gemirec.model.multi_interest import MultiInterestRecommender, max_interest_scores
from recbole_gemirec.quick_start import run_recbole_gemirec
from recbole_gemirec.utils import create_dataset, data_preparation, get_trainer

USER_PROTOCOL = os.path.join(REPO_DIR, "dataset_configs", "protocol_user.yaml")
METRIC_CONFIG = {"metric_decimal_place": 8, "topk": [2, 4]}

# Hand-built catalogue, D = 2. Item 0 is padding.
#   interest a = (1, 0) scores items 1, 2, 3 highest: 1:10, 2:9, 3:8, 6:3, 5:2, 4:1
#   interest b = (0, 1) scores items 4, 5, 6 highest: 4:9.5, 5:8.5, 6:7.5, 3:3, 2:2, 1:1
#   merged (max) ranking: 1 (10), 4 (9.5), 2 (9), 5 (8.5), 3 (8), 6 (7.5)
ITEMS = torch.tensor([[0.0, 0.0], [10, 1], [9, 2], [8, 3], [1, 9.5], [2, 8.5], [3, 7.5]])
A, B = [1.0, 0.0], [0.0, 1.0]
# targets: user 0 {2, 4, 5}; user 1 {1, 4}; user 2 {6}
TARGET_ROWS = torch.tensor([0, 0, 0, 1, 1, 2])
TARGET_ITEMS = torch.tensor([2, 4, 5, 1, 4, 6])


def _struct(key, value):
    struct = DataStruct()
    struct.set(key, value)
    return struct


def _amr(interests):
    scores = max_interest_scores(interests, ITEMS)
    scores[:, 0] = -torch.inf
    merged = torch.topk(scores, 4, dim=-1).indices
    per_interest = per_interest_topk(interests, ITEMS, 4)
    counts = amr_counts(merged, per_interest, TARGET_ROWS, TARGET_ITEMS, len(ITEMS), [2, 4])
    return counts, AMR(METRIC_CONFIG).calculate_metric(_struct(AMR_KEY, counts.reshape(len(counts), -1)))


def test_amr_disjoint_interests_give_the_expected_share():
    counts, result = _amr(torch.tensor([[A, B]] * 3))
    # N=2: M = {1, 4}, L_a = {1, 2}, L_b = {4, 5}.
    #   user 0: |M∩T| = 1 (item 4), best single = |L_b∩T| = 2 -> 1 - 2/1 < 0 -> clipped to 0
    #   user 1: |M∩T| = 2, |L_a∩T| = 1, |L_b∩T| = 1 -> 1 - 1/2 = 0.5
    #   user 2: |M∩T| = 0 -> left out.            AMR@2 = (0 + 0.5) / 2 = 0.25
    # N=4: M = {1, 4, 2, 5}, L_a = {1, 2, 3, 6}, L_b = {4, 5, 6, 3}.
    #   user 0: |M∩T| = 3, best = |L_b∩T| = 2 -> 1/3;  user 1: 2 hits, best 1 -> 0.5;  user 2 left out.
    #   AMR@4 = (1/3 + 1/2) / 2 = 5/12
    assert counts[:, 0].tolist() == [[1, 2], [2, 1], [0, 0]]
    assert counts[:, 1].tolist() == [[3, 2], [2, 1], [0, 1]]
    assert result["amr@2"] == pytest.approx(0.25)
    assert result["amr@4"] == pytest.approx(5 / 12)


def test_amr_collapsed_interests_give_zero():
    counts, result = _amr(torch.tensor([[A, A, A]] * 3))
    assert torch.equal(counts[..., 0], counts[..., 1])
    assert result == {"amr@2": 0.0, "amr@4": 0.0}


def test_amr_single_vector_model_gives_zero():
    scores = max_interest_scores(torch.tensor([[A, B]] * 3), ITEMS)
    scores[:, 0] = -torch.inf
    merged = torch.topk(scores, 4, dim=-1).indices
    counts = amr_counts(merged, None, TARGET_ROWS, TARGET_ITEMS, len(ITEMS), [2, 4])
    assert AMR(METRIC_CONFIG).calculate_metric(_struct(AMR_KEY, counts.reshape(3, -1))) == {"amr@2": 0.0, "amr@4": 0.0}


def test_per_interest_topk_is_the_same_in_small_blocks():
    gen = torch.Generator().manual_seed(3)
    interests = torch.randn(5, 3, 8, generator=gen)
    items = torch.randn(1000, 8, generator=gen)
    dense = torch.einsum("bkd,nd->bkn", interests, items)
    dense[:, :, 0] = -torch.inf
    expected = torch.topk(dense, 20, dim=-1).indices
    # budget 1 -> blocks of 20 items: 50 blocks, never more than 5 * 3 * 40 scores at once
    assert torch.equal(per_interest_topk(interests, items, 20, budget=1), expected)
    assert torch.equal(per_interest_topk(interests, items, 20), expected)


def test_cur_hand_built():
    # categories: items 1, 2 -> 1; items 3, 4 -> 2; items 5, 6 -> 3; item 7 -> 0 (no category)
    category = torch.tensor([0, 1, 1, 2, 2, 3, 3, 0])
    merged = torch.tensor([[1, 4, 2, 5]] * 3)
    target_rows = torch.tensor([0, 0, 0, 1, 1, 2, 2])
    target_items = torch.tensor([2, 4, 5, 4, 6, 6, 7])
    # history: user 0 item 1 (cat 1); user 1 items 3, 5 (cats 2, 3); user 2 item 1 (cat 1)
    history_rows = torch.tensor([0, 1, 1, 2])
    history_items = torch.tensor([1, 3, 5, 1])
    unseen = unseen_category_targets(target_rows, category[target_items], history_rows, category[history_items])
    # user 0: item 2 has the history's category 1 -> excluded; U = {4, 5}
    # user 1: cats 2 and 3 both in the history -> U empty -> user left out of the average
    # user 2: item 6 (cat 3) unseen; item 7 has no category -> U = {6}
    assert unseen.tolist() == [False, True, True, False, False, True, False]
    counts = cur_counts(merged, target_rows, target_items, unseen, len(category), [2, 4])
    # N=2: M = {1, 4}: user 0 finds 4 -> 1/2; user 2 finds nothing -> 0.   CUR@2 = (1/2 + 0) / 2 = 1/4
    # N=4: M = {1, 4, 2, 5}: user 0 finds 4, 5 -> 1; user 2 -> 0.          CUR@4 = (1 + 0) / 2 = 1/2
    assert counts.tolist() == [[2, 1, 2], [0, 0, 0], [1, 0, 0]]
    result = CUR(METRIC_CONFIG).calculate_metric(_struct(CUR_KEY, counts))
    assert result["cur@2"] == pytest.approx(0.25)
    assert result["cur@4"] == pytest.approx(0.5)


def test_sasrec_gets_amr_exactly_zero_and_cur_as_valid_metric(in_tmp):
    result = run_recbole_gemirec(
        model="SASRec", dataset="tiny", config_file_list=[USER_PROTOCOL, TINY_YAML],
        config_dict=tiny_config(metrics=["Recall", "Hit", "AMR", "CUR"], category_field="category",
                                valid_metric="CUR@10", epochs=1),
        saved=False,
    )
    for part in ("best_valid_result", "test_result"):
        assert result[part]["amr@5"] == 0.0 and result[part]["amr@10"] == 0.0
        assert 0.0 <= result[part]["cur@10"] <= 1.0 and "cur@5" in result[part]
    assert result["best_valid_score"] == result["best_valid_result"]["cur@10"]
    assert result["valid_score_bigger"] is True


class FixedInterests(MultiInterestRecommender):
    """Test model: its K interests are the embeddings of the user's K most recent history items
    (``collapsed: True``: their mean, repeated K times)."""

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.k = 3
        self.collapsed = bool(config["collapsed"])
        self.item_embedding = nn.Embedding(self.n_items, 16)
        nn.init.normal_(self.item_embedding.weight, generator=torch.Generator().manual_seed(0))
        self.loss_fct = nn.CrossEntropyLoss()

    def interest_vectors(self, interaction):
        seq, length = interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN]
        positions = (length.unsqueeze(1) - 1 - torch.arange(self.k, device=seq.device)).clamp(min=0)
        vectors = self.item_embedding(seq.gather(1, positions))
        if self.collapsed:
            vectors = vectors.mean(dim=1, keepdim=True).expand(-1, self.k, -1)
        return vectors

    def calculate_loss(self, interaction):
        return self.loss_fct(self.full_sort_predict(interaction), interaction[self.ITEM_ID])


def _fixed_interest_run(collapsed, valid_metric="AMR@10"):
    config = Config(
        model=FixedInterests, dataset="tiny", config_file_list=[USER_PROTOCOL, TINY_YAML],
        config_dict=tiny_config(metrics=["Recall", "Hit", "AMR", "CUR"], category_field="category",
                                valid_metric=valid_metric, collapsed=collapsed, epochs=1, loss_type="CE"),
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = FixedInterests(config, train_data.dataset)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    score, result = trainer.fit(train_data, valid_data, saved=False)
    return trainer, model, valid_data, score, result


def _brute_force_amr(model, valid_data, topk):
    """AMR from dense per-user score matrices, straight from the definition."""
    per_n = {n: [] for n in topk}
    model.eval()
    with torch.no_grad():
        for interaction, _, positive_u, positive_i in valid_data:
            interests = model.interest_vectors(interaction)
            dense = torch.einsum("bkd,nd->bkn", interests, model.item_embeddings())
            dense[:, :, 0] = -torch.inf
            for row in range(len(interests)):
                targets = set(positive_i[positive_u == row].tolist())
                merged = dense[row].max(dim=0).values
                for n in topk:
                    m_hits = len(targets & set(torch.topk(merged, n).indices.tolist()))
                    if m_hits == 0:
                        continue
                    best = max(len(targets & set(torch.topk(dense[row, k], n).indices.tolist()))
                               for k in range(dense.shape[1]))
                    per_n[n].append(max(0.0, 1 - best / m_hits))
    return {f"amr@{n}": sum(v) / len(v) for n, v in per_n.items()}


def test_multi_interest_amr_matches_brute_force_and_is_the_valid_metric(in_tmp):
    trainer, model, valid_data, score, result = _fixed_interest_run(collapsed=False)
    assert score == result["amr@10"]
    expected = _brute_force_amr(model, valid_data, [5, 10])
    assert result["amr@5"] == pytest.approx(expected["amr@5"], abs=1e-4)
    assert result["amr@10"] == pytest.approx(expected["amr@10"], abs=1e-4)
    assert result["amr@10"] > 0.05  # distinct interests reach targets the best single one misses
    # evaluating twice gives the same figures: per-batch extras are cleared, not accumulated
    assert trainer.evaluate(valid_data, load_best_model=False) == trainer.evaluate(valid_data, load_best_model=False)


def test_multi_interest_collapsed_interests_give_amr_zero(in_tmp):
    _, _, _, _, result = _fixed_interest_run(collapsed=True)
    assert result["amr@5"] == 0.0 and result["amr@10"] == 0.0
    assert result["hit@10"] > 0


def test_cur_without_category_field_is_a_config_error(in_tmp):
    with pytest.raises(ConfigError, match="category_field"):
        run_recbole_gemirec(
            model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
            config_dict=tiny_config(metrics=["Recall", "CUR"], valid_metric="Recall@10"), saved=False,
        )


def test_category_field_missing_from_item_data_is_a_config_error(in_tmp):
    with pytest.raises(ConfigError, match=r"category_field='nope'.*loaded item fields"):
        run_recbole_gemirec(
            model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
            config_dict=tiny_config(metrics=["Recall", "CUR"], valid_metric="Recall@10", category_field="nope"),
            saved=False,
        )


def test_amr_with_sampled_evaluation_is_a_config_error(in_tmp):
    eval_args = {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "uni100"}
    with pytest.raises(ConfigError, match="mode"):
        run_recbole_gemirec(
            model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
            config_dict=tiny_config(metrics=["Recall", "AMR"], valid_metric="Recall@10", eval_args=eval_args),
            saved=False,
        )


def test_cli_prints_amr_and_cur_under_loo(in_tmp):
    from conftest import run_cli

    done = run_cli(["--model=SASRec", "--protocol=loo", "--metrics=['Recall','NDCG','Hit','AMR','CUR']",
                    "--category_field=genre", "--valid_metric=AMR@10", "--no_save"], cwd=in_tmp)
    assert done.returncode == 0, done.stderr[-2000:]
    # loo has one target per user: a merged hit is always in the list of the interest scoring it best
    assert "'amr@10': 0.0" in done.stdout and "'cur@5':" in done.stdout


def _plain_recbole_setup(metrics):
    """SASRec on the tiny data (RecBole's loo protocol) with ``metrics``, and RecBole's own loaders."""
    from recbole.utils import get_model as recbole_get_model

    config = Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML],
                    config_dict=tiny_config(metrics=metrics, category_field="category", valid_metric="Recall@10"))
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _, test_data = data_preparation(config, dataset)
    model = recbole_get_model("SASRec")(config, train_data.dataset)
    return config, model, train_data, test_data


@pytest.mark.parametrize("metric", ["AMR", "CUR"])
def test_recbole_plain_trainer_raises_instead_of_reporting_zero(in_tmp, metric):
    from recbole.trainer import Trainer

    from recbole_gemirec.errors import MultiInterestCollectionMissing

    config, model, train_data, test_data = _plain_recbole_setup(["Recall", metric])
    with pytest.raises(MultiInterestCollectionMissing, match=rf"{metric}@N .*recbole_gemirec\.utils\.get_trainer"):
        Trainer(config, model).evaluate(test_data, load_best_model=False)
    # the extension's trainer computes it on the same model and data
    ours = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    ours.eval_collector.data_collect(train_data)
    result = ours.evaluate(test_data, load_best_model=False)
    assert f"{metric.lower()}@10" in result and 0.0 <= result[f"{metric.lower()}@10"] <= 1.0
