# -*- coding: utf-8 -*-
"""
ComiRecSA
################################################

Reference:
    Yukuo Cen et al. "Controllable Multi-Interest Framework for Recommendation." KDD 2020.
    §3.2.2 (self-attentive multi-interest extraction, Eq. 5-6) and §3.3 (training: the interest that
    meets the target, sampled softmax, Eq. 8-9). The controllable aggregation of §3.4 is a serving
    re-ranker and is not part of the model (lambda = 0, the paper's main table).
"""

from recbole.utils import set_color

from recbole_gemirec.config_specs import Boolean, Integer, Optional
from recbole_gemirec.model.layers import MultiInterestBaseline, SelfAttentiveExtractor


class ComiRecSA(MultiInterestBaseline):
    """ComiRec-SA: K attention heads over the history, one interest vector per head.

    Each head is an additive attention ``softmax_L(W2 tanh(W1 (H + P)))`` whose weights sum to 1 over
    the history positions; a learned position embedding enters the keys only. Training reads out the
    interest with the largest inner product with the target (hard readout) and applies a softmax against
    negatives shared by the batch. Included as the reference multi-interest baseline of GemiRec.

    Configuration: ``embedding_size``, ``interest_num`` (K), ``attention_hidden_size`` (``~`` = 4 x
    embedding_size), ``add_position``, ``sampled_softmax``, ``neg_sample_num``.
    """

    CONFIG_RULES = {
        **MultiInterestBaseline.CONFIG_RULES,
        "attention_hidden_size": Optional(Integer(1)),
        "add_position": Optional(Boolean()),
    }

    QUERY_KEYS = MultiInterestBaseline.QUERY_KEYS + ("attention_hidden_size", "add_position")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # parameters initialization
        self.apply(self._init_weights)
        self.logger.info(
            set_color("multi-interest", "blue")
            + f": {type(self).__name__} K={self.interest_num} D={self.embedding_size} "
            f"attention hidden={self.attention_hidden_size} "
            f"{'sampled softmax, %d shared negatives' % self.neg_sample_num if self.loss_fct.sampled else 'full softmax'}"
        )

    def build_query_parts(self, arch):
        super().build_query_parts(arch)
        hidden = arch["attention_hidden_size"]
        self.attention_hidden_size = 4 * self.embedding_size if hidden is None else int(hidden)
        self.add_position = bool(arch["add_position"])
        self.extractor = SelfAttentiveExtractor(
            int(arch["max_seq_length"]), self.embedding_size, self.interest_num, self.attention_hidden_size,
            add_position=self.add_position,
        )

    def forward(self, item_seq, item_seq_len):
        """``(interests [B, K, D], attention [B, K, L])``; attention sums to 1 over positions."""
        history, mask = self.history(item_seq)
        return self.extractor(history, mask)
