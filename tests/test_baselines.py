"""Tests of the multi-interest baselines ComiRec-SA, ComiRec-DR, MIND and REMI.

For each model: one epoch through the command line, the [B, K, D] interest tensor, normalisation of the
routing / attention weights over the axis its paper uses, padding that never leaks into the interests,
a loss that falls on a fixed batch, and ``full_sort_predict`` = max over the per-interest scores. The
shared building blocks (readout, losses, squash, routing regulariser) are checked against their
formulas.
"""

import math
import os

import pytest
import torch

from conftest import TINY_YAML, read_json, run_cli, tiny_config
from recbole_gemirec.model.layers import (
    SharedNegativeSoftmaxLoss, interest_readout, routing_variance_penalty, squash,
)

MODELS = ["ComiRecSA", "ComiRecDR", "MIND", "REMI"]
# Axis of the [B, K, L] weights that sums to 1, as each paper defines it: attention heads normalise over
# the history positions (ComiRec Eq. 5), capsule routing over the interests (ComiRec Alg. 1, MIND Eq. 5).
POSITIONS, INTERESTS = 2, 1
PAPER_AXIS = {"ComiRecSA": POSITIONS, "REMI": POSITIONS, "ComiRecDR": INTERESTS, "MIND": INTERESTS}
SMALL = {"train_batch_size": 64, "neg_sample_num": 20}

_built = {}


def build(model_name, fresh=False, **overrides):
    """``(model, batch)``: the model on the tiny data and its first training batch (cached; ``fresh``
    builds new weights, seeded, for tests that train)."""
    from recbole_gemirec.config import Config
    from recbole.utils import init_seed
    from recbole_gemirec.utils import create_dataset, data_preparation, get_model

    key = (model_name, tuple(sorted(overrides.items())))
    if key not in _built:
        config = Config(model=model_name, dataset="tiny", config_file_list=[TINY_YAML],
                        config_dict=tiny_config(**{**SMALL, **overrides}))
        init_seed(config["seed"], config["reproducibility"])
        dataset = create_dataset(config)
        train_data, _, _ = data_preparation(config, dataset)
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(model_name)(config, train_data._dataset)
        batch = next(iter(train_data))
        _built[key] = (model, batch, config, train_data._dataset)
    model, batch, config, dataset = _built[key]
    if fresh:
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(model_name)(config, dataset)
    return model, batch


def history_mask(model, batch):
    mask = batch[model.ITEM_SEQ] != 0
    assert mask.any() and (~mask).any(), "the batch must mix real and padded positions"
    return mask


@pytest.mark.parametrize("model_name", MODELS)
def test_one_cli_epoch_trains_and_tests(model_name, tmp_path):
    result_file = tmp_path / "result.json"
    done = run_cli([f"--model={model_name}", "--epochs=1", "--train_batch_size=64", "--neg_sample_num=20",
                    f"--result_file={result_file}"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = read_json(result_file)
    assert result["model"] == model_name
    assert set(result["test_result"]) >= {"recall@10", "ndcg@10", "hit@10"}
    assert all(0.0 <= value <= 1.0 for value in result["test_result"].values())
    assert os.path.isfile(tmp_path / result["checkpoint"])


@pytest.mark.parametrize("model_name", MODELS)
def test_interests_have_shape_batch_k_d(model_name):
    model, batch = build(model_name, interest_num=3, embedding_size=16)
    interests = model.interest_vectors(batch)
    weights = model.routing_weights(batch)
    batch_size, length = batch[model.ITEM_SEQ].shape
    assert interests.shape == (batch_size, 3, 16)
    assert weights.shape == (batch_size, 3, length)
    assert model.item_embeddings().shape == (model.n_items, 16)
    assert torch.isfinite(interests).all()


@pytest.mark.parametrize("model_name", MODELS)
def test_routing_weights_are_normalised_over_the_papers_axis(model_name):
    model, batch = build(model_name)
    mask = history_mask(model, batch)
    weights = model.routing_weights(batch).detach()
    assert (weights >= 0).all()
    assert torch.all(weights.masked_select(~mask.unsqueeze(1).expand_as(weights)) < 1e-6), "padded positions get weight"
    if PAPER_AXIS[model_name] == POSITIONS:
        torch.testing.assert_close(weights.sum(dim=2), torch.ones(weights.shape[:2]))
    else:
        per_position = weights.sum(dim=1)
        torch.testing.assert_close(per_position[mask], torch.ones(int(mask.sum())))
    assert model.weight_axis == ("positions" if PAPER_AXIS[model_name] == POSITIONS else "interests")


@pytest.mark.parametrize("model_name", MODELS)
def test_padding_row_never_reaches_the_interests(model_name):
    model, batch = build(model_name)
    history_mask(model, batch)
    model.eval()
    with torch.no_grad():
        before = model.interest_vectors(batch).clone()
        saved = model.item_embedding.weight[0].clone()
        model.item_embedding.weight[0] = torch.randn_like(saved) * 5
        after = model.interest_vectors(batch)
        model.item_embedding.weight[0] = saved
    torch.testing.assert_close(after, before)


@pytest.mark.parametrize("model_name", MODELS)
def test_loss_falls_on_a_fixed_batch(model_name):
    model, batch = build(model_name, fresh=True)
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(20):
        torch.manual_seed(0)  # the same shared negatives every step: one fixed objective
        loss = model.calculate_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(math.isfinite(value) for value in losses)
    assert losses[-1] < 0.6 * losses[0], losses


@pytest.mark.parametrize("model_name", MODELS)
def test_full_sort_predict_is_the_max_over_interests(model_name):
    model, batch = build(model_name)
    model.eval()
    with torch.no_grad():
        scores = model.full_sort_predict(batch)
        interests = model.interest_vectors(batch)
        per_interest = torch.einsum("bkd,nd->bkn", interests, model.item_embedding.weight)
        expected = per_interest.max(dim=1).values
        targets = batch[model.ITEM_ID]
        point_scores = model.predict(batch)
    assert scores.shape == (len(targets), model.n_items)
    torch.testing.assert_close(scores, expected)
    torch.testing.assert_close(point_scores, expected[torch.arange(len(targets)), targets])
    # max over K is not just the first interest: some item is won by another interest
    assert (per_interest.argmax(dim=1) != 0).any()


def test_comirecdr_routing_logits_start_at_zero():
    model, batch = build("ComiRecDR")
    mask = history_mask(model, batch)
    model.routing_iterations = 1
    try:
        coupling = model.routing_weights(batch).detach()
    finally:
        model.routing_iterations = 3
    expected = torch.full_like(coupling, 1.0 / model.interest_num) * mask.unsqueeze(1)
    torch.testing.assert_close(coupling, expected)


def test_mind_dynamic_interest_number_repeats_the_first_interest():
    model, batch = build("MIND", dynamic_interest_num=True)
    lengths = batch[model.ITEM_SEQ_LEN]
    with torch.no_grad():
        interests = model.interest_vectors(batch)
    expected_counts = torch.clamp(torch.floor(torch.log2(lengths.float())), 1, model.interest_num).long()
    assert (expected_counts < model.interest_num).any()
    for row, count in enumerate(expected_counts.tolist()):
        for k in range(count, model.interest_num):
            torch.testing.assert_close(interests[row, k], interests[row, 0])
    active = model.active_interests(lengths)
    torch.testing.assert_close(active.sum(dim=1), expected_counts)


def test_remi_adds_the_routing_regulariser_and_hard_negatives():
    model, batch = build("REMI")
    assert model.loss_fct.beta == 10.0 and model.routing_reg_weight == 100.0
    weights = model.routing_weights(batch)
    torch.testing.assert_close(model.regularisation(weights), 100.0 * routing_variance_penalty(weights, 64))


def test_a_setting_missing_from_the_configuration_is_the_models_yaml_default():
    """One place for defaults: properties/model/<Model>.yaml, also where a configuration did not load it."""
    model, _ = build("REMI")
    missing = {}.get  # a configuration without the key answers None, as RecBole's Config does

    class Partial:
        def __getitem__(self, key):
            return missing(key)

    assert model.setting(Partial(), "routing_reg_weight") == 100
    assert model.setting(Partial(), "add_position") is True  # inherited from ComiRecSA's code, REMI's YAML
    assert model.setting({"routing_reg_weight": 3.0}, "routing_reg_weight") == 3.0
    assert model.setting(Partial(), "not_a_key") is None


def test_hard_readout_trains_only_the_selected_interest():
    torch.manual_seed(1)
    interests = torch.randn(5, 4, 8, requires_grad=True)
    target = torch.randn(5, 8)
    user, weights = interest_readout(interests, target)
    best = torch.einsum("bkd,bd->bk", interests, target).argmax(dim=1)
    torch.testing.assert_close(user, interests[torch.arange(5), best])
    torch.testing.assert_close(weights, torch.nn.functional.one_hot(best, 4).float())
    user.sum().backward()
    grad_norm = interests.grad.norm(dim=-1)
    assert torch.all((grad_norm > 0) == torch.nn.functional.one_hot(best, 4).bool())


def test_label_aware_attention_power():
    torch.manual_seed(2)
    interests = torch.randn(3, 4, 8)
    target = torch.randn(3, 8)
    scores = torch.einsum("bkd,bd->bk", interests, target)
    mean_user, mean_weights = interest_readout(interests, target, power=0)
    torch.testing.assert_close(mean_user, interests.mean(dim=1))
    _, weights_p1 = interest_readout(interests, target, power=1)
    torch.testing.assert_close(weights_p1, torch.softmax(scores, dim=1))
    _, weights_p2 = interest_readout(interests, target, power=2)
    assert torch.equal(weights_p2.argmax(dim=1), scores.argmax(dim=1)), "a negative score must not win under p = 2"
    mask = torch.tensor([[True, True, False, False]] * 3)
    _, masked = interest_readout(interests, target, power=1, interest_mask=mask)
    assert torch.all(masked[:, 2:] == 0)
    torch.testing.assert_close(masked.sum(dim=1), torch.ones(3))


def test_hard_negative_weighting_matches_its_definition():
    torch.manual_seed(3)
    positive = torch.randn(6)
    negative = torch.randn(6, 9)
    negative[0, 3] = -math.inf  # an accidental hit removed from row 0
    beta = 2.0
    loss = SharedNegativeSoftmaxLoss(100, beta=beta).loss_from_logits(positive, negative)
    expected = []
    for row in range(6):
        s = negative[row][torch.isfinite(negative[row])]
        w = torch.exp(beta * s) / torch.exp(beta * s).mean()
        expected.append(-torch.log(torch.exp(positive[row]) / (torch.exp(positive[row]) + (w * torch.exp(s)).sum())))
    torch.testing.assert_close(loss, torch.stack(expected).mean())
    plain = SharedNegativeSoftmaxLoss(100, beta=0).loss_from_logits(positive, negative)
    logits = torch.cat([positive.unsqueeze(1), negative], dim=1)
    torch.testing.assert_close(plain, torch.nn.functional.cross_entropy(logits, torch.zeros(6, dtype=torch.long)))
    assert loss > plain, "hard negatives weigh the high-scoring negatives up"


def test_sampled_negatives_are_shared_and_skip_the_target():
    torch.manual_seed(4)
    n_items, count = 40, 30
    table = torch.randn(n_items, 5)
    user = torch.randn(8, 5)
    positive = torch.randint(1, n_items, (8,))
    sampled = SharedNegativeSoftmaxLoss(n_items, sampled=True, neg_sample_num=count)
    assert not SharedNegativeSoftmaxLoss(n_items, sampled=True, neg_sample_num=n_items).sampled
    torch.manual_seed(5)
    logits = sampled.negative_logits(user, positive, table)
    torch.manual_seed(5)
    drawn = torch.randint(1, n_items, (count,))
    assert logits.shape == (8, count) and (drawn != 0).all()
    hit = drawn.unsqueeze(0) == positive.unsqueeze(1)
    assert hit.any()
    assert torch.isinf(logits[hit]).all() and torch.isfinite(logits[~hit]).all()
    torch.testing.assert_close(logits[~hit], (user @ table[drawn].t())[~hit])
    full = SharedNegativeSoftmaxLoss(n_items, sampled=False).negative_logits(user, positive, table)
    excluded = torch.isinf(full)
    assert excluded[:, 0].all() and excluded[torch.arange(8), positive].all() and excluded.sum() == 16


def test_squash_keeps_direction_and_bounds_the_norm():
    vectors = torch.randn(7, 3, 16) * torch.tensor([0.01, 1.0, 50.0]).view(1, 3, 1)
    squashed = squash(vectors)
    norm = vectors.norm(dim=-1)
    torch.testing.assert_close(squashed.norm(dim=-1), norm ** 2 / (1 + norm ** 2), rtol=1e-4, atol=1e-6)
    cosine = torch.nn.functional.cosine_similarity(squashed, vectors, dim=-1)
    torch.testing.assert_close(cosine, torch.ones_like(cosine))


def test_routing_regulariser_penalises_collapse():
    uniform = torch.full((2, 4, 5), 0.2)
    assert routing_variance_penalty(uniform, 64).item() == pytest.approx(0.0, abs=1e-12)
    one_hot = torch.zeros(2, 4, 5)
    one_hot[..., 0] = 1.0
    per_interest = (4 / 5) / 64  # sum_l (a_l - 1/5)^2 = (1 - 1/5)^2 + 4 / 25 = 4/5
    assert routing_variance_penalty(one_hot, 64).item() == pytest.approx(2 * 4 * per_interest ** 2)
