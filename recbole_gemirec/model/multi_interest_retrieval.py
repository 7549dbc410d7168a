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

from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last


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

    def forward(self, seq_emb, item_seq_len, user_features=None):
        positions = torch.arange(seq_emb.shape[1], device=seq_emb.device)
        x = self.dropout(seq_emb + self.position_embedding(positions))
        user = self.norm(encode_last(self.blocks, x, (item_seq_len - 1).clamp(min=0)))
        if len(self.feature_embeddings) > 0:
            user = user + sum(emb(user_features[:, i]) for i, emb in enumerate(self.feature_embeddings))
        return user


class InterestFusion(nn.Module):
    """z_fusion: one query per interest, u_k = u + MLP(concat(e_m, u)) (``residual``, our default: every
    query starts from the user vector the retrieval stage learned) or u_k = MLP(concat(e_m, u)) (the
    paper's form, config ``fusion: concat``)."""

    def __init__(self, code_size, embedding_size, residual=True):
        super().__init__()
        self.residual = residual
        self.mlp = nn.Sequential(
            nn.Linear(code_size + embedding_size, embedding_size), nn.GELU(),
            nn.Linear(embedding_size, embedding_size),
        )

    def forward(self, interest_emb, user):
        """``interest_emb [B, K, C*d]``, ``user [B, D]`` -> queries ``[B, K, D]``."""
        user = user.unsqueeze(1).expand(-1, interest_emb.shape[1], -1)
        fused = self.mlp(torch.cat([interest_emb, user], dim=-1))
        return user + fused if self.residual else fused
