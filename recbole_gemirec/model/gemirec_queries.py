"""GemiRec's query side: from a behaviour history to the queries items are scored with (docs/design.md
§2.2-2.4), without RecBole.

Two classes share it: :class:`~recbole_gemirec.model.gemirec.GemiRec`, the RecBole model that trains
these parts, and the live serving model (:mod:`recbole_gemirec.serving.live`), which rebuilds them from
an export and answers a request from a history without RecBole's data pipeline. Both build their parts
with :meth:`GemiRecQueries.build_query_parts` from one architecture description (plain JSON values) and
compute queries with the same methods, so a served query is the model's own query, and the live
model's weights are the model's state dict, key for key.

The architecture is everything a query depends on besides the weights: sizes of the parts, the
interest granularity, the cache's selection rule and the scoring options (``ARCHITECTURE_KEYS``).
"""

import hashlib
from contextlib import contextmanager

import torch
import torch.nn as nn

from recbole_gemirec.model.interest_cache import (
    fill_missing, history_frequency_scores, interest_log_probs, select_interests,
)
from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary
from recbole_gemirec.model.interest_generator import InterestGenerator
from recbole_gemirec.model.interest_transitions import MAX_TRANSITION_INTERESTS, transition_log_probs
from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower
from recbole_gemirec.model.scoring import catalogue_logsumexp

# interest_levels: ~ picks the deepest code prefix whose interests still cover this many items each on
# average (docs/gemirec.md, interest granularity).
ITEMS_PER_INTEREST = 20

ARCHITECTURE_KEYS = (
    "n_items", "embedding_size", "max_seq_length", "feature_cardinalities",
    "interest_source", "n_categories", "interest_dictionary_sizes", "interest_dim", "commitment_beta",
    "interest_levels", "gpt_hidden", "gpt_layers", "gpt_heads", "gpt_dropout", "interest_distribution",
    "tower_layers", "tower_heads", "dropout_prob", "fusion", "fusion_interest_embedding",
    "fusion_history",
    "interest_num", "interest_code_limit", "interest_predictor", "generator_history_prior",
    "user_query", "user_query_log_weight", "interest_weighting", "interest_masking", "joint_training",
    "within_interest_ranking",
)

# Penalty of the interest-masking columns: an item outside a query's interest scores about this much lower
# under it (per differing code level), so it never outranks an item the query may score; matches add an
# exact 0, so scores within the interest are unchanged.
MASK_PENALTY = 1.0e4


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


class GemiRecQueries:
    """Mixin of an ``nn.Module``: GemiRec's parts and the history -> queries computation.

    After :meth:`build_query_parts` the module has ``item_embedding``, ``dictionary``, ``generator``,
    ``tower``, ``fusion`` and the buffers ``prior_weight``, ``frozen_codes``, ``codes_frozen``;
    :attr:`architecture` records what built them (interest levels resolved).
    """

    UNPADDED_WITHOUT_LENGTH = True  # queries_from_history takes item_seq_len=None (no padding)

    def build_query_parts(self, arch, item_category=None):
        """Create the parts described by ``arch`` (a dict over ``ARCHITECTURE_KEYS``; ``interest_levels``
        and ``n_categories`` may be ``None``: derived here). ``item_category`` (category index per item
        id, -1 for none) is needed by ``interest_source: category`` at training time; the live model
        passes ``None`` and loads the category table from the weights."""
        self.embedding_size = int(arch["embedding_size"])
        self.interest_num = int(arch["interest_num"])
        self.code_limit = int(arch["interest_code_limit"])
        self.interest_predictor = arch["interest_predictor"]
        self.history_prior = bool(arch["generator_history_prior"])
        self.interest_distribution = arch["interest_distribution"]
        self.user_query = bool(arch["user_query"])
        self.user_query_log_weight = float(arch.get("user_query_log_weight") or 0.0)
        self.interest_weighting = arch["interest_weighting"]
        self.joint_training = bool(arch["joint_training"])
        n_items = int(arch["n_items"])

        self.item_embedding = nn.Embedding(n_items, self.embedding_size, padding_idx=0)
        code_size = len(arch["interest_dictionary_sizes"]) * int(arch["interest_dim"])
        n_categories = arch.get("n_categories")
        if arch["interest_source"] == "category":
            if item_category is None:  # the live model: the table comes with the weights
                if n_categories is None:
                    raise ValueError("interest_source=category needs the item category table or n_categories")
                item_category = torch.full((n_items,), -1, dtype=torch.long)
            self.dictionary = CategoryInterests(item_category, code_size, n_categories)
            n_categories = self.dictionary.n_interests
        else:
            self.dictionary = InterestDictionary(
                self.embedding_size, arch["interest_dictionary_sizes"], arch["interest_dim"], arch["commitment_beta"],
            )
        levels = arch["interest_levels"]
        self.interest_levels = min(
            default_interest_levels(self.dictionary.sizes, n_items) if levels is None else int(levels),
            self.dictionary.levels,
        )
        self.n_interests = self.dictionary.n_interests_at(self.interest_levels)
        if self.interest_predictor == "transition":
            self.register_transition_buffers()
        # within_interest_ranking popularity or auto: the items' log share of their interest's training
        # interactions (counted at the joint stage's start), one more item-table column, and whether the
        # interest queries rank by it (chosen on valid under auto); a buffer each, kept by checkpoints and exports
        self.popularity_column = (arch.get("within_interest_ranking") or "query") != "query"
        if self.popularity_column:
            self.register_buffer("item_interest_log_share", torch.zeros(n_items))
            self.register_buffer("popularity_ranking", torch.tensor(arch.get("within_interest_ranking") == "popularity"))
        cardinalities = [int(c) for c in arch["feature_cardinalities"]]
        self.generator = InterestGenerator(
            n_items, self.n_interests, self.dictionary.code_size, arch["gpt_hidden"], arch["gpt_layers"],
            arch["gpt_heads"], arch["max_seq_length"], cardinalities, arch["gpt_dropout"],
            repeat_explore=self.interest_distribution == "repeat_explore",
        )
        self.tower = UserTower(
            self.embedding_size, arch["max_seq_length"], arch["tower_layers"], arch["tower_heads"],
            arch["dropout_prob"], cardinalities,
        )
        self.fusion = InterestFusion(
            self.dictionary.code_size, self.embedding_size, residual=arch["fusion"] != "concat",
            n_interests=self.n_interests if arch.get("fusion_interest_embedding") else 0,
            history_size=self.embedding_size + 1 if arch.get("fusion_history") else 0,
        )
        self.fusion_history = bool(arch.get("fusion_history"))
        self.register_buffer("prior_weight", torch.tensor(1.0))  # tau of the scoring bias
        # interest_masking as in force (auto: chosen on valid after the joint stage, then stored with the weights)
        self.register_buffer("masking", torch.tensor(arch.get("interest_masking") is True))
        # Item codes fixed at the joint stage's start (joint_codes: frozen); codes_frozen says whether they are.
        self.register_buffer("frozen_codes", torch.zeros(n_items, self.dictionary.levels, dtype=torch.long))
        self.register_buffer("codes_frozen", torch.zeros((), dtype=torch.bool))
        self.stage = arch.get("stage") or "joint"  # GemiRec sets its own; a serving instance is told
        self.serving_interest_hidden = None  # set by freeze_for_serving (a plain attribute: not in the state dict)
        self.serving_masking_columns = None  # likewise
        self.normalisers_deferred = False  # set by defer_normalisers (serving over interest partitions)
        self.architecture = {key: arch.get(key) for key in ARCHITECTURE_KEYS}
        self.architecture.update(interest_levels=self.interest_levels, n_categories=n_categories,
                                 feature_cardinalities=cardinalities)

    def register_transition_buffers(self):
        """``interest_predictor: transition``: the population's interest transitions (counted by the trainer
        at the joint stage's start, :mod:`~recbole_gemirec.model.interest_transitions`), beta, the weight
        of the interests the history lacks, and alpha, the extra weight of the last item's interest; buffers,
        so checkpoints and exports keep them."""
        if self.n_interests > MAX_TRANSITION_INTERESTS:
            raise ValueError(
                f"interest_predictor=transition with {self.n_interests} interests is not allowed: its transition "
                f"table is interests x interests; allowed: at most {MAX_TRANSITION_INTERESTS} interests (fewer "
                "interest_levels or a smaller first dictionary level)")
        self.register_buffer("interest_transitions", torch.zeros(self.n_interests, self.n_interests))
        self.register_buffer("novel_share", torch.tensor(0.0))
        self.register_buffer("current_share", torch.tensor(0.0))

    @property
    def interest_masking(self):
        """Whether each interest query scores only its own interest's items (the ``masking`` buffer)."""
        return bool(self.masking)

    @property
    def scores_normalised(self):
        """Whether each query's scores are a log-softmax over the items it may score (``interest_masking``, or
        ``interest_weighting: log_joint``), whose normaliser someone must compute: the query side, or the
        retrieval where it is deferred (:meth:`defer_normalisers`)."""
        return self.interest_masking or self.interest_weighting == "log_joint"

    def set_scoring(self, masking, prior_weight, novel_share=None, current_share=None, popularity=None):
        """Put ``interest_masking``, tau, (transition predictor) beta and alpha, and (``within_interest_ranking``)
        whether the interest queries rank by popularity in force (they are buffers: checkpoints and exports keep
        them)."""
        self.masking.fill_(bool(masking))
        self.prior_weight.fill_(float(prior_weight))
        if novel_share is not None:
            self.novel_share.fill_(float(novel_share))
        if current_share is not None:
            self.current_share.fill_(float(current_share))
        if popularity is not None:
            self.popularity_ranking.fill_(bool(popularity))

    def queries_from_history(self, item_seq, item_seq_len, user_features=None, interests=None):
        """``(queries [B, K', D'], interest ids aligned with them [B, K'] or None)`` of histories
        ``item_seq [B, L]`` (left-aligned, zero-padded). In the joint stage the interests are
        ``interests`` = ``(ids [B, K], log-probabilities [B, K])`` of an interest cache, or, when
        ``None``, the predictor's top-K under the code limit, chosen now; before it the one query is u.
        ``item_seq_len=None``: no row is padded, each holds ``item_seq.shape[1] <= L`` items
        (:attr:`UNPADDED_WITHOUT_LENGTH`; the user tower reads the final position without a mask)."""
        user = self.user_vector_of(item_seq, item_seq_len, user_features)
        if self.stage != "joint":
            return self.scoring_columns(user.unsqueeze(1), user.new_zeros(user.shape[0], 1)), None
        if interests is None:
            if item_seq_len is None:
                item_seq_len = item_seq.new_full((item_seq.shape[0],), item_seq.shape[1])
            interests = self.select_interests(self.interest_scores_of(item_seq, item_seq_len, user_features))
        ids, log_prob = interests
        return self.scoring_queries(ids, log_prob, user, item_seq), self.query_slot_ids(ids)

    # --- parts ------------------------------------------------------------------------------------
    def user_vector_of(self, item_seq, item_seq_len, user_features=None):
        """u: the user tower's output ``[B, D]`` (``item_seq_len=None``: no row is padded)."""
        return self.tower(self.item_embedding(item_seq), item_seq_len, user_features)

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

    def history_interest_ids(self, item_seq, codes=None):
        """Interest ids of a history's items ``[B, L]``, -1 at padding; ``codes`` are the items' code
        tuples where the caller already has them."""
        codes = self.item_codes(item_seq) if codes is None else codes
        return self.dictionary.interest_ids(codes[..., : self.interest_levels]).masked_fill(item_seq == 0, -1)

    def interest_scores_of(self, item_seq, item_seq_len, user_features=None):
        """The predictor's ranking of all interests for each history ``[B, n_interests]``: GPT logits
        (log-probabilities under ``interest_distribution: repeat_explore``), history frequency for
        the GemiRec-M ablation, or the transition predictor's log-probabilities."""
        codes = self.item_codes(item_seq)
        ids = self.history_interest_ids(item_seq, codes)
        if self.interest_predictor == "frequency":
            return history_frequency_scores(ids, self.n_interests)
        if self.interest_predictor == "transition":
            frequency = history_frequency_scores(ids, self.n_interests)
            last = ids.gather(1, (item_seq_len - 1).clamp(min=0).unsqueeze(1)).squeeze(1)
            return transition_log_probs(frequency, self.interest_transitions, self.novel_share, last,
                                        self.current_share)
        state = self.generator.next_interest_state(
            item_seq, item_seq_len, self.dictionary.code_embedding(codes), user_features,
        )
        logits = self.generator.head(state)
        counts = self.generator.history_counts(ids, self.n_interests)
        if self.history_prior:
            logits = logits + self.generator.history_prior(counts)
        if self.interest_distribution == "repeat_explore":
            return self.generator.repeat_explore_log_probs(logits, state, counts > 0)
        return logits

    def select_interests(self, scores):
        """``(ids [B, K], log-probabilities [B, K])`` of the top-K interests under the code limit (the
        interest cache's rule, docs/design.md §2.4)."""
        chosen = fill_missing(select_interests(scores, self.interest_codes, self.interest_num, self.code_limit))
        return chosen, interest_log_probs(scores, self.interest_predictor).gather(1, chosen)

    def fused_queries(self, interest_ids, user, item_seq):
        """Fused queries ``[B, N, D]`` of interest ids ``[B, N]`` for users of vector ``user`` and history
        ``item_seq`` (codewords detached when the dictionary is frozen, GemiRec-J)."""
        history = self.history_in_interests(interest_ids, item_seq) if self.fusion_history else None
        if self.serving_interest_hidden is not None:
            return self.fusion.combine(self.serving_interest_hidden[interest_ids], user, history)
        interest_emb = self.dictionary.code_embedding(self.interest_codes(interest_ids))
        if not self.joint_training:
            interest_emb = interest_emb.detach()
        return self.fusion(interest_emb, user, interest_ids, history)

    @torch.no_grad()
    def freeze_for_serving(self):
        """Keep what depends on the final weights alone: the fusion's interest part for every interest
        (:meth:`InterestFusion.interest_hidden`, ``[n_interests, D]``), so a request looks its interests up
        instead of decoding their codes and running that part of the fusion's first layer; under masking the
        masking columns of every interest id (row 0: u), looked up likewise; the user tower's feature tables laid
        end to end and the attention its query reads folded (:meth:`UserTower.freeze_for_serving`), and the
        generator's likewise. Only for an instance that no longer trains (the serving side calls it after loading
        the weights)."""
        ids = torch.arange(self.n_interests, device=self.item_embedding.weight.device)
        emb = self.dictionary.code_embedding(self.interest_codes(ids))
        self.serving_interest_hidden = self.fusion.interest_hidden(emb, ids)
        if self.interest_masking:
            slots = torch.cat([ids.new_full((1,), -1), ids])
            self.serving_masking_columns = self.masking_columns(slots, self.item_embedding.weight.dtype)
        self.tower.freeze_for_serving()
        self.generator.freeze_for_serving()

    def retrieval_partitions(self):
        """How an exact index may split the catalogue by interest, or ``None`` (no ``interest_masking``).

        Under masking an interest query scores only its interest's items: the masking columns give every other
        item a penalty no score overcomes, and add exactly 0 within the interest. So its top-n is the top-n of
        its interest's items alone, and its log-softmax normaliser is over them alone; u scores the whole
        catalogue. A retrieval that scores each query over its own partition (serving's
        :class:`~recbole_gemirec.serving.partitions.InterestPartitions`) returns the same lists as the
        catalogue-wide index while scoring about ``N (1 + K / n_interests)`` items instead of ``N (K + 1)``.

        Returns ``{"columns": [first, stop], "level_sizes": [...], "bias_column": int or None, "normalise":
        {"user": bool, "interests": bool}}``: the masking columns of :meth:`item_embeddings` (one one-hot block
        per code level); the column of ones whose query value is the query's bias (not part of what the
        normaliser sums over); and which queries' scores are a log-softmax over the items they may score
        (every query but those ranked by popularity), for a query side whose normalisers are deferred
        (:meth:`defer_normalisers`).
        """
        if not self.interest_masking:
            return None
        weighted = self.interest_weighting != "none"
        first = self.embedding_size + weighted
        sizes = [int(size) for size in self.dictionary.sizes[: self.interest_levels]]
        by_popularity = self.popularity_column and bool(self.popularity_ranking)
        return {"columns": [first, first + sum(sizes)], "level_sizes": sizes,
                "bias_column": self.embedding_size if weighted else None,
                "normalise": {"user": True, "interests": not by_popularity}}

    def defer_normalisers(self):
        """Leave each query's log-softmax normaliser out of its bias (the serving side of an export with
        :meth:`retrieval_partitions`): the retrieval computes it from the scores it computes anyway, over the
        query's partition, instead of the query side scanning the catalogue once per query."""
        if self.retrieval_partitions() is None:
            raise ValueError("normalisers can only be deferred under interest_masking (retrieval_partitions)")
        self.normalisers_deferred = True

    def history_in_interests(self, interest_ids, item_seq):
        """``[B, N, D + 1]``: for each interest of ``interest_ids [B, N]``, the mean embedding of the
        history's items of that interest and log(1 + their count); zeros where the history has none
        (``fusion_history``)."""
        seq_ids = self.history_interest_ids(item_seq)
        seq_emb = self.item_embedding(item_seq)
        match = (interest_ids.unsqueeze(-1) == seq_ids.unsqueeze(1)).to(seq_emb.dtype)  # [B, N, L]
        count = match.sum(dim=-1, keepdim=True)
        mean = torch.bmm(match, seq_emb) / count.clamp(min=1.0)
        return torch.cat([mean, torch.log1p(count)], dim=-1)

    def scoring_queries(self, ids, log_prob, user, item_seq):
        """The vectors items are scored with for interests ``ids [B, K]`` of probabilities ``log_prob``:
        the fused queries, u first with ``user_query`` (log-probability ``user_query_log_weight``), the
        bias column of ``interest_weighting`` and the columns of ``interest_masking``."""
        queries = self.fused_queries(ids, user, item_seq)
        if self.user_query:  # u itself as one more query, over "any interest"
            queries = torch.cat([user.unsqueeze(1), queries], dim=1)
            log_prob = torch.cat([log_prob.new_full((log_prob.shape[0], 1), self.user_query_log_weight), log_prob], dim=1)
        bias = self.prior_weight * log_prob
        slot_ids = self.query_slot_ids(ids)
        popularity = None
        if self.popularity_column and bool(self.popularity_ranking):
            # within_interest_ranking: popularity puts log p(item | interest) counted from the training
            # interactions in place of each interest query's log-softmax (u keeps its own); where no query ranks
            # by it, its weights would all be 0 and the queries unchanged: nothing is computed (a served query
            # function is that much smaller)
            popularity = (slot_ids >= 0).to(queries.dtype)
        if self.scores_normalised and not self.normalisers_deferred:
            # each query's scores become a log-softmax over the items it may score: the catalogue, or its
            # interest's items under masking (raw inner products of different interests' items are not
            # comparable: each interest query is trained against the whole catalogue); the normaliser is
            # computed only for the slots that rank by their query
            normaliser = self.query_normalisers(queries, slot_ids, popularity)
            bias = bias - (normaliser if popularity is None else normaliser * (1.0 - popularity))
        if popularity is not None:
            queries = queries * (1.0 - popularity).unsqueeze(-1)
        return self.scoring_columns(queries, bias, slot_ids, popularity)

    def query_normalisers(self, queries, slot_ids, popularity=None):
        """``[B, K']``: each query's log-sum-exp over the items it may score (the catalogue, or its interest's
        items under masking), for the slots that rank by their query (0 for those ranked by popularity).

        Within :meth:`reusing_normalisers` every slot's value is kept for the queries it was computed from,
        so candidates of the scoring choice that differ only in tau or the ranking compute it once."""
        memo = self.__dict__.get("_normaliser_memo")
        key = None
        if memo is not None:
            popularity = None  # every slot, once: later candidates may rank other slots by their query
            key = (self.interest_masking, _digest(queries), _digest(slot_ids))
            if key in memo:
                return memo[key]
        own = slice(None) if popularity is None else (popularity == 0).any(dim=0)
        unbiased = self.scoring_columns(queries[:, own], queries.new_zeros(queries.shape[:2])[:, own], slot_ids[:, own])
        normaliser = queries.new_zeros(queries.shape[:2])
        normaliser[:, own] = catalogue_logsumexp(unbiased, self.item_embeddings()[1:])
        if key is not None:
            memo[key] = normaliser
        return normaliser

    @contextmanager
    def reusing_normalisers(self):
        """Keep :meth:`query_normalisers`' results while the weights and the item table stay as they are (the
        scoring choice after the joint stage, which evaluates the valid split once per candidate)."""
        self.__dict__["_normaliser_memo"] = {}
        try:
            yield
        finally:
            self.__dict__.pop("_normaliser_memo", None)

    def scoring_columns(self, queries, bias, slot_ids=None, popularity=None):
        """``queries [B, K, D]`` with the bias column of ``interest_weighting`` (none under ``none``) and,
        with ``interest_masking``, one column per codeword of the interest's code levels: ``0`` for the
        query's own codeword and ``-MASK_PENALTY`` for the others (all zero for u, ``slot_ids`` -1, and
        for every query when ``slot_ids`` is None), against the items' one-hot codes in
        :meth:`item_embeddings`; with ``within_interest_ranking`` other than ``query`` last the weight of the
        items' popularity column (``popularity [B, K]``, 1 where a query ranks by it; ``None``: 0)."""
        parts = [queries]
        if self.interest_weighting != "none":
            parts.append(bias.unsqueeze(-1).to(queries.dtype))
        if self.interest_masking:
            if slot_ids is None:
                slot_ids = queries.new_full(queries.shape[:2], -1, dtype=torch.long)
            parts.append(self.masking_columns(slot_ids, queries.dtype))
        if self.popularity_column:
            parts.append((queries.new_zeros(queries.shape[:2]) if popularity is None else popularity).unsqueeze(-1))
        return torch.cat(parts, dim=-1) if len(parts) > 1 else queries

    def masking_columns(self, slot_ids, dtype):
        """The masking columns of queries of interest ids ``slot_ids`` (-1: u, all 0); a serving instance looks
        them up in the table :meth:`freeze_for_serving` kept."""
        if self.serving_masking_columns is not None:
            return self.serving_masking_columns[slot_ids + 1].to(dtype)
        onehot = self.code_one_hots(self.interest_codes(slot_ids.clamp(min=0)), dtype)
        return ((onehot - 1.0) * MASK_PENALTY).masked_fill((slot_ids < 0).unsqueeze(-1), 0.0)

    def code_one_hots(self, codes, dtype):
        """``codes [..., interest_levels]`` -> the concatenated one-hot of each level ``[..., sum of the
        levels' sizes]``."""
        sizes = [int(size) for size in self.dictionary.sizes[: self.interest_levels]]
        return torch.cat([nn.functional.one_hot(codes[..., level], size).to(dtype)
                          for level, size in enumerate(sizes)], dim=-1)

    def item_embeddings(self):
        """The item table queries are scored against: the item embeddings, a column of ones for the bias
        (unless ``interest_weighting: none``), the items' one-hot interest codes (``interest_masking``) and
        their log share of their interest's training interactions (``within_interest_ranking``)."""
        table = self.item_embedding.weight
        parts = [table]
        if self.interest_weighting != "none":
            parts.append(table.new_ones(table.shape[0], 1))
        if self.interest_masking:
            parts.append(self.item_code_one_hots(table))
        if self.popularity_column:
            parts.append(self.item_interest_log_share.to(table.dtype).unsqueeze(1))
        return torch.cat(parts, dim=1) if len(parts) > 1 else table

    def item_code_one_hots(self, table):
        """The one-hot interest codes of every item ``[n_items, sum of the levels' sizes]`` (masking's
        columns of :meth:`item_embeddings`)."""
        return self.per_item_table("one_hots", table.dtype, lambda codes: self.code_one_hots(codes, table.dtype))

    def all_item_interest_ids(self):
        """The interest id of every item ``[n_items]`` (row 0 is the padding item)."""
        return self.per_item_table("interest_ids", None, self.dictionary.interest_ids)

    def per_item_table(self, name, dtype, build):
        """``build(code prefixes of every item [n_items, interest_levels])``. While the codes are frozen it
        is a function of ``frozen_codes`` alone, so it is built once and kept until that buffer changes
        (its version counter or device), a hot path's saving; live codes rebuild it on every call."""
        frozen = bool(self.codes_frozen)
        key = (self.frozen_codes.data_ptr(), self.frozen_codes._version, dtype, self.interest_levels)
        cache = self.__dict__.setdefault("_per_item_tables", {})
        if frozen and name in cache and cache[name][0] == key:
            return cache[name][1]
        items = torch.arange(self.frozen_codes.shape[0], device=self.frozen_codes.device)
        value = build(self.item_codes(items)[:, : self.interest_levels])
        if frozen:
            cache[name] = (key, value)
        return value

    def query_slot_ids(self, ids):
        """Interest ids aligned with :meth:`scoring_queries`' rows ``[B, K']`` (-1: the query u of
        ``user_query``)."""
        if self.user_query:
            ids = torch.cat([ids.new_full((ids.shape[0], 1), -1), ids], dim=1)
        return ids

    def query_interest_codes(self, ids):
        """Code prefixes ``[..., interest_levels]`` of :meth:`query_slot_ids`' ids; -1 rows for u."""
        codes = self.interest_codes(ids.clamp(min=0))
        return codes.masked_fill((ids < 0).unsqueeze(-1), -1)


def _digest(tensor):
    """A content key of a tensor (its dtype, shape and bytes) for :meth:`GemiRecQueries.query_normalisers`' memo."""
    data = tensor.detach().contiguous().cpu()
    raw = data.reshape(-1).view(torch.uint8).numpy().tobytes()  # any dtype, bfloat16 too
    return str(data.dtype), tuple(data.shape), hashlib.blake2b(raw, digest_size=16).digest()
