"""GemiRec: interest quantisation and generation for multi-interest recommendation.

Reference: Wu et al., "GemiRec: Interest Quantization and Generation for Multi-Interest
Recommendation", arXiv 2510.14626 (Xiaohongshu). Specification: docs/design.md §2.

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
from recbole.utils import FeatureType, InputType, set_color

from recbole_gemirec.data.categories import first_category_tokens
from recbole_gemirec.model.interest_cache import (
    fill_missing, history_frequency_scores, interest_log_probs, select_interests,
)
from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary
from recbole_gemirec.model.interest_generator import InterestGenerator
from recbole_gemirec.model.layers.losses import item_softmax_loss
from recbole_gemirec.model.multi_interest import MultiInterestRecommender, catalogue_logsumexp
from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower
from recbole_gemirec.sampler import InterestNegativeSampler

from recbole_gemirec.model import gemirec_config
from recbole_gemirec.model.gemirec_config import STAGES

# interest_levels: ~ picks the deepest code prefix whose interests still cover this many items each on
# average (docs/gemirec.md, interest granularity).
ITEMS_PER_INTEREST = 20

# interest_prior_weight: auto tries these values of tau on the valid split after the joint stage. Large
# tau lets only the most probable interests (and u, with user_query) win the merge; tau -> 0 ranks
# every query's items as if its interest were certain.
PRIOR_WEIGHT_GRID = (0.5, 1.0, 2.0, 4.0)


def default_interest_levels(sizes, n_items, items_per_interest=ITEMS_PER_INTEREST):
    """The deepest prefix length c (at least 1) with ``prod(sizes[:c]) * items_per_interest <= n_items``.

    Why: the generator must predict the next interest. With interests near item level (the paper's
    16,384 interests on a catalogue of a few thousand items) that is next-item prediction under another
    name and the GPT fails at it; a prefix of the residual code is a coarser interest of the same
    dictionary, which the GPT can predict and the code limit can spread.
    """
    levels, product = 1, int(sizes[0])
    for size in sizes[1:]:
        product *= int(size)
        if product * items_per_interest > n_items:
            break
        levels += 1
    return levels


def first_category_table(dataset, field):
    """Category index per internal item id (first value of a multi-valued field), ``-1`` for none."""
    return first_category_tokens(dataset, field) - 1  # token 0 is RecBole's padding value


class GemiRec(MultiInterestRecommender):
    """GemiRec as a RecBole sequential model (``model=GemiRec``)."""

    CONFIG_RULES = gemirec_config.CONFIG_RULES
    CONFIG_RELATIONS = tuple(gemirec_config.RELATIONS)
    check_config = staticmethod(gemirec_config.check_relations)
    category_fields = staticmethod(gemirec_config.category_fields)
    check_dataset = staticmethod(gemirec_config.check_dataset)

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
        self.joint_codes = config["joint_codes"] or "frozen"
        self.interest_weighting = config["interest_weighting"] or "none"
        self.user_query = bool(config["user_query"])
        self.history_prior = bool(config["generator_history_prior"])
        self.interest_distribution = config["interest_distribution"] or "softmax"
        weight = config["interest_prior_weight"]
        # tau; "auto": chosen on the valid split at the end of the joint stage (PRIOR_WEIGHT_GRID)
        self.prior_weight_auto = weight == "auto"
        self.register_buffer("prior_weight", torch.tensor(1.0 if weight in (None, "auto") else float(weight)))
        self.joint_backbone_lr_scale = float(self.setting(config, "joint_backbone_lr_scale"))
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
        levels = config["interest_levels"]
        self.interest_levels = min(
            default_interest_levels(self.dictionary.sizes, self.n_items) if levels is None else int(levels),
            self.dictionary.levels,
        )
        self.n_interests = self.dictionary.n_interests_at(self.interest_levels)
        self.generator = InterestGenerator(
            self.n_items, self.n_interests, self.dictionary.code_size, config["gpt_hidden"],
            config["gpt_layers"], config["gpt_heads"], self.max_seq_length, cardinalities, config["gpt_dropout"],
            repeat_explore=self.interest_distribution == "repeat_explore",
        )
        self.tower = UserTower(
            self.embedding_size, self.max_seq_length, config["tower_layers"], config["tower_heads"],
            config["dropout_prob"], cardinalities,
        )
        self.fusion = InterestFusion(self.dictionary.code_size, self.embedding_size, residual=config["fusion"] != "concat")
        self.sampler = InterestNegativeSampler(
            config["hard_interest_negatives"], config["easy_interest_negatives"], self.n_items
        )
        self.loss_fct = item_softmax_loss(config, dataset, self.n_items, default_mode="full",
                                          neg_sample_num=config["neg_sample_num"] or 1280)
        self.n_users = dataset.user_num
        self.register_buffer("interest_cache", torch.full((self.n_users, self.interest_num), -1, dtype=torch.long))
        self.register_buffer("interest_cache_log_prob", torch.zeros(self.n_users, self.interest_num))
        # Item codes fixed at the joint stage's start (joint_codes: frozen); codes_frozen says whether they are.
        self.register_buffer("frozen_codes", torch.zeros(self.n_items, self.dictionary.levels, dtype=torch.long))
        self.register_buffer("codes_frozen", torch.zeros((), dtype=torch.bool))
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
        """Switch the training stage (docs/design.md, training stages); ``joint`` scores with the cache."""
        if stage not in STAGES:
            raise ValueError(f"stage={stage!r}; allowed: {', '.join(STAGES)}")
        self.stage = stage
        self.interest_cache.fill_(-1)
        if stage != "joint":
            self.codes_frozen.fill_(False)
        for p in self.parameters():
            p.requires_grad_(True)

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

    @torch.no_grad()
    def start_joint_stage(self):
        """``joint_codes: frozen``: fix every item's code at the joint stage's start, so the generator's
        targets and the fusion's interests do not move under them while the embeddings keep learning."""
        if self.joint_codes != "frozen" or isinstance(self.dictionary, CategoryInterests):
            return
        items = torch.arange(self.n_items, device=self.item_embedding.weight.device)
        self.frozen_codes.copy_(self.dictionary.codes_for(items, self.item_embedding.weight))
        self.codes_frozen.fill_(True)

    def optimiser_groups(self, learning_rate, freeze=True):
        """Parameter groups of the current stage's optimiser. In the joint stage the backbone the retrieval
        stage trained (item embeddings and user tower) learns at ``joint_backbone_lr_scale`` times the
        learning rate (0: frozen), so the generator, fusion and dictionary can train for as many epochs as
        they need while the already converged embeddings do not overfit. ``freeze=False`` keeps a frozen
        backbone in the graph with learning rate 0 (DistributedDataParallel expects every parameter it
        wrapped to receive a gradient)."""
        if self.stage != "joint" or self.joint_backbone_lr_scale == 1.0:
            return [{"params": list(self.parameters())}]
        backbone = list(self.item_embedding.parameters()) + list(self.tower.parameters())
        ids = {id(p) for p in backbone}
        rest = [p for p in self.parameters() if id(p) not in ids]
        groups = [{"params": rest}]
        if self.joint_backbone_lr_scale > 0 or not freeze:
            groups.append({"params": backbone, "lr": learning_rate * self.joint_backbone_lr_scale})
        else:
            for p in backbone:
                p.requires_grad_(False)
        return groups

    def dictionary_utilisation(self):
        """Per-level codeword utilisation and distinct full codes over all real items."""
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
        """Full interest code tuples ``[..., C]`` of item ids (the frozen ones in a frozen joint stage)."""
        if bool(self.codes_frozen):
            return self.frozen_codes[items]
        return self.dictionary.codes_for(items, self.item_embedding.weight)

    def interest_codes(self, interest_ids):
        """Code prefixes ``[..., interest_levels]`` of interest ids."""
        return self.dictionary.codes_of(interest_ids, self.interest_levels)

    def item_interest_ids(self, items):
        """The interest id (code prefix of ``interest_levels`` levels) of item ids."""
        return self.dictionary.interest_ids(self.item_codes(items)[..., : self.interest_levels])

    def interest_scores(self, interaction):
        """The predictor's ranking of all interests for each user ``[B, n_interests]``:
        GPT logits (log-probabilities under ``interest_distribution: repeat_explore``), or history
        frequency for the GemiRec-M ablation."""
        item_seq = interaction[self.ITEM_SEQ]
        codes = self.item_codes(item_seq)
        ids = self.dictionary.interest_ids(codes[..., : self.interest_levels]).masked_fill(item_seq == 0, -1)
        if self.interest_predictor == "frequency":
            return history_frequency_scores(ids, self.n_interests)
        state = self.generator.next_interest_state(
            item_seq, interaction[self.ITEM_SEQ_LEN], self.dictionary.code_embedding(codes),
            self._user_features(interaction),
        )
        logits = self.generator.head(state)
        counts = self.generator.history_counts(ids, self.n_interests)
        if self.history_prior:
            logits = logits + self.generator.history_prior(counts)
        if self.interest_distribution == "repeat_explore":
            return self.generator.repeat_explore_log_probs(logits, state, counts > 0)
        return logits

    def _select(self, scores):
        """``(ids [B, K], log-probabilities [B, K])`` of the top-K interests under the code limit."""
        chosen = fill_missing(select_interests(scores, self.interest_codes, self.interest_num, self.code_limit))
        return chosen, interest_log_probs(scores, self.interest_predictor).gather(1, chosen)

    @torch.no_grad()
    def select_user_interests(self, interaction):
        """Top-K interests per user under the code limit ``[B, K]`` (docs/design.md, interest cache)."""
        return self._select(self.interest_scores(interaction))[0]

    @torch.no_grad()
    def refresh_interest_cache(self, interaction):
        """Write the batch users' interest cache rows from their histories in ``interaction``."""
        users = interaction[self.USER_ID]
        self.interest_cache[users], self.interest_cache_log_prob[users] = self._select(self.interest_scores(interaction))

    def cached_interests(self, interaction):
        """The users' cached ``(interest ids, log-probabilities)``, ``[B, K]`` each; rows never built are
        filled from the predictor."""
        users = interaction[self.USER_ID]
        ids, log_prob = self.interest_cache[users], self.interest_cache_log_prob[users]
        missing = ids[:, 0] < 0
        if missing.any():
            ids, log_prob = ids.clone(), log_prob.clone()
            with torch.no_grad():
                ids[missing], log_prob[missing] = self._select(self.interest_scores(interaction[missing]))
            self.interest_cache[users[missing]] = ids[missing]
            self.interest_cache_log_prob[users[missing]] = log_prob[missing]
        return ids, log_prob

    @property
    def has_interest_ids(self):
        return self.stage == "joint"

    def query_interest_ids(self, interaction):
        """Interest ids aligned with :meth:`interest_vectors`' queries ``[B, K']`` (-1: the query u of
        ``user_query``), for serving and pictures; refreshes the batch users' cache rows first."""
        self.refresh_interest_cache(interaction)
        ids = self.interest_cache[interaction[self.USER_ID]]
        if self.user_query:
            ids = torch.cat([ids.new_full((ids.shape[0], 1), -1), ids], dim=1)
        return ids

    def query_interest_codes(self, ids):
        """Code prefixes ``[..., interest_levels]`` of :meth:`query_interest_ids`' ids; -1 rows for u."""
        codes = self.interest_codes(ids.clamp(min=0))
        return codes.masked_fill((ids < 0).unsqueeze(-1), -1)

    @property
    def interest_code_sizes(self):
        """Sizes of the code levels an interest has (the first ``interest_levels`` sub-dictionaries)."""
        return [int(s) for s in self.dictionary.sizes[: self.interest_levels]]

    # --- RecBole interface -----------------------------------------------------------------------
    def interest_vectors(self, interaction):
        """``[B, K, D]``: the fused query of each cached interest; ``[B, 1, D]`` (u) before the joint stage.
        With ``user_query`` the user vector u is query 0 and the K interests follow (``[B, K + 1, D]``).

        With ``interest_weighting`` other than ``none`` a last column holds each query's bias (and
        :meth:`item_embeddings` a column of ones), so an item's score under interest k is
        ``u_k . v + b_k`` while scoring stays one inner product per interest (serving and the AMR/CUR
        metrics use the same vectors).
        """
        user = self.user_vector(interaction)
        if self.stage != "joint":
            return self._with_bias(user.unsqueeze(1), user.new_zeros(user.shape[0], 1))
        return self._scoring_queries(*self.cached_interests(interaction), user)

    def _scoring_queries(self, ids, log_prob, user):
        """The vectors items are scored with for interests ``ids [B, K]`` of probabilities ``log_prob``:
        the fused queries, u first with ``user_query``, and the bias column of ``interest_weighting``."""
        queries = self._queries(ids, user)
        if self.user_query:  # u itself as one more query, over "any interest" (log-probability 0)
            queries = torch.cat([user.unsqueeze(1), queries], dim=1)
            log_prob = torch.cat([log_prob.new_zeros(log_prob.shape[0], 1), log_prob], dim=1)
        bias = self.prior_weight * log_prob
        if self.interest_weighting == "log_joint":
            bias = bias - catalogue_logsumexp(queries, self.item_embedding.weight[1:])
        return self._with_bias(queries, bias)

    def _with_bias(self, queries, bias):
        if self.interest_weighting == "none":
            return queries
        return torch.cat([queries, bias.unsqueeze(-1).to(queries.dtype)], dim=-1)

    def item_embeddings(self):
        table = self.item_embedding.weight
        if self.interest_weighting == "none":
            return table
        return torch.cat([table, table.new_ones(table.shape[0], 1)], dim=1)

    def calculate_loss(self, interaction):
        pos_items = interaction[self.POS_ITEM_ID]
        if self.stage == "retrieval":
            return self.loss_fct(self.user_vector(interaction), pos_items, self.item_embedding.weight)
        if self.stage == "dictionary":
            return self.loss_weights[0] * self._dictionary_loss(interaction)
        return self._joint_losses(interaction)

    def _dictionary_loss(self, interaction):
        items = torch.unique(torch.cat([interaction[self.POS_ITEM_ID], interaction[self.ITEM_SEQ].reshape(-1)]))
        items = items[items > 0]
        codes = self.frozen_codes[items] if bool(self.codes_frozen) else None
        return self.dictionary.loss(self.item_embedding(items), codes)

    def _queries(self, interest_ids, user):
        """Fused queries ``[B, N, D]`` of interest ids ``[B, N]`` (codewords detached when the dictionary
        is frozen, GemiRec-J)."""
        interest_emb = self.dictionary.code_embedding(self.interest_codes(interest_ids))
        if not self.joint_training:
            interest_emb = interest_emb.detach()
        return self.fusion(interest_emb, user)

    def _predicted_interest_loss(self, generator_logits, user, pos_items):
        """``retrieval_interests: predicted``: the retrieval loss with the user's K predicted interests
        (the interest cache's selection, no gradient into the generator), each item scored by the max over
        the K queries - the same scoring as inference - against the configured item negatives."""
        with torch.no_grad():
            chosen, log_prob = self._select(generator_logits.detach())
        queries = self._scoring_queries(chosen, log_prob, user)  # [B, K, D (+ 1)]
        table = self.item_embeddings()
        positive = torch.einsum("bkd,bd->bk", queries, table[pos_items]).max(dim=1).values
        shared = self.loss_fct.draw_negatives(pos_items.device)  # the same negatives for every query
        negatives = torch.stack([self.loss_fct.negative_logits(queries[:, k], pos_items, table, shared)
                                 for k in range(queries.shape[1])], dim=1).max(dim=1).values
        return self.loss_fct.loss_from_logits(positive, negatives)

    def _target_interest_loss(self, generator_logits, target_ids, user, pos_items):
        """The paper's MIRM loss: the query of the target's own interest against the item negatives and
        the same target under hard and easy negative interests."""
        negatives = self.sampler.sample(generator_logits, target_ids, self.item_interest_ids)
        queries = self._queries(torch.cat([target_ids.unsqueeze(1), negatives.clamp(min=0)], 1), user)
        target_emb = self.item_embedding(pos_items)
        interest_negative = torch.einsum("bnd,bd->bn", queries[:, 1:], target_emb)
        interest_negative = interest_negative.masked_fill(negatives < 0, float("-inf"))
        return self.loss_fct(queries[:, 0], pos_items, self.item_embedding.weight, interest_negative)

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
        retrieval = generator_loss.new_zeros(())
        if self.retrieval_interests in ("target", "both"):
            retrieval = retrieval + self._target_interest_loss(generator_logits, target_ids, user, pos_items)
        if self.retrieval_interests in ("predicted", "both"):
            retrieval = retrieval + self._predicted_interest_loss(generator_logits, user, pos_items)
        dictionary_loss = self._dictionary_loss(interaction) if self.joint_training else retrieval.new_zeros(())
        return w_dict * dictionary_loss, w_gen * generator_loss, w_ret * retrieval
