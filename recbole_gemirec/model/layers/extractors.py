"""Interest extractors: ComiRec's self-attentive extractor and capsule dynamic routing.

References:
    Cen et al., "Controllable Multi-Interest Framework for Recommendation", KDD 2020 (ComiRec):
    §3.2.1 (dynamic routing, ComiRec-DR) and §3.2.2 (self-attentive method, ComiRec-SA).
    Li et al., "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall", CIKM 2019
    (MIND): §3.3 (behaviour-to-interest dynamic routing).
    Sabour et al., "Dynamic Routing Between Capsules", NeurIPS 2017 (squash, Eq. 1).

All tensors follow RecBole's layout: a history is ``[B, L]`` item ids, left-aligned, padded with 0 on
the right; ``mask`` is ``item_seq != 0``.
"""

import torch
from torch import nn

from recbole_gemirec.config_specs import Integer, Optional

# Logit given to padded positions before a softmax over positions: exp() underflows to exactly 0, yet
# a history made only of padding still gets finite (uniform) weights instead of NaN.
MASKED_LOGIT = -1e9


def squash(vectors, dim=-1, eps=1e-9):
    """Capsule non-linearity ``|s|^2 / (1 + |s|^2) * s / |s|``: keeps the direction, maps the norm into [0, 1)."""
    squared_norm = (vectors * vectors).sum(dim=dim, keepdim=True)
    scale = squared_norm / (1.0 + squared_norm) / torch.sqrt(squared_norm + eps)
    return scale * vectors


# The configuration key of the models that route (ComiRec-DR, MIND), for their CONFIG_RULES.
ROUTING_RULES = {"routing_iterations": Optional(Integer(1))}


def dynamic_routing(predictions, logits, mask, iterations):
    """Route history items to K interest capsules.

    Args:
        predictions: ``[B, K, L, D]`` or ``[B, 1, L, D]`` -- each item's prediction ``u_hat`` of each capsule
            (MIND shares one bilinear map, so its predictions broadcast over K).
        logits: ``[B, K, L]`` initial routing logits ``b``.
        mask: ``[B, L]`` bool, True at real (non-padded) positions.
        iterations: number of routing iterations (3 in both papers).

    Returns:
        ``(capsules [B, K, D], coupling [B, K, L])`` where ``coupling`` is the softmax of the final logits
        over the *interest* axis (dim 1) -- the axis of the ComiRec TensorFlow code and of the MIND paper --
        with padded positions set to 0.

    As in the ComiRec code, every iteration but the last routes a stop-gradient copy of the predictions,
    so gradients reach the predictions only through the final weighted sum.
    """
    position_mask = mask.unsqueeze(1).to(predictions.dtype)  # [B, 1, L]
    detached = predictions.detach()
    capsules, coupling = None, None
    for iteration in range(iterations):
        last = iteration == iterations - 1
        coupling = torch.softmax(logits, dim=1) * position_mask
        source = predictions if last else detached
        capsules = squash(torch.einsum("bkl,bkld->bkd", coupling, source.expand(-1, coupling.shape[1], -1, -1)))
        if not last:
            agreement = torch.einsum("bkld,bkd->bkl", detached.expand(-1, coupling.shape[1], -1, -1), capsules)
            logits = logits + agreement
    return capsules, coupling


class SelfAttentiveExtractor(nn.Module):
    """ComiRec-SA's multi-head additive attention over a history (ComiRec §3.2.2, Eq. 5-6).

    ``A = softmax_L(W2 tanh(W1 (H + P)))`` with a learned position embedding ``P`` added to the keys only,
    ``W1: D -> hidden`` (4D in the paper), ``W2: hidden -> K`` (one head per interest), padded positions
    masked before the softmax; the interests are ``V = A H`` (values are the raw item embeddings).
    Shared by ComiRec-SA and REMI, whose extractor is ComiRec-SA's.
    """

    def __init__(self, max_seq_length, embedding_size, interest_num, hidden_size, add_position=True):
        super().__init__()
        self.add_position = add_position
        self.position_embedding = nn.Embedding(max_seq_length, embedding_size) if add_position else None
        self.key_projection = nn.Linear(embedding_size, hidden_size)
        self.head_projection = nn.Linear(hidden_size, interest_num)

    def forward(self, history, mask):
        """``history [B, L, D]`` (padded rows zero), ``mask [B, L]`` -> ``(interests [B, K, D], attention [B, K, L])``.

        ``attention`` sums to 1 over positions (dim 2) for every interest; padded positions get 0.
        """
        keys = history
        if self.add_position:
            positions = torch.arange(history.shape[1], device=history.device)
            keys = keys + self.position_embedding(positions).unsqueeze(0)
        logits = self.head_projection(torch.tanh(self.key_projection(keys))).transpose(1, 2)  # [B, K, L]
        logits = logits.masked_fill(~mask.unsqueeze(1), MASKED_LOGIT)
        attention = torch.softmax(logits, dim=-1)
        return torch.bmm(attention, history), attention
