"""Multi-interest retrieval (MIRM, GemiRec paper §3.4; DESIGN §2.3).

A user tower turns the behaviour sequence (and user features) into one user vector u. Each interest
chosen for the user is fused with u into its own query, u_k = z_fusion(concat(e_m, u)), and items are
scored by inner product, y = u_k . v_i. Training uses the interest m* of the target item; the softmax
loss puts the positive (u_{m*} . v_target) against

* item negatives: the other targets of the batch, scored with the same query (in-batch), and
* interest negatives: the same target item scored with queries built from other interests - hard ones
  (the generator's top predictions other than m*) and easy ones (random), see
  :class:`recbole_gemirec.sampler.InterestNegativeSampler`.

Interest negatives teach the fusion that the interest matters: the right item must score higher under
its own interest than under a wrong one, which keeps the K queries of a user apart.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_gemirec.model.interest_generator import CausalSelfAttentionBlock


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
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        index = (item_seq_len - 1).clamp(min=0)
        user = x[torch.arange(x.shape[0], device=x.device), index]
        if len(self.feature_embeddings) > 0:
            user = user + sum(emb(user_features[:, i]) for i, emb in enumerate(self.feature_embeddings))
        return user


class InterestFusion(nn.Module):
    """z_fusion: one query per interest, u_k = u + MLP(concat(e_m, u)) (residual on the user vector)."""

    def __init__(self, code_size, embedding_size):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(code_size + embedding_size, embedding_size), nn.GELU(),
            nn.Linear(embedding_size, embedding_size),
        )

    def forward(self, interest_emb, user):
        """``interest_emb [B, K, C*d]``, ``user [B, D]`` -> queries ``[B, K, D]``."""
        user = user.unsqueeze(1).expand(-1, interest_emb.shape[1], -1)
        return user + self.mlp(torch.cat([interest_emb, user], dim=-1))


def in_batch_logits(queries, targets, target_items):
    """``queries [B, D]`` . ``targets [B, D]``^T with repeated target items masked (not false negatives)."""
    logits = queries @ targets.t()
    same_item = target_items.unsqueeze(0) == target_items.unsqueeze(1)
    same_item.fill_diagonal_(False)
    return logits.masked_fill(same_item, float("-inf"))


def retrieval_loss(query, target_emb, target_items, negative_queries=None):
    """Softmax loss of the positive against in-batch items and, if given, interest-negative queries.

    Args:
        query: ``[B, D]`` query built from the target's interest (or the plain user vector).
        target_emb: ``[B, D]`` embeddings of the batch's target items.
        target_items: ``[B]`` their ids (for masking duplicates).
        negative_queries: ``[B, N, D]`` queries built from negative interests, scored on the target.
    """
    logits = in_batch_logits(query, target_emb, target_items)
    if negative_queries is not None and negative_queries.shape[1] > 0:
        negative = torch.einsum("bnd,bd->bn", negative_queries, target_emb)
        logits = torch.cat([logits, negative], dim=1)
    labels = torch.arange(query.shape[0], device=query.device)
    return F.cross_entropy(logits, labels)
