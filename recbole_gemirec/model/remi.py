# -*- coding: utf-8 -*-
"""
REMI
################################################

Reference:
    Yueqi Xie, Jingqi Gao, Peilin Zhou, Qichen Ye, Yining Hua, Jae Boum Kim, Fangzhao Wu, Sunghun Kim.
    "Rethinking Multi-Interest Learning for Candidate Matching in Recommender Systems." RecSys 2023.
    §4.1 interest-aware hard negative mining (IHN), §4.2 routing regularisation (RR); the backbone is
    ComiRec-SA (Cen et al., KDD 2020, §3.2.2).
"""

from recbole_gemirec.config_specs import Optional, Real
from recbole_gemirec.model.comirecsa import ComiRecSA
from recbole_gemirec.model.layers import routing_variance_penalty


class REMI(ComiRecSA):
    """ComiRec-SA trained with REMI's two add-ons; the architecture and serving are unchanged.

    - IHN: each shared negative is weighted by ``exp(beta s_j) / mean_j exp(beta s_j)``, ``s_j`` being its
      score under the interest selected for the target, so negatives close to that interest dominate
      the softmax (``hard_negative_beta``, beta; 0 = plain ComiRec-SA loss).
    - RR: ``lambda * sum_users ||diag(C C^T / D)||^2`` with ``C`` the attention matrix centred over
      positions, penalising interests that route all their weight to one item ("routing collapse")
      (``routing_reg_weight``, lambda; 0 = off).

    Why: REMI shows that ComiRec-style models suffer from easy negatives and routing collapse; both fixes
    are training-only, so REMI isolates the effect of the training objective against ComiRec-SA.
    """

    CONFIG_RULES = {
        **ComiRecSA.CONFIG_RULES,
        "hard_negative_beta": Optional(Real(0)),
        "routing_reg_weight": Optional(Real(0)),
    }

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.routing_reg_weight = float(self.setting(config, "routing_reg_weight"))

    def hard_negative_beta(self, config):
        return float(self.setting(config, "hard_negative_beta"))

    def regularisation(self, weights):
        if self.routing_reg_weight == 0:
            return 0.0
        return self.routing_reg_weight * routing_variance_penalty(weights, self.embedding_size)
