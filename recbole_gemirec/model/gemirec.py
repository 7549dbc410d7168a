"""GemiRec: interest quantisation and generation for multi-interest recommendation.

Reference: Wu et al., "GemiRec: Interest Quantization and Generation for Multi-Interest
Recommendation", arXiv 2510.14626 (Xiaohongshu). Specification: DESIGN §2.

This module wires the three parts, each in its own file:

* :mod:`~recbole_gemirec.model.interest_dictionary` - IDMM, residual quantisation of item embeddings
  into a shared interest dictionary (§2.1);
* :mod:`~recbole_gemirec.model.interest_generator` - MIPDM, a small causal GPT predicting the next
  interest (§2.2);
* :mod:`~recbole_gemirec.model.multi_interest_retrieval` - MIRM, user tower, interest fusion and the
  retrieval loss (§2.3);

plus the interest cache (:mod:`~recbole_gemirec.model.interest_cache`, §2.4). Training runs in three
stages driven by :class:`recbole_gemirec.trainer.GemiRecTrainer` (§2.5): ``retrieval`` (user tower and
item embeddings alone, scored with the plain user vector), ``dictionary`` (IDMM on those embeddings,
k-means initialised) and ``joint`` (all losses, scored with the cached interests).
"""

from logging import getLogger

import torch
import torch.nn as nn
import torch.nn.functional as F
from recbole.utils import FeatureType, InputType, set_color

from recbole_gemirec.model.interest_cache import fill_missing, history_frequency_scores, select_interests
from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary
from recbole_gemirec.model.interest_generator import InterestGenerator
from recbole_gemirec.model.multi_interest import MultiInterestRecommender
from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower, retrieval_loss
from recbole_gemirec.sampler import InterestNegativeSampler

STAGES = ("retrieval", "dictionary", "joint")


def first_category_table(dataset, field):
    """Category index per internal item id (first value of a multi-valued field), ``-1`` for none."""
    values = dataset.item_feat[field]
    if values.dim() > 1:
        values = values[:, 0]
    return values.long() - 1  # token 0 is RecBole's padding value


class GemiRec(MultiInterestRecommender):
    """GemiRec as a RecBole sequential model (``model=GemiRec``)."""

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()

        # load parameters info
        self.embedding_size = config["embedding_size"]
        self.interest_num = config["interest_num"]
        self.code_limit = config["interest_code_limit"]
        self.loss_weights = [float(w) for w in config["loss_weights"]]
        self.joint_training = config["joint_training"]
        self.interest_predictor = config["interest_predictor"]
        self.retrieval_interests = config["retrieval_interests"]
        self.kmeans_init = config["kmeans_init"]
        self.seed = config["seed"]

        # data-dependent parts: user features and item categories switch off with one warning each
        self.feature_fields = self._user_feature_fields(config, dataset)
        self.category_field = self._category_field(config, dataset)
        if self.feature_fields:
            table = torch.stack([dataset.user_feat[f].long() for f in self.feature_fields], dim=1)
            self.register_buffer("user_feature_table", table)
            cardinalities = [dataset.num(f) for f in self.feature_fields]
        else:
            self.user_feature_table = None
            cardinalities = []
        if self.category_field:
            self.register_buffer("item_category", first_category_table(dataset, self.category_field))
        else:
            self.item_category = None

        # define layers and loss
        self.item_embedding = nn.Embedding(self.n_items, self.embedding_size, padding_idx=0)
        code_size = len(config["interest_dictionary_sizes"]) * config["interest_dim"]
        if config["interest_source"] == "category":
            if self.item_category is None:
                raise ValueError("interest_source=category needs interest_category_field set to an item field")
            self.dictionary = CategoryInterests(self.item_category, code_size)
        else:
            self.dictionary = InterestDictionary(
                self.embedding_size, config["interest_dictionary_sizes"], config["interest_dim"],
                config["commitment_beta"],
            )
        self.generator = InterestGenerator(
            self.n_items, self.dictionary.n_interests, self.dictionary.code_size, config["gpt_hidden"],
            config["gpt_layers"], config["gpt_heads"], self.max_seq_length, cardinalities, config["gpt_dropout"],
        )
        self.tower = UserTower(
            self.embedding_size, self.max_seq_length, config["tower_layers"], config["tower_heads"],
            config["dropout_prob"], cardinalities,
        )
        self.fusion = InterestFusion(self.dictionary.code_size, self.embedding_size)
        self.sampler = InterestNegativeSampler(
            config["hard_interest_negatives"], config["easy_interest_negatives"], self.n_items
        )
        self.n_users = dataset.user_num
        self.register_buffer("interest_cache", torch.full((self.n_users, self.interest_num), -1, dtype=torch.long))
        self.stage = STAGES[0]
        self.apply(self._init_weights)

    @property
    def loss_names(self):
        """Names of the loss terms ``calculate_loss`` returns in the current stage, in order (the trainer
        names the term that turns non-finite; the joint stage returns them as a tuple)."""
        return {"retrieval": ("retrieval",), "dictionary": ("dictionary",),
                "joint": ("dictionary", "generator", "retrieval")}[self.stage]

    # --- configuration helpers ------------------------------------------------------------------
    def _user_feature_fields(self, config, dataset):
        if not config["use_user_features"]:
            return []
        user_feat = dataset.user_feat
        wanted = config["user_feature_fields"]
        if user_feat is None:
            self.logger.warning(set_color("GemiRec: the dataset has no user features; the user-feature token is off", "yellow"))
            return []
        available = [
            f for f in user_feat.columns
            if f != self.USER_ID and dataset.field2type.get(f) == FeatureType.TOKEN
        ]
        fields = available if wanted is None else [f for f in wanted if f in available]
        if not fields:
            self.logger.warning(set_color(
                f"GemiRec: no categorical user features among {wanted or 'the loaded user fields'}; "
                "the user-feature token is off", "yellow"))
        return fields

    def _category_field(self, config, dataset):
        field = config["interest_category_field"]
        if field is None:
            return None
        if dataset.item_feat is None or field not in dataset.item_feat.columns:
            self.logger.warning(set_color(
                f"GemiRec: interest_category_field={field!r} is not a loaded item field; the first "
                "sub-dictionary starts from k-means instead of category centroids", "yellow"))
            return None
        return field

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    # --- stages ---------------------------------------------------------------------------------
    def set_stage(self, stage):
        """Switch the training stage (DESIGN §2.5); ``joint`` scores with the interest cache."""
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}; allowed: {', '.join(STAGES)}")
        self.stage = stage
        self.interest_cache.fill_(-1)

    def start_dictionary_stage(self):
        """Initialise the dictionary from the current item embeddings (k-means, or random)."""
        if isinstance(self.dictionary, CategoryInterests):
            return
        items = self.item_embedding.weight[1:]
        categories = self.item_category[1:] if self.item_category is not None else None
        if self.kmeans_init:
            self.dictionary.kmeans_init(items, self.seed, categories)
        else:
            self.dictionary.random_init(items, self.seed)

    def dictionary_utilisation(self):
        """Per-level codeword utilisation and distinct full codes over all real items (DESIGN §5)."""
        return self.dictionary.utilisation(self.item_embedding.weight[1:])

    # --- parts ----------------------------------------------------------------------------------
    def _user_features(self, interaction):
        if self.user_feature_table is None:
            return None
        return self.user_feature_table[interaction[self.USER_ID]]

    def user_vector(self, interaction):
        """u: the user tower's output ``[B, D]``."""
        item_seq = interaction[self.ITEM_SEQ]
        return self.tower(self.item_embedding(item_seq), interaction[self.ITEM_SEQ_LEN], self._user_features(interaction))

    def item_codes(self, items):
        """Interest code tuples ``[..., C]`` of item ids under the current dictionary."""
        return self.dictionary.codes_for(items, self.item_embedding.weight)

    def item_interest_ids(self, items):
        return self.dictionary.interest_ids(self.item_codes(items))

    def interest_scores(self, interaction):
        """The predictor's ranking of all interests for each user ``[B, n_interests]``:
        GPT logits, or history frequency for the GemiRec-M ablation."""
        item_seq = interaction[self.ITEM_SEQ]
        codes = self.item_codes(item_seq)
        if self.interest_predictor == "frequency":
            ids = self.dictionary.interest_ids(codes).masked_fill(item_seq == 0, -1)
            return history_frequency_scores(ids, self.dictionary.n_interests)
        return self.generator.next_interest_logits(
            item_seq, interaction[self.ITEM_SEQ_LEN], self.dictionary.code_embedding(codes),
            self._user_features(interaction),
        )

    @torch.no_grad()
    def select_user_interests(self, interaction):
        """Top-K interests per user under the code limit ``[B, K]`` (DESIGN §2.4)."""
        chosen = select_interests(
            self.interest_scores(interaction), self.dictionary.codes_of, self.interest_num, self.code_limit
        )
        return fill_missing(chosen)

    @torch.no_grad()
    def refresh_interest_cache(self, interaction):
        """Write the batch users' interest cache rows from their histories in ``interaction``."""
        self.interest_cache[interaction[self.USER_ID]] = self.select_user_interests(interaction)

    def cached_interests(self, interaction):
        """The users' cached interest ids ``[B, K]``; rows never built are filled from the predictor."""
        users = interaction[self.USER_ID]
        ids = self.interest_cache[users]
        missing = ids[:, 0] < 0
        if missing.any():
            ids = ids.clone()
            ids[missing] = self.select_user_interests(interaction[missing])
            self.interest_cache[users[missing]] = ids[missing]
        return ids

    # --- RecBole interface -----------------------------------------------------------------------
    def interest_vectors(self, interaction):
        """``[B, K, D]``: the fused query of each cached interest; ``[B, 1, D]`` (u) before the joint stage."""
        user = self.user_vector(interaction)
        if self.stage != "joint":
            return user.unsqueeze(1)
        codes = self.dictionary.codes_of(self.cached_interests(interaction))
        return self.fusion(self.dictionary.code_embedding(codes), user)

    def calculate_loss(self, interaction):
        pos_items = interaction[self.POS_ITEM_ID]
        if self.stage == "retrieval":
            return retrieval_loss(self.user_vector(interaction), self.item_embedding(pos_items), pos_items)
        if self.stage == "dictionary":
            return self.loss_weights[0] * self._dictionary_loss(interaction)
        return self._joint_losses(interaction)

    def _dictionary_loss(self, interaction):
        items = torch.unique(torch.cat([interaction[self.POS_ITEM_ID], interaction[self.ITEM_SEQ].reshape(-1)]))
        items = items[items > 0]
        return self.dictionary.loss(self.item_embedding(items))

    def _predicted_interest_loss(self, generator_logits, user, pos_items):
        """``retrieval_interests: predicted``: the retrieval loss with the user's K predicted interests
        (the interest cache's selection, no gradient into the generator), each item scored by the max over
        the K queries - the same scoring as inference - against the other targets of the batch."""
        with torch.no_grad():
            chosen = fill_missing(select_interests(
                generator_logits.detach(), self.dictionary.codes_of, self.interest_num, self.code_limit))
        interest_emb = self.dictionary.code_embedding(self.dictionary.codes_of(chosen))
        if not self.joint_training:
            interest_emb = interest_emb.detach()
        queries = self.fusion(interest_emb, user)  # [B, K, D]
        targets = self.item_embedding(pos_items)
        logits = torch.einsum("bkd,nd->bkn", queries, targets).max(dim=1).values
        same_item = pos_items.unsqueeze(0) == pos_items.unsqueeze(1)
        same_item.fill_diagonal_(False)
        logits = logits.masked_fill(same_item, float("-inf"))
        return F.cross_entropy(logits, torch.arange(len(pos_items), device=logits.device))

    def _joint_losses(self, interaction):
        """(λ1 L_IDMM, λ2 L_MIPDM, λ3 L_MIRM), reported separately by RecBole's trainer."""
        w_dict, w_gen, w_ret = self.loss_weights
        pos_items = interaction[self.POS_ITEM_ID]
        target_ids = self.item_interest_ids(pos_items)
        generator_logits = self.interest_scores(interaction)
        if self.interest_predictor == "frequency":
            generator_loss = generator_logits.new_zeros(())
            # history frequencies mark unseen interests -inf; hard negatives come from the seen ones first
            generator_logits = generator_logits.clamp(min=-1e9)
        else:
            generator_loss = self.generator.loss(generator_logits, target_ids)
        user = self.user_vector(interaction)
        if self.retrieval_interests == "predicted":
            retrieval = self._predicted_interest_loss(generator_logits, user, pos_items)
            dictionary_loss = self._dictionary_loss(interaction) if self.joint_training else retrieval.new_zeros(())
            return w_dict * dictionary_loss, w_gen * generator_loss, w_ret * retrieval
        negatives = self.sampler.sample(generator_logits, target_ids, self.item_interest_ids)
        interest_emb = self.dictionary.code_embedding(self.dictionary.codes_of(torch.cat([target_ids.unsqueeze(1), negatives], 1)))
        if not self.joint_training:
            interest_emb = interest_emb.detach()
        queries = self.fusion(interest_emb, user)
        retrieval = retrieval_loss(queries[:, 0], self.item_embedding(pos_items), pos_items, queries[:, 1:])
        dictionary_loss = self._dictionary_loss(interaction) if self.joint_training else retrieval.new_zeros(())
        return w_dict * dictionary_loss, w_gen * generator_loss, w_ret * retrieval
