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
from recbole_gemirec.model.gemirec_queries import ARCHITECTURE_KEYS, GemiRecQueries
from recbole_gemirec.model.gemirec_queries import default_interest_levels  # noqa: F401 (re-exported)
from recbole_gemirec.model.interest_dictionary import CategoryInterests
from recbole_gemirec.model.interest_transitions import (
    CURRENT_SHARE_GRID, NOVEL_SHARE_GRID, count_transitions, training_cut,
)
from recbole_gemirec.model.layers.losses import item_softmax_loss
from recbole_gemirec.model.multi_interest import MultiInterestRecommender
from recbole_gemirec.sampler import InterestNegativeSampler

from recbole_gemirec.model import gemirec_config
from recbole_gemirec.model.gemirec_config import STAGES

# interest_prior_weight: auto tries these values of tau on the valid split after the joint stage. Large
# tau lets only the most probable interests (and u, with user_query) win the merge; tau -> 0 ranks
# every query's items as if its interest were certain. Steps of about sqrt(2): with steps of 2, the best
# tau often fell between two of them (synthetic2, one checkpoint: valid 0.5962 at 0.75 against 0.5799 at
# the best of 0.5, 1, 2, 4; docs/gemirec.md).
PRIOR_WEIGHT_GRID = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)


def scoring_candidates(prior_weight, masking, novel_share=None, tau_grid=PRIOR_WEIGHT_GRID, current_share=None,
                       ranking=None):
    """The ``(interest_masking, tau)`` pairs tried on the valid split after the joint stage, in order:
    every tau of the grid under ``interest_prior_weight: auto`` (else the configured one), each without
    and with masking under ``interest_masking: auto`` (else as configured). Under ``novel_interest_share:
    auto`` (the transition predictor) each pair is tried with every beta of ``NOVEL_SHARE_GRID``, as
    ``(masking, tau, beta)``, and under ``current_interest_share: auto`` besides with every alpha of
    ``CURRENT_SHARE_GRID``, as ``(masking, tau, beta, alpha)``. Under ``within_interest_ranking: auto``
    (``ranking``) every candidate is tried with the interest queries' own ranking and with popularity, as
    ``(masking, tau, beta, alpha, popularity)`` (beta and alpha None without the transition predictor). Empty
    when nothing is to be chosen. The arguments are the configuration's values (``novel_share`` and
    ``current_share`` None: not the transition predictor); ``tau_grid`` is the grid of ``auto`` (another one
    only for reading runs of an earlier grid)."""
    taus = tau_grid if prior_weight == "auto" else (1.0 if prior_weight is None else float(prior_weight),)
    masks = (False, True) if masking == "auto" else (bool(masking),)
    if ranking == "auto":
        inner = scoring_candidates(prior_weight, masking, novel_share, tau_grid, current_share) or [
            (mask, tau) for mask in masks for tau in taus]
        return [tuple(c) + (None,) * (4 - len(c)) + (popularity,) for c in inner for popularity in (False, True)]
    if novel_share is None:
        if len(taus) == 1 and len(masks) == 1:
            return []
        return [(mask, tau) for mask in masks for tau in taus]
    betas = NOVEL_SHARE_GRID if novel_share == "auto" else (float(novel_share),)
    alphas = CURRENT_SHARE_GRID if current_share == "auto" else (float(current_share or 0.0),)
    if len(taus) * len(masks) * len(betas) * len(alphas) == 1:
        return []
    if current_share == "auto":
        return [(mask, tau, beta, alpha) for mask in masks for tau in taus for beta in betas for alpha in alphas]
    return [(mask, tau, beta) for mask in masks for tau in taus for beta in betas]


def scoring_label(mask, tau, novel_share=None, current_share=None, popularity=None):
    """How a scoring candidate is named in logs and the benchmark report."""
    return (f"{'within-interest ' if mask else ''}tau {tau:g}" + ("" if novel_share is None else f" novel {novel_share:g}")
            + ("" if current_share is None else f" current {current_share:g}")
            + ("" if popularity is None else f" ranking {'popularity' if popularity else 'query'}"))


def first_category_table(dataset, field):
    """Category index per internal item id (first value of a multi-valued field), ``-1`` for none."""
    return first_category_tokens(dataset, field) - 1  # token 0 is RecBole's padding value


class GemiRec(GemiRecQueries, MultiInterestRecommender):
    """GemiRec as a RecBole sequential model (``model=GemiRec``). The query side (parts and the history
    -> queries computation) is :class:`~recbole_gemirec.model.gemirec_queries.GemiRecQueries`; this class
    adds the training losses, the stages and the per-user interest cache."""

    CONFIG_RULES = gemirec_config.CONFIG_RULES
    CONFIG_RELATIONS = tuple(gemirec_config.RELATIONS)
    check_config = staticmethod(gemirec_config.check_relations)
    category_fields = staticmethod(gemirec_config.category_fields)
    check_dataset = staticmethod(gemirec_config.check_dataset)
    apply_recipe = staticmethod(gemirec_config.apply_recipe)
    CHECKPOINT_DEFAULTS = gemirec_config.CHECKPOINT_DEFAULTS

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.logger = getLogger()

        # load parameters info
        self.loss_weights = [float(w) for w in config["loss_weights"]]
        self.retrieval_interests = config["retrieval_interests"]
        self.target_softmax = self.setting(config, "target_softmax")
        self.kmeans_init = config["kmeans_init"]
        self.joint_codes = config["joint_codes"] or "frozen"
        weight = config["interest_prior_weight"]
        # tau; "auto": chosen on the valid split at the end of the joint stage (PRIOR_WEIGHT_GRID)
        self.prior_weight_auto = weight == "auto"
        # (interest_masking, tau[, beta[, alpha]]) chosen among on the valid split after the joint stage
        transition = config["interest_predictor"] == "transition"
        novel_share = self.setting(config, "novel_interest_share") if transition else None
        current_share = self.setting(config, "current_interest_share") if transition else None
        ranking = self.setting(config, "within_interest_ranking")
        self.scoring_candidates = scoring_candidates(weight, config["interest_masking"], novel_share,
                                                     current_share=current_share, ranking=ranking)
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
        if config["interest_source"] == "category" and self.item_category is None:
            raise ValueError("interest_source=category needs interest_category_field set to an item field")
        # the interest sources whose joint stages the trainer compares on valid (one unless interest_source: auto)
        self.interest_source_candidates = self._interest_source_candidates(config)

        # define layers and loss
        self._configured_architecture = self._architecture(config, cardinalities)
        self.build_query_parts(self._configured_architecture, self.item_category)
        self.initial_prior_weight = 1.0 if weight in (None, "auto") else float(weight)  # tau until a choice
        self.prior_weight.fill_(self.initial_prior_weight)
        if transition:
            # beta until a choice under auto: 0.2, the best of the counting reference ranker (docs/gemirec.md)
            self.initial_novel_share = NOVEL_SHARE_GRID[2] if novel_share == "auto" else float(novel_share)
            self.novel_share.fill_(self.initial_novel_share)
            # alpha until a choice under auto: 0, the history's shares as they are
            self.initial_current_share = 0.0 if current_share == "auto" else float(current_share or 0.0)
            self.current_share.fill_(self.initial_current_share)
            # the training sequences cut as the evaluation cuts a held-out user's (interest_transitions.training_cut)
            self.transition_samples = training_cut(dataset, self.POS_ITEM_ID, self.ITEM_SEQ)
        if self.popularity_column:  # the training interactions per item (within_interest_ranking)
            trained = dataset.inter_feat[dataset.iid_field]
            self.item_train_counts = torch.bincount(trained, minlength=self.n_items).double()
        self.sampler = InterestNegativeSampler(
            config["hard_interest_negatives"], config["easy_interest_negatives"], self.n_items
        )
        self.loss_fct = item_softmax_loss(config, dataset, self.n_items, default_mode="full",
                                          neg_sample_num=config["neg_sample_num"] or 1280,
                                          queries_per_example=self._queries_per_example())
        self.n_users = dataset.user_num
        self.register_buffer("interest_cache", torch.full((self.n_users, self.interest_num), -1, dtype=torch.long))
        self.register_buffer("interest_cache_log_prob", torch.zeros(self.n_users, self.interest_num))
        self.stage = STAGES[0]
        self.apply(self._init_weights)

    def set_scoring(self, masking, prior_weight, novel_share=None, current_share=None, popularity=None):
        """As :meth:`GemiRecQueries.set_scoring`; a new beta or alpha changes which interests the predictor
        proposes and their probabilities, so the interest cache is emptied and rebuilt on demand (tau, masking
        and the within-interest ranking only change how cached interests are scored)."""
        changed = ((novel_share is not None and float(novel_share) != float(self.novel_share))
                   or (current_share is not None and float(current_share) != float(self.current_share)))
        super().set_scoring(masking, prior_weight, novel_share, current_share, popularity)
        if changed:
            self.interest_cache.fill_(-1)

    @torch.no_grad()
    def count_interest_transitions(self):
        """``interest_predictor: transition``: count the population's interest transitions over the training
        sequences with the items' current interests (at the joint stage's start, once the codes are fixed)."""
        sources, future, owner = self.transition_samples
        interest_of = self.all_item_interest_ids().cpu()
        source_ids = interest_of[sources].masked_fill(sources == 0, -1)
        table = count_transitions(source_ids, interest_of[future], owner, self.n_interests)
        self.interest_transitions.copy_(table.to(self.interest_transitions.device))

    def _queries_per_example(self):
        """Queries scored against the item negatives per training example in the joint stage: the target
        interest's, plus the K (and u) of ``retrieval_interests: predicted`` / ``both``."""
        predicted = self.interest_num + int(self.user_query) if self.retrieval_interests in ("predicted", "both") else 0
        return predicted + int(self.retrieval_interests in ("target", "both"))

    def _architecture(self, config, cardinalities):
        """What :meth:`build_query_parts` builds, from the configuration (docs/design.md §2); under
        ``interest_source: auto`` the first candidate's (the learned dictionary)."""
        arch = {key: config[key] for key in ARCHITECTURE_KEYS}
        arch.update(
            interest_source=self.interest_source_candidates[0],
            n_items=self.n_items, max_seq_length=self.max_seq_length, feature_cardinalities=list(cardinalities),
            n_categories=None, interest_dictionary_sizes=[int(s) for s in config["interest_dictionary_sizes"]],
            interest_distribution=config["interest_distribution"] or "softmax",
            interest_weighting=config["interest_weighting"] or "none",
        )
        return arch

    def _interest_source_candidates(self, config):
        """``interest_source: auto`` (beyond the paper; docs/gemirec.md): the learned dictionary, then the
        category field's interests where there is one that gives at least ``interest_num`` interests; the
        trainer keeps the one whose joint stage validates better. A distributed run keeps the learned
        dictionary (its model is wrapped once, so its parts cannot be rebuilt between the two)."""
        source = config["interest_source"]
        if source != "auto":
            return (source,)
        if self.item_category is None:
            return ("learned",)
        n_interests = int(self.item_category.max().item()) + 2  # the categories and "unknown"
        if config["interest_num"] > n_interests or not config["single_spec"]:
            self.logger.info(set_color("GemiRec", "pink") + ": interest_source auto uses the learned dictionary "
                             + ("alone in a distributed run" if config["interest_num"] <= n_interests else
                                f"alone: the categories give {n_interests} interests, fewer than interest_num"))
            return ("learned",)
        return ("learned", "category")

    @property
    def interest_source(self):
        """The interest source the model's parts are built for (``learned`` or ``category``)."""
        return self.architecture["interest_source"]

    def backbone_state(self, state_dict=None):
        """Copies of the item embeddings' and user tower's weights (of this model, or of a checkpoint's
        ``state_dict``): what every interest source shares."""
        state_dict = self.state_dict() if state_dict is None else state_dict
        return {name: tensor.detach().clone() for name, tensor in state_dict.items()
                if name.split(".")[0] in ("item_embedding", "tower")}

    def use_interest_source(self, source, backbone, seed):
        """Rebuild the interest parts (dictionary, generator, fusion) for ``source``, freshly initialised from
        ``seed``, on top of the shared ``backbone`` (:meth:`backbone_state`): how the trainer starts the joint
        stage of another ``interest_source: auto`` candidate from the same retrieval stage."""
        if source not in self.interest_source_candidates:
            raise ValueError(f"interest source {source!r}; this model's candidates: {self.interest_source_candidates}")
        device, stage = self.item_embedding.weight.device, self.stage
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.build_query_parts(dict(self._configured_architecture, interest_source=source), self.item_category)
            self.apply(self._init_weights)
        self.load_state_dict(backbone, strict=False)
        # the scoring (tau, masking, beta) starts as configured: another candidate's choice is not this one's
        self.prior_weight.fill_(self.initial_prior_weight)
        if self.interest_predictor == "transition":
            self.novel_share.fill_(self.initial_novel_share)
            self.current_share.fill_(self.initial_current_share)
        self.to(device)
        self.set_stage(stage)

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
        targets and the fusion's interests do not move under them while the embeddings keep learning. The
        transition predictor counts its transitions over the interests in force from here on."""
        if self.joint_codes == "frozen" and not isinstance(self.dictionary, CategoryInterests):
            items = torch.arange(self.n_items, device=self.item_embedding.weight.device)
            self.frozen_codes.copy_(self.dictionary.codes_for(items, self.item_embedding.weight))
            self.codes_frozen.fill_(True)
        if self.interest_predictor == "transition":
            self.count_interest_transitions()
        if self.popularity_column:
            self.count_interest_popularity()

    @torch.no_grad()
    def count_interest_popularity(self):
        """``within_interest_ranking``: each item's log share of its interest's training interactions, with
        half an interaction added to every item (an item nobody took stays rankable), over the interests in
        force from the joint stage's start; 0 for the padding item."""
        interest_of = self.all_item_interest_ids()
        counts = self.item_train_counts.to(interest_of.device) + 0.5
        counts[0] = 0.0
        totals = torch.zeros(self.n_interests, dtype=counts.dtype, device=counts.device)
        totals.index_add_(0, interest_of.clamp(min=0), counts)
        share = (counts / totals[interest_of.clamp(min=0)].clamp(min=1e-12)).clamp(min=1e-12)
        self.item_interest_log_share.copy_(share.log().masked_fill(interest_of < 0, 0.0).to(self.item_interest_log_share))

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
    def user_features_of(self, interaction):
        if self.user_feature_table is None:
            return None
        return self.user_feature_table[interaction[self.USER_ID]]

    def user_vector(self, interaction):
        """u: the user tower's output ``[B, D]``."""
        return self.user_vector_of(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                                   self.user_features_of(interaction))

    def interest_scores(self, interaction):
        """The predictor's ranking of all interests for each user ``[B, n_interests]``
        (:meth:`~recbole_gemirec.model.gemirec_queries.GemiRecQueries.interest_scores_of`)."""
        return self.interest_scores_of(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                                       self.user_features_of(interaction))

    @torch.no_grad()
    def select_user_interests(self, interaction):
        """Top-K interests per user under the code limit ``[B, K]`` (docs/design.md, interest cache)."""
        return self.select_interests(self.interest_scores(interaction))[0]

    @torch.no_grad()
    def refresh_interest_cache(self, interaction):
        """Write the batch users' interest cache rows from their histories in ``interaction``."""
        users = interaction[self.USER_ID]
        self.interest_cache[users], self.interest_cache_log_prob[users] = self.select_interests(self.interest_scores(interaction))

    def cached_interests(self, interaction):
        """The users' cached ``(interest ids, log-probabilities)``, ``[B, K]`` each; rows never built are
        filled from the predictor."""
        users = interaction[self.USER_ID]
        ids, log_prob = self.interest_cache[users], self.interest_cache_log_prob[users]
        missing = ids[:, 0] < 0
        if missing.any():
            ids, log_prob = ids.clone(), log_prob.clone()
            with torch.no_grad():
                ids[missing], log_prob[missing] = self.select_interests(self.interest_scores(interaction[missing]))
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
        return self.query_slot_ids(self.interest_cache[interaction[self.USER_ID]])

    def query_interest_log_probs(self, interaction):
        log_prob = self.interest_cache_log_prob[interaction[self.USER_ID]]
        if self.user_query:
            log_prob = torch.cat([log_prob.new_zeros(log_prob.shape[0], 1), log_prob], dim=1)
        return log_prob

    def serving_architecture(self):
        """The query side's description and the stage (queries use the interests in the joint stage only)."""
        return dict(self.architecture, stage=self.stage)

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
        cached = self.cached_interests(interaction) if self.stage == "joint" else None
        return self.queries_from_history(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN],
                                         self.user_features_of(interaction), cached)[0]

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

    def _predicted_interest_loss(self, generator_logits, user, item_seq, pos_items):
        """``retrieval_interests: predicted``: the retrieval loss with the user's K predicted interests
        (the interest cache's selection, no gradient into the generator), each item scored by the max over
        the K queries - the same scoring as inference - against the configured item negatives."""
        with torch.no_grad():
            chosen, log_prob = self.select_interests(generator_logits.detach())
        queries = self.scoring_queries(chosen, log_prob, user, item_seq)  # [B, K, D (+ 1)]
        table = self.item_embeddings()
        positive = torch.einsum("bkd,bd->bk", queries, table[pos_items]).max(dim=1).values
        shared = self.loss_fct.draw_negatives(pos_items.device)  # the same negatives for every query
        negatives = torch.stack([self.loss_fct.negative_logits(queries[:, k], pos_items, table, shared)
                                 for k in range(queries.shape[1])], dim=1).max(dim=1).values
        return self.loss_fct.loss_from_logits(positive, negatives)

    def _target_interest_loss(self, generator_logits, target_ids, user, item_seq, pos_items):
        """The paper's MIRM loss: the query of the target's own interest against the item negatives and
        the same target under hard and easy negative interests."""
        if self.target_softmax == "interest":
            return self._within_interest_loss(target_ids, user, item_seq, pos_items)
        negatives = self.sampler.sample(generator_logits, target_ids, self.item_interest_ids)
        queries = self.fused_queries(torch.cat([target_ids.unsqueeze(1), negatives.clamp(min=0)], 1), user, item_seq)
        target_emb = self.item_embedding(pos_items)
        interest_negative = torch.einsum("bnd,bd->bn", queries[:, 1:], target_emb)
        interest_negative = interest_negative.masked_fill(negatives < 0, float("-inf"))
        return self.loss_fct(queries[:, 0], pos_items, self.item_embedding.weight, interest_negative)

    def _within_interest_loss(self, target_ids, user, item_seq, pos_items):
        """``target_softmax: interest``: the query of the target's interest against the other items of that
        interest only, so it learns p(item | interest, user) while the generator learns p(interest | user);
        under within-interest scoring (``interest_masking``) their sum is the factorised log p(item | user).
        Interest negatives do not apply: another interest's query never scores this item under masking. The
        item negatives are the configured ones (``item_negatives``), those of other interests left out."""
        query = self.fused_queries(target_ids.unsqueeze(1), user, item_seq)[:, 0]
        interest_of = self.all_item_interest_ids()
        return self.loss_fct(query, pos_items, self.item_embedding.weight,
                             leave_out=lambda ids: interest_of[ids].unsqueeze(0) != target_ids.unsqueeze(1))

    def _joint_losses(self, interaction):
        """(λ1 L_IDMM, λ2 L_MIPDM, λ3 L_MIRM), reported separately by RecBole's trainer."""
        w_dict, w_gen, w_ret = self.loss_weights
        pos_items = interaction[self.POS_ITEM_ID]
        target_ids = self.item_interest_ids(pos_items)
        generator_logits = self.interest_scores(interaction)
        if self.interest_predictor in ("frequency", "transition"):
            generator_loss = generator_logits.new_zeros(())
            # history frequencies mark unseen interests -inf; hard negatives come from the seen ones first
            generator_logits = generator_logits.clamp(min=-1e9)
        else:
            generator_loss = self.generator.loss(generator_logits, target_ids)
        user, item_seq = self.user_vector(interaction), interaction[self.ITEM_SEQ]
        retrieval = generator_loss.new_zeros(())
        if self.retrieval_interests in ("target", "both"):
            retrieval = retrieval + self._target_interest_loss(generator_logits, target_ids, user, item_seq, pos_items)
        if self.retrieval_interests in ("predicted", "both"):
            retrieval = retrieval + self._predicted_interest_loss(generator_logits, user, item_seq, pos_items)
        dictionary_loss = self._dictionary_loss(interaction) if self.joint_training else retrieval.new_zeros(())
        return w_dict * dictionary_loss, w_gen * generator_loss, w_ret * retrieval
