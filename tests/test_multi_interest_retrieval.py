"""Multi-interest retrieval (docs/design.md, multi-interest retrieval), the item softmax and the interest negative sampler."""

import pytest
import torch
import torch.nn.functional as F

from recbole_gemirec.model.layers.losses import SharedNegativeSoftmaxLoss
from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower
from recbole_gemirec.sampler import InterestNegativeSampler


def test_fusion_gives_one_query_per_interest():
    torch.manual_seed(0)
    fusion = InterestFusion(code_size=6, embedding_size=4)
    interests = torch.randn(2, 3, 6)
    user = torch.randn(2, 4)
    queries = fusion(interests, user)
    assert queries.shape == (2, 3, 4)
    assert not torch.allclose(queries[:, 0], queries[:, 1])
    same = fusion(interests[:, :1].expand(-1, 3, -1), user)
    assert torch.allclose(same[:, 0], same[:, 2])


def test_user_tower_reads_up_to_the_last_real_item():
    torch.manual_seed(0)
    tower = UserTower(8, max_length=5, layers=1, heads=2, dropout=0.0).eval()
    seq = torch.randn(2, 5, 8)
    lengths = torch.tensor([3, 5])
    base = tower(seq, lengths)
    changed = seq.clone()
    changed[0, 3:] = 9.0  # after user 0's last item
    assert torch.allclose(tower(changed, lengths)[0], base[0], atol=1e-6)


def test_user_tower_frozen_for_serving_adds_the_same_feature_embeddings_in_one_lookup():
    torch.manual_seed(0)
    tower = UserTower(8, max_length=5, layers=1, heads=2, dropout=0.0, feature_cardinalities=(3, 7, 2)).eval()
    seq, lengths = torch.randn(4, 5, 8), torch.tensor([1, 3, 5, 2])
    features = torch.tensor([[0, 6, 1], [2, 0, 0], [1, 3, 1], [2, 6, 0]])
    with torch.no_grad():
        base = tower(seq, lengths, features)
        tower.freeze_for_serving()
        assert tower.serving_features[0].shape == (12, 8)
        served = tower(seq, lengths, features)
    torch.testing.assert_close(served, base, rtol=1e-6, atol=1e-6)
    assert "serving_features" not in str(list(tower.state_dict()))  # the weights stay the model's own


def test_concat_fusion_is_the_mlp_alone_and_residual_adds_the_user_vector():
    torch.manual_seed(0)
    residual = InterestFusion(code_size=6, embedding_size=4)
    concat = InterestFusion(code_size=6, embedding_size=4, residual=False)
    concat.load_state_dict(residual.state_dict())
    interests, user = torch.randn(2, 3, 6), torch.randn(2, 4)
    assert torch.allclose(residual(interests, user) - concat(interests, user), user.unsqueeze(1).expand(-1, 3, -1))


def test_interest_id_embedding_separates_interests_with_equal_codewords():
    torch.manual_seed(0)
    fusion = InterestFusion(code_size=6, embedding_size=4, n_interests=3)
    fusion.interest_embedding.weight.data.normal_()
    same_codewords, user = torch.randn(2, 1, 6).expand(-1, 2, -1), torch.randn(2, 4)
    queries = fusion(same_codewords, user, torch.tensor([[0, 1], [0, 1]]))
    assert not torch.allclose(queries[:, 0], queries[:, 1])  # told apart by their ids alone
    plain = InterestFusion(code_size=6, embedding_size=4)
    plain.mlp.load_state_dict(fusion.mlp.state_dict())
    fusion.interest_embedding.weight.data.zero_()
    assert torch.allclose(fusion(same_codewords, user, torch.tensor([[0, 1], [0, 1]])), plain(same_codewords, user))


def test_history_input_widens_the_fusion_and_changes_the_query():
    torch.manual_seed(0)
    fusion = InterestFusion(code_size=6, embedding_size=4, history_size=5)
    interests, user = torch.randn(2, 3, 6), torch.randn(2, 4)
    history = torch.randn(2, 3, 5)
    assert fusion.mlp[0].in_features == 6 + 4 + 5
    assert not torch.allclose(fusion(interests, user, history=history), fusion(interests, user, history=history * 0))


@pytest.mark.parametrize("residual", [True, False])
def test_the_split_first_layer_is_the_mlp_over_the_concatenated_inputs(residual):
    torch.manual_seed(0)
    fusion = InterestFusion(code_size=6, embedding_size=4, residual=residual, n_interests=3, history_size=5)
    fusion.interest_embedding.weight.data.normal_()
    interests, user, history = torch.randn(2, 3, 6), torch.randn(2, 4), torch.randn(2, 3, 5)
    ids = torch.tensor([[0, 1, 2], [2, 2, 0]])
    inputs = torch.cat([interests + fusion.interest_embedding(ids), user.unsqueeze(1).expand(-1, 3, -1), history], -1)
    expected = fusion.mlp(inputs) + (user.unsqueeze(1) if residual else 0.0)
    assert torch.allclose(fusion(interests, user, ids, history), expected, atol=1e-6)
    # the interest's part looked up per interest, as a serving model keeps it, gives the same queries
    table = fusion.interest_hidden(interests.reshape(6, 6), ids.reshape(6)).reshape(2, 3, 4)
    assert torch.allclose(fusion.combine(table, user, history), expected, atol=1e-6)


def test_in_batch_softmax_masks_repeated_targets_and_corrects_by_log_popularity():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(5, 4, generator=g)
    user = torch.randn(3, 4, generator=g)
    positive = torch.tensor([1, 2, 1])
    log_q = torch.log(torch.tensor([0.1, 0.5, 0.2, 0.1, 0.1]))
    loss = SharedNegativeSoftmaxLoss(5, mode="in_batch", log_q=log_q)
    logits = loss.negative_logits(user, positive, table)
    assert torch.isinf(logits[0, 0]) and torch.isinf(logits[0, 2]) and torch.isinf(logits[2, 0])  # row's own item
    assert logits[0, 1].item() == pytest.approx((user[0] @ table[2]).item() - log_q[2].item(), rel=1e-6)
    expected = 0.0
    for b in range(3):
        row = torch.cat([(user[b] * table[positive[b]]).sum().view(1), logits[b][torch.isfinite(logits[b])]])
        expected += F.cross_entropy(row.unsqueeze(0), torch.tensor([0])).item() / 3
    assert loss(user, positive, table).item() == pytest.approx(expected, rel=1e-5)


def test_full_softmax_is_cross_entropy_over_the_catalogue_with_extra_negatives():
    g = torch.Generator().manual_seed(0)
    table, user = torch.randn(6, 4, generator=g), torch.randn(2, 4, generator=g)
    positive = torch.tensor([3, 5])
    extra = torch.tensor([[0.5, float("-inf")], [1.5, -0.5]])  # -inf: no negative in that slot
    loss = SharedNegativeSoftmaxLoss(6, mode="full")(user, positive, table, extra)
    expected = 0.0
    for b in range(2):
        row = torch.cat([(user[b] @ table[1:].t()), extra[b][torch.isfinite(extra[b])]])
        expected += F.cross_entropy(row.unsqueeze(0), torch.tensor([int(positive[b]) - 1])).item() / 2
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_sampler_hard_negatives_are_top_predictions_without_the_positive():
    sampler = InterestNegativeSampler(hard_num=2, easy_num=3, n_items=10)
    logits = torch.tensor([[0.0, 5.0, 4.0, 3.0, 1.0], [9.0, 1.0, 2.0, 3.0, 0.0]])
    positive = torch.tensor([1, 3])
    hard = sampler.hard(logits, positive)
    assert hard.tolist() == [[2, 3], [0, 2]]
    easy = sampler.easy(positive, lambda items: items * 100)
    assert easy.shape == (2, 3)
    assert bool(((easy >= 100) & (easy < 1000) & (easy % 100 == 0)).all())  # interests of items 1..9
    assert sampler.sample(logits, positive, lambda items: items).shape == (2, 5)


def test_easy_negatives_never_equal_the_positive_interest():
    torch.manual_seed(0)
    sampler = InterestNegativeSampler(hard_num=0, easy_num=50, n_items=10)
    positive = torch.tensor([1, 0])
    easy = sampler.easy(positive, lambda items: items % 2)  # two interests: every other draw is the positive's
    assert bool((easy != positive.unsqueeze(1)).all())
    assert bool((easy == -1).any()) and set(easy[0].tolist()) <= {-1, 0} and set(easy[1].tolist()) <= {-1, 1}
