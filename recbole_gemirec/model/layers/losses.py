"""Training losses of the multi-interest baselines.

References:
    Cen et al., ComiRec, KDD 2020, §3.3 (Eq. 9): softmax over the catalogue, approximated by sampled
    softmax (the TensorFlow code draws 10 x batch negatives per step, shared by the whole batch).
    Xie et al., "Rethinking Multi-Interest Learning for Candidate Matching in Recommender Systems",
    RecSys 2023 (REMI): §4.1 interest-aware hard negatives (IHN, weight beta) and §4.2 routing
    regularisation (RR, weight lambda).
"""

import math
from logging import getLogger

import torch
from recbole.utils import set_color
from torch import nn


NEGATIVE_MODES = ("full", "sampled", "in_batch")
# item_negatives: ~ keeps a full softmax while one training step's logits over the catalogue stay within
# this many floats (1 GiB), and samples beyond (default_negatives).
FULL_SOFTMAX_MAX_LOGITS = 2 ** 28


def item_log_frequency(dataset, n_items):
    """log q(i): the log share of each item among the training targets ``[n_items]`` (the in-batch sampling
    distribution, for the log-Q correction); items never seen get the log of half a count."""
    items = torch.as_tensor(dataset.inter_feat[dataset.iid_field]).long()
    counts = torch.bincount(items, minlength=n_items).double().clamp(min=0.5)
    return (counts / counts.sum()).log().float()


def default_negatives(default_mode, n_items, rows_per_step):
    """The item negatives of ``item_negatives: ~``: the model's ``default_mode``, except that a full softmax
    whose logits of one step, ``rows_per_step x n_items`` floats, exceed ``FULL_SOFTMAX_MAX_LOGITS`` becomes
    the sampled one. ``rows_per_step`` is the batch size times the queries scored per example (GemiRec's
    predicted-interest loss scores all K queries against every item), so the memory a step needs for its
    logits stays bounded whatever the catalogue."""
    if default_mode == "full" and rows_per_step * n_items > FULL_SOFTMAX_MAX_LOGITS:
        limit = FULL_SOFTMAX_MAX_LOGITS // max(1, rows_per_step)
        getLogger().warning(set_color(
            f"item_negatives: ~ with {n_items:,} items: sampled softmax instead of the full one ({rows_per_step:,} "
            f"score rows per step allow a full softmax up to {limit:,} items); set item_negatives: full to insist",
            "yellow"))
        return "sampled"
    return default_mode


def item_softmax_loss(config, dataset, n_items, default_mode, neg_sample_num=1280, beta=0.0, queries_per_example=1):
    """The item softmax a model's configuration asks for: ``item_negatives`` (``full``, ``sampled`` or
    ``in_batch``; ``~`` = ``default_mode``, sampled where a full softmax's logits would not fit, see
    :func:`default_negatives`), ``logq_correction`` for ``in_batch`` (default on)."""
    rows = int(config["train_batch_size"] or 1) * int(queries_per_example)
    mode = config["item_negatives"] or default_negatives(default_mode, n_items, rows)
    correct = config["logq_correction"]
    log_q = item_log_frequency(dataset, n_items) if mode == "in_batch" and correct is not False else None
    return SharedNegativeSoftmaxLoss(n_items, neg_sample_num=neg_sample_num, beta=beta, mode=mode, log_q=log_q)


class SharedNegativeSoftmaxLoss(nn.Module):
    """Softmax cross-entropy of the target item against negatives that every user of the batch shares.

    ``mode`` says which items are the negatives (config ``item_negatives``, one option for every
    multi-interest model of the extension):

    * ``full`` - every real item other than the target: the exact softmax over the catalogue;
    * ``sampled`` - ``neg_sample_num`` item ids drawn uniformly with replacement from ``1..n_items-1`` once
      per batch (REMI's sampler; ComiRec's TF sampler is log-uniform over frequency-ranked ids, which
      RecBole's ids are not); a draw equal to a row's target is removed from that row (TF's
      ``remove_accidental_hits``). Uniform draws need no log-Q correction (it is a constant). Falls back
      to ``full`` when the sample would not be smaller than the catalogue;
    * ``in_batch`` - the other targets of the batch (repeats of the row's target removed). Targets are
      drawn in proportion to popularity, so with ``log_q`` (the log frequency of every item, see
      :func:`item_log_frequency`) each negative logit is corrected by ``- log q(j)`` (Yi et al., RecSys
      2019), which makes the loss an unbiased estimate of the full softmax's; ``log_q=None`` is the plain
      in-batch softmax.

    ``beta > 0`` turns on REMI's interest-aware hard-negative weighting: negative j of a user gets weight
    ``w_j = exp(beta s_j) / mean_j' exp(beta s_j')`` and the loss is
    ``-log(e^{s+} / (e^{s+} + sum_j w_j e^{s_j}))`` -- a Monte-Carlo estimate of drawing negatives from
    ``q(j) ~ exp(beta s_j)``. As in REMI, the weights are not detached.
    """

    def __init__(self, n_items, sampled=True, neg_sample_num=1280, beta=0.0, mode=None, log_q=None):
        super().__init__()
        if beta < 0:
            raise ValueError(f"hard_negative_beta must be >= 0, got {beta}")
        mode = mode or ("sampled" if sampled else "full")
        if mode not in NEGATIVE_MODES:
            raise ValueError(f"item_negatives={mode!r}; allowed: {', '.join(NEGATIVE_MODES)}")
        self.n_items = n_items
        self.neg_sample_num = int(neg_sample_num)
        if mode == "sampled" and self.neg_sample_num >= n_items - 1:
            mode = "full"
        self.mode = mode
        self.sampled = mode == "sampled"
        self.beta = float(beta)
        if log_q is not None:
            self.register_buffer("log_q", log_q, persistent=False)
        else:
            self.log_q = None

    def draw_negatives(self, device):
        """The batch's shared sampled negatives (``sampled`` mode), ``None`` in the other modes."""
        if self.mode != "sampled":
            return None
        return torch.randint(1, self.n_items, (self.neg_sample_num,), device=device)

    def negative_item_ids(self, positive, negatives=None):
        """The item id of each column of :meth:`negative_logits` ``[N]``: the sampled ids (``negatives``),
        the batch's targets (``in_batch``) or every item (``full``)."""
        if self.mode == "sampled":
            return negatives
        if self.mode == "in_batch":
            return positive
        return torch.arange(self.n_items, device=positive.device)

    def negative_logits(self, user, positive, item_table, negatives=None, leave_out=None):
        """``[B, N]`` logits of the negatives, ``-inf`` where an entry is not a negative for that row.
        ``negatives``: the sampled ids to use (:meth:`draw_negatives`; drawn here when ``None``).
        ``leave_out``: ``ids [N] -> bool [B, N]``, columns that are no negative of a row either (GemiRec's
        within-interest softmax leaves out other interests' items)."""
        if self.mode == "sampled" and negatives is None:
            negatives = self.draw_negatives(user.device)
        ids = self.negative_item_ids(positive, negatives)
        logits = user @ (item_table if self.mode == "full" else item_table[ids]).t()
        if self.mode == "in_batch" and self.log_q is not None:
            logits = logits - self.log_q[ids].unsqueeze(0)
        not_negative = ids.unsqueeze(0) == positive.unsqueeze(1)
        if self.mode == "full":
            not_negative[:, 0] = True  # the padding item
        if leave_out is not None:
            not_negative = not_negative | leave_out(ids)
        return logits.masked_fill(not_negative, -math.inf)

    def forward(self, user, positive, item_table, extra_negative_logits=None, leave_out=None):
        """Mean loss of ``user [B, D]`` against target ids ``positive [B]`` over ``item_table [n_items, D]``;
        ``extra_negative_logits [B, M]`` (e.g. GemiRec's interest negatives, ``-inf`` = absent) join the
        negatives; ``leave_out`` as in :meth:`negative_logits`."""
        positive_logit = (user * item_table[positive]).sum(dim=-1)
        negative = self.negative_logits(user, positive, item_table, leave_out=leave_out)
        if extra_negative_logits is not None and extra_negative_logits.shape[1] > 0:
            negative = torch.cat([negative, extra_negative_logits], dim=1)
        return self.loss_from_logits(positive_logit, negative)

    def loss_from_logits(self, positive_logit, negative_logits):
        """The loss from the target's logit ``[B]`` and the negatives' logits ``[B, N]`` (``-inf`` = absent)."""
        if self.beta == 0:
            negative_mass = torch.logsumexp(negative_logits, dim=1)
        else:
            # log sum_j w_j e^{s_j} = logsumexp((1+beta) s) - logsumexp(beta s) + log(#negatives)
            count = torch.isfinite(negative_logits).sum(dim=1).clamp(min=1).to(negative_logits.dtype)
            negative_mass = (
                torch.logsumexp((1.0 + self.beta) * negative_logits, dim=1)
                - torch.logsumexp(self.beta * negative_logits, dim=1)
                + torch.log(count)
            )
        return (torch.logaddexp(positive_logit, negative_mass) - positive_logit).mean()


def routing_variance_penalty(attention, embedding_size):
    """REMI's routing regulariser (§4.2) of attention matrices ``[B, K, L]``, summed over the batch.

    Per user: ``C = A - mean_L(A)`` (padded positions included), ``Sigma = C C^T / D``; the penalty is
    ``||diag(Sigma)||^2``, the squared per-interest variance of the routing weights over positions.
    It is 0 for uniform routing and largest when an interest routes all its weight to one item
    ("routing collapse"). Scaled by ``1 / D`` and summed over users as in REMI's released code.
    """
    centred = attention - attention.mean(dim=-1, keepdim=True)
    variance = (centred * centred).sum(dim=-1) / embedding_size  # diag(C C^T) / D, [B, K]
    return (variance * variance).sum()
