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

import torch
import torch.nn as nn

from recbole_gemirec.model.interest_cache import (
    fill_missing, history_frequency_scores, interest_log_probs, select_interests,
)
from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary
from recbole_gemirec.model.interest_generator import InterestGenerator
from recbole_gemirec.model.multi_interest_retrieval import InterestFusion, UserTower
from recbole_gemirec.model.scoring import catalogue_logsumexp

# interest_levels: ~ picks the deepest code prefix whose interests still cover this many items each on
# average (docs/gemirec.md, interest granularity).
ITEMS_PER_INTEREST = 20

ARCHITECTURE_KEYS = (
    "n_items", "embedding_size", "max_seq_length", "feature_cardinalities",
    "interest_source", "n_categories", "interest_dictionary_sizes", "interest_dim", "commitment_beta",
    "interest_levels", "gpt_hidden", "gpt_layers", "gpt_heads", "gpt_dropout", "interest_distribution",
    "tower_layers", "tower_heads", "dropout_prob", "fusion",
    "interest_num", "interest_code_limit", "interest_predictor", "generator_history_prior",
    "user_query", "interest_weighting", "joint_training",
)


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
        self.fusion = InterestFusion(self.dictionary.code_size, self.embedding_size, residual=arch["fusion"] != "concat")
        self.register_buffer("prior_weight", torch.tensor(1.0))  # tau of the scoring bias
        # Item codes fixed at the joint stage's start (joint_codes: frozen); codes_frozen says whether they are.
        self.register_buffer("frozen_codes", torch.zeros(n_items, self.dictionary.levels, dtype=torch.long))
        self.register_buffer("codes_frozen", torch.zeros((), dtype=torch.bool))
        self.stage = arch.get("stage") or "joint"  # GemiRec sets its own; a serving instance is told
        self.architecture = {key: arch.get(key) for key in ARCHITECTURE_KEYS}
        self.architecture.update(interest_levels=self.interest_levels, n_categories=n_categories,
                                 feature_cardinalities=cardinalities)

    def queries_from_history(self, item_seq, item_seq_len, user_features=None, interests=None):
        """``(queries [B, K', D'], interest ids aligned with them [B, K'] or None)`` of histories
        ``item_seq [B, L]`` (left-aligned, zero-padded). In the joint stage the interests are
        ``interests`` = ``(ids [B, K], log-probabilities [B, K])`` of an interest cache, or, when
        ``None``, the predictor's top-K under the code limit, chosen now; before it the one query is u."""
        user = self.user_vector_of(item_seq, item_seq_len, user_features)
        if self.stage != "joint":
            return self.with_bias(user.unsqueeze(1), user.new_zeros(user.shape[0], 1)), None
        if interests is None:
            interests = self.select_interests(self.interest_scores_of(item_seq, item_seq_len, user_features))
        ids, log_prob = interests
        return self.scoring_queries(ids, log_prob, user), self.query_slot_ids(ids)

    # --- parts ------------------------------------------------------------------------------------
    def user_vector_of(self, item_seq, item_seq_len, user_features=None):
        """u: the user tower's output ``[B, D]``."""
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

    def interest_scores_of(self, item_seq, item_seq_len, user_features=None):
        """The predictor's ranking of all interests for each history ``[B, n_interests]``: GPT logits
        (log-probabilities under ``interest_distribution: repeat_explore``), or history frequency for
        the GemiRec-M ablation."""
        codes = self.item_codes(item_seq)
        ids = self.dictionary.interest_ids(codes[..., : self.interest_levels]).masked_fill(item_seq == 0, -1)
        if self.interest_predictor == "frequency":
            return history_frequency_scores(ids, self.n_interests)
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

    def fused_queries(self, interest_ids, user):
        """Fused queries ``[B, N, D]`` of interest ids ``[B, N]`` (codewords detached when the dictionary
        is frozen, GemiRec-J)."""
        interest_emb = self.dictionary.code_embedding(self.interest_codes(interest_ids))
        if not self.joint_training:
            interest_emb = interest_emb.detach()
        return self.fusion(interest_emb, user)

    def scoring_queries(self, ids, log_prob, user):
        """The vectors items are scored with for interests ``ids [B, K]`` of probabilities ``log_prob``:
        the fused queries, u first with ``user_query``, and the bias column of ``interest_weighting``."""
        queries = self.fused_queries(ids, user)
        if self.user_query:  # u itself as one more query, over "any interest" (log-probability 0)
            queries = torch.cat([user.unsqueeze(1), queries], dim=1)
            log_prob = torch.cat([log_prob.new_zeros(log_prob.shape[0], 1), log_prob], dim=1)
        bias = self.prior_weight * log_prob
        if self.interest_weighting == "log_joint":
            bias = bias - catalogue_logsumexp(queries, self.item_embedding.weight[1:])
        return self.with_bias(queries, bias)

    def with_bias(self, queries, bias):
        """``queries`` with the bias column of ``interest_weighting`` (unchanged under ``none``)."""
        if self.interest_weighting == "none":
            return queries
        return torch.cat([queries, bias.unsqueeze(-1).to(queries.dtype)], dim=-1)

    def item_embeddings(self):
        """The item table queries are scored against (a column of ones for the bias, unless ``none``)."""
        table = self.item_embedding.weight
        if self.interest_weighting == "none":
            return table
        return torch.cat([table, table.new_ones(table.shape[0], 1)], dim=1)

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
