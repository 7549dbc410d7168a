"""The causal encoder shared by the user tower and the generator (model/causal_encoder.py)."""

import pytest
import torch

from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last


@pytest.mark.parametrize("layers", [1, 3])
def test_encode_last_equals_the_full_stack_read_at_the_last_position(layers):
    torch.manual_seed(0)
    blocks = torch.nn.ModuleList([CausalSelfAttentionBlock(16, 4, 0.0) for _ in range(layers)]).eval()
    x = torch.randn(9, 7, 16)
    last = torch.tensor([0, 6, 3, 1, 5, 2, 4, 6, 0])  # first, last and inner positions
    full = x
    for block in blocks:
        full = block(full)
    expected = full[torch.arange(9), last]
    torch.testing.assert_close(encode_last(blocks, x, last), expected, rtol=1e-5, atol=1e-5)
    # what comes after a row's last position (padding) does not change its state
    changed = x.clone()
    changed[0, 1:] = 100.0
    torch.testing.assert_close(encode_last(blocks, changed, last)[0], expected[0], rtol=1e-5, atol=1e-5)
    # last=None: every row read at its final position, without a mask
    torch.testing.assert_close(encode_last(blocks, x), full[:, -1], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(encode_last(blocks, x), encode_last(blocks, x, torch.full((9,), 6)), rtol=1e-6, atol=1e-6)
