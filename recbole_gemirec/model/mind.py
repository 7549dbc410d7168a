# -*- coding: utf-8 -*-
"""
MIND
################################################

Reference:
    Chao Li et al. "Multi-Interest Network with Dynamic Routing for Recommendation at Tmall." CIKM 2019.
    §3.3 (multi-interest extractor layer: behaviour-to-interest dynamic routing with a shared bilinear
    map, Algorithm 1, dynamic interest number Eq. 8), §3.4 (label-aware attention, Eq. 9), §3.5
    (training and serving).
"""

import torch
from torch import nn

from recbole.utils import set_color

from recbole_gemirec.config_specs import Boolean, Optional, Real
from recbole_gemirec.model.layers import ROUTING_RULES, MultiInterestBaseline, dynamic_routing


class MIND(MultiInterestBaseline):
    """MIND: behaviour-to-interest (B2I) routing with one bilinear map ``S`` shared by all pairs.

    Every history item predicts every capsule with the same ``S e_i``; what separates the capsules is the
    routing: logits ``b_ij`` start from a Gaussian draw (``N(0, 1)``, the paper's symmetry breaker),
    coupling = softmax of the logits over the interests (padded positions get 0), capsules
    ``squash(sum_i c_ij S e_i)``, logits grow by ``(S e_i) . u_j`` for ``routing_iterations`` rounds. An
    optional ``Dense + ReLU`` layer (the paper's H-layer, without the user-profile features RecBole's
    histories lack) maps each capsule to an interest. Training uses label-aware attention
    ``softmax(pow(V^T e_t, p))`` over the interests with ``label_aware_pow`` p (``inf`` = hard selection).

    The initial routing logits are one fixed ``[L, K]`` draw kept as a buffer (saved with the model), so a
    user's interests do not change between calls; the paper redraws them, which would make serving
    non-deterministic. With ``dynamic_interest_num`` a user with n history items has
    ``max(1, min(K, floor(log2 n)))`` interests (Eq. 8); the others repeat the first interest, so they
    never change the max-over-interests ranking, and get no weight in training.

    Configuration: ``embedding_size``, ``interest_num``, ``routing_iterations``, ``label_aware_pow``,
    ``relu_layer``, ``dynamic_interest_num``, ``sampled_softmax``, ``neg_sample_num``.
    """

    CONFIG_RULES = {
        **MultiInterestBaseline.CONFIG_RULES, **ROUTING_RULES,
        "relu_layer": Optional(Boolean()),
        "dynamic_interest_num": Optional(Boolean()),
        "label_aware_pow": Optional(Real(0, infinite=True)),
    }

    weight_axis = "interests"

    QUERY_KEYS = MultiInterestBaseline.QUERY_KEYS + ("routing_iterations", "relu_layer", "dynamic_interest_num")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.readout_power = float(self.setting(config, "label_aware_pow"))

        # parameters initialization
        self.apply(self._init_weights)
        self.logger.info(
            set_color("multi-interest", "blue")
            + f": MIND K={self.interest_num} D={self.embedding_size} iterations={self.routing_iterations} "
            f"p={self.readout_power} relu_layer={self.relu_layer} dynamic_K={self.dynamic_interest_num}"
        )

    def build_query_parts(self, arch):
        super().build_query_parts(arch)
        self.routing_iterations = int(arch["routing_iterations"])
        self.relu_layer = bool(arch["relu_layer"])
        self.dynamic_interest_num = bool(arch["dynamic_interest_num"])
        self.bilinear = nn.Linear(self.embedding_size, self.embedding_size, bias=False)
        self.interest_layer = (
            nn.Sequential(nn.Linear(self.embedding_size, self.embedding_size), nn.ReLU())
            if self.relu_layer else nn.Identity()
        )
        self.register_buffer("initial_logits", torch.randn(self.interest_num, int(arch["max_seq_length"])))

    def active_interests(self, item_seq_len):
        if not self.dynamic_interest_num:
            return None
        counts = torch.floor(torch.log2(item_seq_len.clamp(min=1).to(torch.float32))).clamp(1, self.interest_num)
        return torch.arange(self.interest_num, device=item_seq_len.device).unsqueeze(0) < counts.unsqueeze(1)

    def forward(self, item_seq, item_seq_len):
        """``(interests [B, K, D], coupling [B, K, L])``; coupling sums to 1 over interests at real positions."""
        history, mask = self.history(item_seq)
        batch, length = item_seq.shape
        predictions = self.bilinear(history).unsqueeze(1)  # [B, 1, L, D], shared by every capsule
        logits = self.initial_logits[:, :length].unsqueeze(0).expand(batch, -1, -1)
        capsules, coupling = dynamic_routing(predictions, logits, mask, self.routing_iterations)
        interests = self.interest_layer(capsules)
        active = self.active_interests(item_seq_len)
        if active is not None:
            interests = torch.where(active.unsqueeze(-1), interests, interests[:, :1].expand_as(interests))
        return interests, coupling
