"""The causal encoder shared by the user tower and the generator (model/causal_encoder.py)."""

import pytest
import torch

from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last, freeze_for_serving


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


@pytest.mark.parametrize("heads", [1, 2, 4])
def test_a_frozen_block_folds_its_attention_and_reads_the_same_states(heads):
    """freeze_for_serving: the query mapped through the keys' weights, values and projection in one matrix; the
    states equal the unfolded block's (float rounding aside), with and without a mask, and padding after the
    read position still changes nothing."""
    torch.manual_seed(1)
    blocks = torch.nn.ModuleList([CausalSelfAttentionBlock(16, heads, 0.0) for _ in range(2)]).eval()
    with torch.no_grad():  # biases of an initialised layer are small: make every term of the fold count
        for parameter in blocks.parameters():
            parameter.add_(0.3 * torch.randn_like(parameter))
    x = torch.randn(9, 7, 16)
    last = torch.tensor([0, 6, 3, 1, 5, 2, 4, 6, 0])
    with torch.no_grad():
        expected, expected_final = encode_last(blocks, x, last), encode_last(blocks, x)
        freeze_for_serving(blocks)
        assert blocks[-1].serving_attention is not None and blocks[0].serving_attention is None
        folded, folded_final = encode_last(blocks, x, last), encode_last(blocks, x)
        changed = x.clone()
        changed[0, 1:] = 100.0
        padded = encode_last(blocks, changed, last)[0]
    torch.testing.assert_close(folded, expected, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(folded_final, expected_final, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(padded, expected[0], rtol=1e-5, atol=1e-5)
