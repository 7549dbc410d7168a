"""The base class of the multi-interest baselines: parameters, item table, training loss.

References:
    Cen et al., ComiRec, KDD 2020, §3.3 (training with the interest that meets the target, sampled
    softmax); Li et al., MIND, CIKM 2019, §3.4 (label-aware attention).
"""

import math

from torch import nn
from torch.nn.init import xavier_normal_, zeros_

from recbole.utils import InputType

from recbole_gemirec.config_specs import Boolean, Integer, OneOf, Optional
from recbole_gemirec.model.layers.losses import item_softmax_loss
from recbole_gemirec.model.layers.readout import interest_readout
from recbole_gemirec.model.multi_interest import MultiInterestRecommender


class MultiInterestBaseline(MultiInterestRecommender):
    """What ComiRec-SA, ComiRec-DR, MIND and REMI have in common.

    One item table (ids tied between the history and the output, row 0 = padding), K interest vectors
    from the history, and a training loss that reads out the interest(s) meeting the target item and
    scores it with a softmax over the catalogue or over shared sampled negatives. Subclasses implement
    :meth:`forward` (``item_seq, item_seq_len -> (interests [B, K, D], routing weights [B, K, L])``) and may
    change :attr:`readout_power`, :meth:`active_interests` and :meth:`regularisation`.

    Configuration keys read here: ``embedding_size``, ``interest_num``, ``sampled_softmax``,
    ``neg_sample_num``, ``item_negatives`` (overrides ``sampled_softmax`` when set).
    """

    input_type = InputType.POINTWISE
    CONFIG_RULES = {
        "embedding_size": Integer(1),
        "interest_num": Integer(1),
        "MAX_ITEM_LIST_LENGTH": Integer(1),
        "loss_type": OneOf("CE"),
        "sampled_softmax": Optional(Boolean()),
        "neg_sample_num": Optional(Integer(1)),
        "item_negatives": Optional(OneOf("full", "sampled", "in_batch")),
        "logq_correction": Optional(Boolean()),
    }
    # Label-aware attention power of the training readout; inf = the single best interest (ComiRec).
    readout_power = math.inf
    # Which axis of the routing weights [B, K, L] sums to 1: "positions" (attention) or "interests"
    # (capsule routing). Documentation for users and tests; the models do not read it.
    weight_axis = "positions"

    # Configuration keys of the query side (what build_query_parts reads besides the sizes of the data).
    QUERY_KEYS = ("embedding_size", "interest_num")

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        # load parameters info
        self.sampled_softmax = bool(self.setting(config, "sampled_softmax"))
        self.neg_sample_num = int(self.setting(config, "neg_sample_num"))

        # define layers and loss
        self.build_query_parts(self.architecture_from(config))
        self.loss_fct = item_softmax_loss(
            config, dataset, self.n_items, default_mode="sampled" if self.sampled_softmax else "full",
            neg_sample_num=self.neg_sample_num, beta=self.hard_negative_beta(config),
        )

    def build_query_parts(self, arch):
        """The item table; subclasses add their extractor (called once, by ``__init__`` or
        :meth:`~recbole_gemirec.model.multi_interest.MultiInterestRecommender.for_serving`)."""
        self.embedding_size = int(arch["embedding_size"])
        self.interest_num = int(arch["interest_num"])
        self.item_embedding = nn.Embedding(int(arch["n_items"]), self.embedding_size, padding_idx=0)
        self.architecture = dict(arch)

    def queries_from_history(self, item_seq, item_seq_len, user_features=None, interests=None):
        return self.forward(item_seq, item_seq_len)[0], None

    def hard_negative_beta(self, config):
        """REMI's IHN weight; 0 (plain softmax) for the others."""
        return 0.0

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            xavier_normal_(module.weight.data)
            if module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.Linear):
            xavier_normal_(module.weight.data)
            if module.bias is not None:
                zeros_(module.bias.data)

    def history(self, item_seq):
        """``(embeddings [B, L, D] with padded rows zero, mask [B, L])`` of a batch of histories."""
        mask = item_seq != 0
        return self.item_embedding(item_seq) * mask.unsqueeze(-1).to(self.item_embedding.weight.dtype), mask

    def forward(self, item_seq, item_seq_len):
        raise NotImplementedError

    def routing_weights(self, interaction):
        """The weights that build the interests, ``[B, K, L]``, normalised over :attr:`weight_axis`."""
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])[1]

    def interest_vectors(self, interaction):
        return self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])[0]

    def active_interests(self, item_seq_len):
        """``[B, K]`` bool mask of the interests each user has, or ``None`` when all K are used."""
        return None

    def regularisation(self, weights):
        """Extra loss on the routing weights (REMI's RR); 0 by default."""
        return 0.0

    def calculate_loss(self, interaction):
        item_seq = interaction[self.ITEM_SEQ]
        item_seq_len = interaction[self.ITEM_SEQ_LEN]
        positive = interaction[self.POS_ITEM_ID]
        interests, weights = self.forward(item_seq, item_seq_len)
        user, _ = interest_readout(
            interests, self.item_embedding(positive), self.readout_power, self.active_interests(item_seq_len)
        )
        return self.loss_fct(user, positive, self.item_embeddings()) + self.regularisation(weights)
