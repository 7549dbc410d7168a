"""Multi-interest retrieval (MIRM, GemiRec paper §3.4; docs/design.md §2.3).

A user tower turns the behaviour sequence (and user features) into one user vector u. Each interest
chosen for the user is fused with u into its own query, u_k = z_fusion(concat(e_m, u)), and items are
scored by inner product, y = u_k . v_i. Training uses the interest m* of the target item; the softmax
loss (:class:`recbole_gemirec.model.layers.losses.SharedNegativeSoftmaxLoss`) puts the positive
(u_{m*} . v_target) against

* item negatives, scored with the same query: the whole catalogue (``item_negatives: full``, our
  default), sampled items, or the other targets of the batch with a log-Q correction (``in_batch``, the
  paper's in-batch negatives), and
* interest negatives: the same target item scored with queries built from other interests - hard ones
  (the generator's top predictions other than m*) and easy ones (random), see
  :class:`recbole_gemirec.sampler.InterestNegativeSampler`.

Interest negatives teach the fusion that the interest matters: the right item must score higher under
its own interest than under a wrong one, which keeps the K queries of a user apart.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last, freeze_for_serving


class UserTower(nn.Module):
    """Behaviour sequence (+ user-feature embedding) -> user vector u ``[B, D]``.

    A small causal transformer over the item embeddings with learned positions; u is the state at the
    last real item, plus the sum of the user-feature embeddings when features are used.
    """

    def __init__(self, embedding_size, max_length, layers, heads, dropout, feature_cardinalities=()):
        super().__init__()
        self.position_embedding = nn.Embedding(max_length, embedding_size)
        self.blocks = nn.ModuleList(
            [CausalSelfAttentionBlock(embedding_size, heads, dropout) for _ in range(layers)]
        )
        self.norm = nn.LayerNorm(embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.feature_embeddings = nn.ModuleList([nn.Embedding(n, embedding_size) for n in feature_cardinalities])
        self.serving_features = None  # set by freeze_for_serving

    def forward(self, seq_emb, item_seq_len, user_features=None):
        """u of sequences ``seq_emb [B, T, D]`` of lengths ``item_seq_len [B]``; ``None``: every sequence fills
        its T positions (no padding), read at the final one without a mask."""
        # the first L rows of the position table: position p's embedding, without an arange and a lookup
        x = self.dropout(seq_emb + self.position_embedding.weight[: seq_emb.shape[1]])
        last = None if item_seq_len is None else (item_seq_len - 1).clamp(min=0)
        user = self.norm(encode_last(self.blocks, x, last))
        if self.serving_features is not None:  # one lookup in the tables laid end to end (freeze_for_serving)
            table, offsets = self.serving_features
            return user + F.embedding(user_features + offsets, table).sum(dim=1)
        for i, emb in enumerate(self.feature_embeddings):
            user = user + emb(user_features[:, i])
        return user

    @torch.no_grad()
    def freeze_for_serving(self):
        """Fold the attention of the encoder's last block (:func:`~recbole_gemirec.model.causal_encoder.freeze_for_serving`)
        and lay the user-feature tables end to end (with each table's first row as an offset), so a request
        looks all its features up in one operation instead of one per feature; only for an instance that no
        longer trains (plain attributes, not in the state dict)."""
        freeze_for_serving(self.blocks)
        if len(self.feature_embeddings) > 1:
            tables = [emb.weight for emb in self.feature_embeddings]
            sizes = torch.tensor([0] + [t.shape[0] for t in tables[:-1]], device=tables[0].device)
            self.serving_features = (torch.cat(tables), sizes.cumsum(0))


class InterestFusion(nn.Module):
    """z_fusion: one query per interest, u_k = u + MLP(concat(e_m, u)) (``residual``, our default: every
    query starts from the user vector the retrieval stage learned) or u_k = MLP(concat(e_m, u)) (the
    paper's form, config ``fusion: concat``).

    Two inputs beyond the paper, each a config key (docs/gemirec.md):

    * ``n_interests > 0`` (``fusion_interest_embedding``): e_m is the interest's codewords plus a learned
      embedding of the interest id. The codewords are shaped by the dictionary's job (reconstructing
      items), the extra embedding by retrieval alone.
    * ``history_size > 0`` (``fusion_history``): the MLP also reads what the user did in that interest,
      ``h_m`` = the mean embedding of the history's items of interest m and log(1 + their count) (zeros
      for an interest absent from the history), so a query of a seen interest starts from the user's own
      items there, as a multi-interest extractor's interest vector does.
    """

    def __init__(self, code_size, embedding_size, residual=True, n_interests=0, history_size=0):
        super().__init__()
        self.residual = residual
        self.interest_embedding = nn.Embedding(n_interests, code_size) if n_interests > 0 else None
        self.code_size, self.embedding_size, self.history_size = code_size, embedding_size, history_size  # ints
        self.mlp = nn.Sequential(
            nn.Linear(code_size + embedding_size + history_size, embedding_size), nn.GELU(),
            nn.Linear(embedding_size, embedding_size),
        )

    def forward(self, interest_emb, user, interest_ids=None, history=None):
        """``interest_emb [B, K, C*d]`` (their ids ``[B, K]`` with an interest embedding; the history
        summary ``[B, K, history_size]`` with ``history_size``), ``user [B, D]`` -> queries ``[B, K, D]``."""
        return self.combine(self.interest_hidden(interest_emb, interest_ids), user, history)

    def interest_hidden(self, interest_emb, interest_ids=None):
        """The interest's share of the MLP's first layer, ``W_e e_m + b`` ``[..., D]``. The first layer is
        linear in the concatenation, so it splits into one part per input; this part depends on the
        interest alone, so a model whose weights are final can keep it per interest
        (:meth:`GemiRecQueries.freeze_for_serving`)."""
        if self.interest_embedding is not None:
            interest_emb = interest_emb + self.interest_embedding(interest_ids)
        first = self.mlp[0]
        return F.linear(interest_emb, first.weight[:, : self.code_size], first.bias)

    def combine(self, interest_hidden, user, history=None):
        """Queries ``[B, K, D]`` from :meth:`interest_hidden` ``[B, K, D]``: the user's (and history's) share
        of the first layer added (u's once per user, not once per interest), then the rest of the MLP."""
        first, start, end = self.mlp[0], self.code_size, self.code_size + self.embedding_size
        hidden = interest_hidden + F.linear(user, first.weight[:, start:end]).unsqueeze(1)
        if history is not None:
            hidden = hidden + F.linear(history, first.weight[:, end:])
        fused = self.mlp[2](self.mlp[1](hidden))
        return user.unsqueeze(1) + fused if self.residual else fused
