"""Interest generator (MIPDM, GemiRec paper §3.3; docs/design.md §2.2).

A small causal GPT, separate from the user tower (its own parameters and its own objective), reads a
user-feature token followed by the behaviour sequence and predicts a distribution over all interest ids
for the user's *next* interaction. Because it is trained across all users to predict the next interest,
it can propose interests that never occurred in a user's history, which is what the earlier
multi-interest models could not do.

Sequences arrive as RecBole stores them: left-aligned, zero-padded at the end. With a causal mask a real
position never attends to a later one, so padding (always later) needs no extra mask.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last, freeze_for_serving


class InterestGenerator(nn.Module):
    """Causal GPT over [user-feature token, item_1, ..., item_L] -> logits over interest ids.

    Args:
        n_items: number of item ids (row 0 is padding).
        n_interests: size of the output vocabulary (all interest ids).
        code_size: size of an interest code embedding (C * d); an item token adds a projection of its
            item's (detached) interest code embedding to a learned item embedding, so the GPT reads the
            dictionary's structure as well as item identity.
        hidden, layers, heads: GPT size (paper: 16, 6, 4).
        max_length: longest behaviour sequence.
        feature_cardinalities: number of values of each user-feature field (empty: no feature token).
        repeat_explore: build the gate of :meth:`repeat_explore_log_probs` (absent otherwise, so the
            parameters, and checkpoints, of the plain softmax generator stay as they were).
    """

    def __init__(self, n_items, n_interests, code_size, hidden, layers, heads, max_length,
                 feature_cardinalities=(), dropout=0.1, repeat_explore=False):
        super().__init__()
        if hidden % heads != 0:
            raise ValueError(f"gpt_hidden={hidden} must be divisible by gpt_heads={heads}")
        self.use_features = len(feature_cardinalities) > 0
        self.item_embedding = nn.Embedding(n_items, hidden, padding_idx=0)
        self.code_projection = nn.Linear(code_size, hidden)
        self.feature_embeddings = nn.ModuleList([nn.Embedding(n, hidden) for n in feature_cardinalities])
        self.position_embedding = nn.Embedding(max_length + 1, hidden)
        self.blocks = nn.ModuleList([CausalSelfAttentionBlock(hidden, heads, dropout) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)
        self.head = nn.Linear(hidden, n_interests)
        self.dropout = nn.Dropout(dropout)
        self.history_weight = nn.Parameter(torch.ones(()))
        self.explore_gate = nn.Linear(hidden, 1) if repeat_explore else None

    def hidden_states(self, item_seq, item_code_emb, user_features=None):
        """Per-position hidden states ``[B, T, hidden]``; T = L + 1 with a feature token, else L.

        ``item_code_emb`` is ``[B, L, C*d]``, the code embeddings of the sequence's items (detached here).
        """
        x = self._inputs(item_seq, item_code_emb, user_features)
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def _inputs(self, item_seq, item_code_emb, user_features=None):
        """The token sequence the GPT reads ``[B, T, hidden]``, positions added."""
        tokens = self.item_embedding(item_seq) + self.code_projection(item_code_emb.detach())
        if self.use_features:
            feature_token = sum(emb(user_features[:, i]) for i, emb in enumerate(self.feature_embeddings))
            tokens = torch.cat([feature_token.unsqueeze(1), tokens], dim=1)
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        return self.dropout(tokens + self.position_embedding(positions))

    def last_index(self, item_seq_len):
        """Index of the state that has read the whole history (the last real item)."""
        return item_seq_len - 1 + (1 if self.use_features else 0)

    def next_interest_state(self, item_seq, item_seq_len, item_code_emb, user_features=None):
        """The normalised state ``[B, hidden]`` that has read each user's whole history."""
        index = self.last_index(item_seq_len).clamp(min=0)
        last = encode_last(self.blocks, self._inputs(item_seq, item_code_emb, user_features), index)
        return self.norm(last)

    def freeze_for_serving(self):
        """Fold the attention of the block read at the last position (:func:`~recbole_gemirec.model.causal_encoder.
        freeze_for_serving`); only for a served model, whose weights are final."""
        freeze_for_serving(self.blocks)

    def next_interest_logits(self, item_seq, item_seq_len, item_code_emb, user_features=None):
        """Logits ``[B, n_interests]`` of the interest of each user's next interaction."""
        return self.head(self.next_interest_state(item_seq, item_seq_len, item_code_emb, user_features))

    def repeat_explore_log_probs(self, logits, state, in_history):
        """``log p(m)`` ``[B, n_interests]`` of a repeat/explore mixture (beyond the paper; docs/gemirec.md):

            p(m) = (1 - g) softmax(logits over the history's interests)(m)   for m in the history,
            p(m) = g       softmax(logits over the other interests)(m)       otherwise,

        with the gate ``g = sigmoid(w . state)`` learned. Why: under one softmax over all interests, most
        next interests repeat the history, so the ranking *among unseen interests* - the one that decides
        which new interest the cache proposes - gets almost no training signal of its own. Trained by the
        same cross-entropy, the mixture's second softmax learns only from next interests new to the
        history, and the gate learns how often a user leaves it (the repeat/explore split of RepeatNet,
        Ren et al. 2019). ``in_history [B, n_interests]`` is a bool mask; a row with no interest on one
        side puts all mass on the other."""
        gate = self.explore_gate(state)  # [B, 1], logit of g
        any_seen = in_history.any(dim=1, keepdim=True)
        any_unseen = (~in_history).any(dim=1, keepdim=True)
        log_explore = torch.where(any_seen, F.logsigmoid(gate), torch.zeros_like(gate))
        log_repeat = torch.where(any_unseen, F.logsigmoid(-gate), torch.zeros_like(gate))
        very_low = torch.finfo(logits.dtype).min / 2  # finite, so an empty side gives no NaN
        repeat = torch.log_softmax(logits.masked_fill(~in_history, very_low), dim=1) + log_repeat
        explore = torch.log_softmax(logits.masked_fill(in_history, very_low), dim=1) + log_explore
        return torch.where(in_history, repeat, explore)

    @staticmethod
    def history_counts(history_ids, n_interests):
        """How often each interest occurs in the history ``[B, n_interests]`` (ids ``[B, L]``, -1 = padding)."""
        counts = torch.zeros(history_ids.shape[0], n_interests, device=history_ids.device)
        return counts.scatter_add_(1, history_ids.clamp(min=0), (history_ids >= 0).to(counts.dtype))

    def history_prior(self, counts):
        """``w * log(1 + count)`` of each interest in the history ``[B, n_interests]`` (``counts`` from
        :meth:`history_counts`), ``w`` learned. A copy term, as in pointer-generator networks: the GPT then learns what the
        history's own interests do not already say (where the user goes next), instead of re-deriving
        their frequency through 16 hidden units."""
        return self.history_weight * torch.log1p(counts)

    def loss(self, logits, target_interest):
        """L_MIPDM = -log p(m*): cross-entropy against the next item's interest id (``logits`` may be
        log-probabilities, as :meth:`repeat_explore_log_probs` gives: log-softmax leaves them unchanged)."""
        return F.cross_entropy(logits, target_interest)
