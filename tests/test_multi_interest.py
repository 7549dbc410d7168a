"""Scoring shared by every multi-interest model (model/multi_interest.py)."""

import pytest
import torch

from recbole_gemirec.model.multi_interest import catalogue_logsumexp, max_interest_scores


@pytest.mark.parametrize("block", [1, 7, 16, 50, 65536])
def test_block_scoring_is_the_max_over_interests_of_every_item(block):
    torch.manual_seed(0)
    queries, items = torch.randn(7, 3, 8), torch.randn(50, 8)
    expected = torch.stack([queries[:, k] @ items.T for k in range(3)]).amax(dim=0)
    scores = max_interest_scores(queries, items, block=block)
    assert scores.shape == (7, 50)
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-5)
    if block >= 50:  # one block: the product itself, nothing copied
        assert torch.equal(scores, (queries.reshape(21, 8) @ items.T).view(7, 3, 50).amax(dim=1))


def test_catalogue_logsumexp_in_blocks_is_the_full_one():
    torch.manual_seed(1)
    queries, items = torch.randn(4, 2, 8), torch.randn(30, 8)
    full = torch.logsumexp(torch.einsum("bkd,nd->bkn", queries, items), dim=-1)
    torch.testing.assert_close(catalogue_logsumexp(queries, items, block=7), full, rtol=1e-5, atol=1e-5)
