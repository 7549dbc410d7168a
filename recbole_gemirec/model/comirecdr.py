# -*- coding: utf-8 -*-
"""
ComiRecDR
################################################

Reference:
    Yukuo Cen et al. "Controllable Multi-Interest Framework for Recommendation." KDD 2020.
    §3.2.1 (dynamic routing multi-interest extraction, Algorithm 1, Eq. 2-4) and §3.3 (training).
"""

import torch
from torch import nn
from torch.nn.init import normal_

from recbole.utils import set_color

from recbole_gemirec.model.layers import ROUTING_RULES, MultiInterestBaseline, dynamic_routing


class ComiRecDR(MultiInterestBaseline):
    """ComiRec-DR: capsule dynamic routing from the history items to K interest capsules.

    Item ``i`` predicts capsule ``j`` through its own matrix ``W_ij`` -- one ``D x D`` map per (history
    position, interest), ``L * K * D * D`` weights -- so capsules differ even though the routing logits
    start equal. Routing logits start at 0 (as in the original TensorFlow code); the coupling
    coefficients are the softmax of the logits over the *interests* (each item distributes one unit of
    weight among the K capsules; padded positions get 0), capsules are ``squash(sum_i c_ij u_hat_ij)``,
    and the logits grow by the agreement ``u_hat_ij . v_j`` for ``routing_iterations`` (3) rounds.
    Training reads out the interest that meets the target, as ComiRec-SA does.

    Configuration: ``embedding_size``, ``interest_num``, ``routing_iterations``, ``sampled_softmax``,
    ``neg_sample_num``. The original README recommends ``learning_rate: 0.005`` for this model.
    """

    CONFIG_RULES = {**MultiInterestBaseline.CONFIG_RULES, **ROUTING_RULES}

    weight_axis = "interests"

    QUERY_KEYS = MultiInterestBaseline.QUERY_KEYS + ("routing_iterations",)

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # parameters initialization
        self.apply(self._init_weights)
        # N(0, 1/D): a prediction u_hat has about the norm of the item embedding it comes from.
        normal_(self.routing_weight, std=self.embedding_size ** -0.5)
        self.logger.info(
            set_color("multi-interest", "blue")
            + f": ComiRecDR K={self.interest_num} D={self.embedding_size} iterations={self.routing_iterations}"
        )

    def build_query_parts(self, arch):
        super().build_query_parts(arch)
        self.routing_iterations = int(arch["routing_iterations"])
        # [L, K, D_out, D_in]: the bilinear map of each (history position, interest) pair.
        self.routing_weight = nn.Parameter(
            torch.empty(int(arch["max_seq_length"]), self.interest_num, self.embedding_size, self.embedding_size)
        )

    def forward(self, item_seq, item_seq_len):
        """``(interests [B, K, D], coupling [B, K, L])``; coupling sums to 1 over interests at real positions."""
        history, mask = self.history(item_seq)
        length = history.shape[1]
        predictions = torch.einsum("lkoi,bli->bklo", self.routing_weight[:length], history)  # [B, K, L, D]
        logits = predictions.new_zeros(predictions.shape[:3])
        return dynamic_routing(predictions, logits, mask, self.routing_iterations)
