"""Training-time readout: which interest(s) of a user meet the target item.

References:
    Li et al., MIND, CIKM 2019, §3.4 (label-aware attention, Eq. 9):
    ``v_u = V_u softmax(pow(V_u^T e_t, p))``; p = 0 averages the interests, p -> inf selects one.
    Cen et al., ComiRec, KDD 2020, §3.3 (Eq. 8): ``v_u = V_u[:, argmax_k(V_u^T e_t)]`` -- the hard
    (p = inf) case, used by ComiRec-SA, ComiRec-DR and REMI.
"""

import math

import torch


def interest_readout(interests, target, power=math.inf, interest_mask=None):
    """Combine the K interests into one training vector per user, weighted by their fit to the target.

    Args:
        interests: ``[B, K, D]``.
        target: ``[B, D]`` target item embeddings.
        power: label-aware attention power p; ``math.inf`` selects the single best interest (ComiRec).
            For finite p the score is raised as ``sign(s) |s|^p`` so that a negative score never outranks
            a positive one (``pow`` of a negative score is undefined for fractional p, and flips the
            order for even p).
        interest_mask: optional ``[B, K]`` bool, False for interests a user does not have (MIND's
            dynamic interest number); they get weight 0.

    Returns:
        ``(user [B, D], weights [B, K])`` with ``weights`` summing to 1 over interests.
    """
    scores = torch.einsum("bkd,bd->bk", interests, target)
    if interest_mask is not None:
        scores = scores.masked_fill(~interest_mask, -math.inf)
    if math.isinf(power):
        weights = torch.zeros_like(scores).scatter_(1, scores.argmax(dim=1, keepdim=True), 1.0)
    else:
        finite = torch.nan_to_num(scores, neginf=0.0)
        powered = torch.sign(finite) * finite.abs().pow(power) if power != 0 else torch.zeros_like(finite)
        if interest_mask is not None:
            powered = powered.masked_fill(~interest_mask, -math.inf)
        weights = torch.softmax(powered, dim=1)
    return torch.einsum("bk,bkd->bd", weights, interests), weights
