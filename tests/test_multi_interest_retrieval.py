"""Multi-interest retrieval (MIRM, DESIGN §2.3) and the interest negative sampler."""

import pytest
import torch
import torch.nn.functional as F

from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower, in_batch_logits, retrieval_loss
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


def test_in_batch_logits_mask_repeated_targets():
    queries, targets = torch.randn(3, 4), torch.randn(3, 4)
    logits = in_batch_logits(queries, targets, torch.tensor([7, 8, 7]))
    assert torch.isinf(logits[0, 2]) and torch.isinf(logits[2, 0])
    assert torch.isfinite(logits.diagonal()).all()
    assert logits[0, 1] == pytest.approx((queries[0] @ targets[1]).item())


def test_retrieval_loss_is_softmax_over_batch_items_and_interest_negatives():
    g = torch.Generator().manual_seed(0)
    query, target = torch.randn(2, 4, generator=g), torch.randn(2, 4, generator=g)
    negatives = torch.randn(2, 3, 4, generator=g)
    loss = retrieval_loss(query, target, torch.tensor([1, 2]), negatives)
    expected = 0.0
    for b in range(2):
        logits = torch.cat([query[b] @ target.t(), negatives[b] @ target[b]])
        expected += F.cross_entropy(logits.unsqueeze(0), torch.tensor([b])).item() / 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)


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
