"""The causal transformer encoder shared by the user tower and the interest generator (docs/design.md §2.2-2.3).

Sequences arrive as RecBole stores them: left-aligned, zero-padded at the end. With a causal mask a real
position never attends to a later one, so padding (always later) needs no extra mask. Both users of the
encoder read one state per sequence (at the last real item), so :func:`encode_last` computes the last
block for that position only.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class CausalSelfAttentionBlock(nn.Module):
    """Pre-norm transformer block with causal multi-head self-attention."""

    def __init__(self, hidden, heads, dropout):
        super().__init__()
        self.heads = heads
        self.hidden, self.head_size = hidden, hidden // heads  # ints: a trace keeps them constant
        self.norm1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.norm2 = nn.LayerNorm(hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x):
        batch, length, hidden = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(hidden, dim=-1)
        q, k, v = (t.view(batch, length, self.heads, hidden // self.heads).transpose(1, 2) for t in (q, k, v))
        # No dropout on the attention weights: it forces torch's slow "math" attention kernel on CPU
        # (a Bernoulli mask per score) for little regularisation; the residual branches keep theirs.
        attended = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.dropout(self.proj(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.mlp(self.norm2(x)))

    def forward_at(self, x, last=None):
        """The block's output at one position per row, ``last [B]``, as ``[B, hidden]``: the same values as
        ``forward(x)[rows, last]`` (keys and values from every position up to ``last``), with the query,
        projection and MLP computed for B rows instead of B * T. ``last=None``: the final position of every
        row (sequences without padding), which every position is visible to, so no mask is built (a served
        history of full length: fewer operations per request)."""
        batch, length = x.shape[0], x.shape[1]
        hidden = self.hidden
        normed = self.norm1(x)
        weight, bias = self.qkv.weight, self.qkv.bias
        if last is None:
            x_at, normed_at, visible = x[:, -1], normed[:, -1], None
        else:
            rows = torch.arange(batch, device=x.device)
            x_at, normed_at = x[rows, last], normed[rows, last]
            visible = torch.arange(length, device=x.device) <= last.view(-1, 1, 1, 1)  # [B, 1, 1, T]
        q = F.linear(normed_at, weight[:hidden], bias[:hidden]).view(-1, self.heads, 1, self.head_size)
        k, v = F.linear(normed, weight[hidden:], bias[hidden:]).split(hidden, dim=-1)
        k, v = (t.unflatten(-1, (self.heads, self.head_size)).transpose(1, 2) for t in (k, v))
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=visible)
        out = x_at + self.dropout(self.proj(attended.reshape(-1, hidden)))
        return out + self.dropout(self.mlp(self.norm2(out)))


def encode_last(blocks, x, last=None):
    """A causal stack's output at position ``last [B]`` of each row (``None``: the final position of every row),
    ``[B, hidden]``: every block but the last over all positions, the last one only where it is read
    (:meth:`CausalSelfAttentionBlock.forward_at`). The user tower and the generator read one state per
    sequence, so this is their encoder."""
    for block in blocks[:-1]:
        x = block(x)
    return blocks[-1].forward_at(x, last)
