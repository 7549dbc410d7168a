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
        self.serving_attention = None  # set by freeze_for_serving (plain attributes: not in the state dict)

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
        normed = self.norm1(x)
        if last is None:
            x_at, normed_at, visible = x[:, -1], normed[:, -1], None
        else:
            rows = torch.arange(batch, device=x.device)
            x_at, normed_at = x[rows, last], normed[rows, last]
            visible = torch.arange(length, device=x.device) <= last.view(-1, 1, 1)  # [B, 1, T]
        if self.serving_attention is not None:
            attended = self._folded_attention(normed, normed_at, visible)
        else:
            attended = self._attention_at(normed, normed_at, visible)
        out = x_at + self.dropout(attended)
        return out + self.dropout(self.mlp(self.norm2(out)))

    def _attention_at(self, normed, normed_at, visible):
        """Multi-head attention of one query position per row ``normed_at [B, hidden]`` over ``normed [B, T,
        hidden]`` (``visible [B, 1, T]`` or ``None``: every position), projected: ``[B, hidden]``."""
        hidden, weight, bias = self.hidden, self.qkv.weight, self.qkv.bias
        q = F.linear(normed_at, weight[:hidden], bias[:hidden]).view(-1, self.heads, 1, self.head_size)
        k, v = F.linear(normed, weight[hidden:], bias[hidden:]).split(hidden, dim=-1)
        k, v = (t.unflatten(-1, (self.heads, self.head_size)).transpose(1, 2) for t in (k, v))
        mask = None if visible is None else visible.unsqueeze(1)  # [B, 1, 1, T]
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(attended.reshape(-1, hidden))

    def _folded_attention(self, normed, normed_at, visible):
        """:meth:`_attention_at` with the matrices of :meth:`freeze_for_serving`: each head's query is mapped to
        the input space (``[B, heads, hidden]``), scores the positions' inputs directly and averages them; the
        average goes through the head's value and output projections at once. Keys and values are never
        computed per position."""
        key_query, key_bias, value_out, out_bias = self.serving_attention
        queries = (normed_at @ key_query + key_bias).view(-1, self.heads, self.hidden)
        scores = queries @ normed.transpose(1, 2)  # [B, heads, T], already scaled
        if visible is not None:
            scores = scores.masked_fill(~visible, float("-inf"))
        averaged = torch.softmax(scores, dim=-1) @ normed  # [B, heads, hidden]
        return averaged.reshape(-1, self.heads * self.hidden) @ value_out + out_bias

    @torch.no_grad()
    def freeze_for_serving(self):
        """Fold the attention of :meth:`forward_at` into two matrices, for an instance whose weights are final (a
        served model). Head h's score of position t is ``(W_q,h n + b_q,h) . (W_k,h n_t + b_k,h) / sqrt(d)``:
        the ``b_k,h`` term is the same at every position, so the softmax drops it, and the rest is ``q'_h . n_t``
        with ``q'_h = n (W_q,h^T W_k,h) / sqrt(d) + b_q,h W_k,h / sqrt(d)``: one ``[hidden, heads * hidden]``
        matrix. The head's output is ``W_v,h c_h + b_v,h`` with ``c_h`` the average of the ``n_t`` (the weights sum
        to 1), and the projection after it is linear too: ``W_o,h W_v,h`` is one ``[heads * hidden, hidden]``
        matrix, the biases one vector. The same values up to float rounding, with fewer operations per request
        and no per-position key or value. The two matrices hold ``2 * heads * hidden**2`` floats against the
        ``4 * hidden**2`` of W_q, W_k, W_v and W_o: as many at 2 heads (the user tower's default), twice at 4."""
        hidden, heads, size = self.hidden, self.heads, self.head_size
        w_q, w_k, w_v = (w.view(heads, size, hidden) for w in self.qkv.weight.split(hidden))
        b_q, _, b_v = self.qkv.bias.split(hidden)
        scale = size ** -0.5
        key_query = scale * torch.einsum("hsi,hsj->ihj", w_q, w_k).reshape(hidden, heads * hidden)
        key_bias = scale * torch.einsum("hs,hsj->hj", b_q.view(heads, size), w_k).reshape(heads * hidden)
        w_o = self.proj.weight.view(hidden, heads, size)
        value_out = torch.einsum("ohs,hsj->hjo", w_o, w_v).reshape(heads * hidden, hidden)
        out_bias = self.proj.weight @ b_v + self.proj.bias
        self.serving_attention = (key_query, key_bias, value_out, out_bias)


def encode_last(blocks, x, last=None):
    """A causal stack's output at position ``last [B]`` of each row (``None``: the final position of every row),
    ``[B, hidden]``: every block but the last over all positions, the last one only where it is read
    (:meth:`CausalSelfAttentionBlock.forward_at`). The user tower and the generator read one state per
    sequence, so this is their encoder."""
    for block in blocks[:-1]:
        x = block(x)
    return blocks[-1].forward_at(x, last)


def freeze_for_serving(blocks):
    """Fold the attention of the block :func:`encode_last` reads at one position (the last) for a served model
    (:meth:`CausalSelfAttentionBlock.freeze_for_serving`); the others run over every position as they are."""
    blocks[-1].freeze_for_serving()
