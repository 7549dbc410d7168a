"""Population interest transitions: which interests absent from a history its future is likely to bring
(beyond the paper; docs/gemirec.md, "Interests the history lacks").

The paper's second claim is that GemiRec finds interests that never occurred in a user's history. The GPT
is trained on the next item's interest, where a new interest is rare and what the current run of the
sequence already holds dominates; the history frequency (GemiRec-M) never proposes a new interest at all.
This module counts, over the training users, how often an interest that is absent from the part of a
sequence a model reads appears in the part it is asked to predict, given the interests that part holds:

* each training sequence is cut the way an evaluated user's sequence is cut: at ``int(history_ratio * n)``
  under the ``user`` protocol (the target set is everything after it), before its last item otherwise
  (``loo``: the target is the next item);
* the *sources* are the interests of the ``L`` items before the cut (what the model sees), the *novel
  targets* the interests after the cut that none of those items has;
* ``T[c, m]`` = (training users with c among the sources and m among the novel targets) / (training
  users with c among the sources): the rate at which holding c leads to the new interest m.

A user's novel-interest distribution is ``q(m) ∝ sum_{c in H} T[c, m]`` over the interests m absent from
the history ``H`` and the predictor's ``p(m | u) = (1 - beta) [(1 - alpha) share_u(m) + alpha 1(m = m_last)]
+ beta q(m)``, with ``share_u`` the history frequency of GemiRec-M, ``m_last`` the interest of the history's
last item (the run in progress: a target set starts by continuing it), ``alpha``
(``current_interest_share``) its extra weight and ``beta`` (``novel_interest_share``) the weight of the new
interests.
Nothing here is learned by gradient; the counts are a buffer of the model, kept by checkpoints and
exports, so serving and RecBole's own tools rank with the same table.
"""

import numpy as np
import torch

# The transition table is n_interests x n_interests floats: past this many interests it stops being small
# (4096^2 floats = 64 MiB); the transition predictor refuses more.
MAX_TRANSITION_INTERESTS = 4096
# novel_interest_share: auto tries these values of beta on the valid split after the joint stage.
NOVEL_SHARE_GRID = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
# current_interest_share: auto tries these values of alpha (with every beta and tau).
CURRENT_SHARE_GRID = (0.0, 0.25, 0.5, 0.75)
# Training users processed per step of the count (bounds the [users, n_interests] presence matrices).
COUNT_CHUNK = 4096


def cut_samples(users, items, windows, history_ratio=None):
    """The cut of every training user's sequence, from RecBole's sequential training samples.

    The samples are one per position after a user's first: ``users [N]``, ``items [N]`` (the item at the
    position), ``windows [N, L]`` (the up to L items before it, 0-padded), a user's rows in time order, as
    RecBole's augmentation and the ``user`` protocol write them. Returns ``(sources [U, L] item ids (0 = padding),
    future item ids [F], owner row of each future item [F])``: per user, the window of the sample at the
    cut and the items from the cut on. ``history_ratio`` None cuts before the last sample (``loo``).
    """
    users = np.asarray(users)
    if len(users) == 0:
        return torch.zeros(0, 1, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long)
    order = np.argsort(users, kind="stable")
    users = users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    counts = np.diff(np.r_[starts, len(users)])
    if history_ratio is None:
        cut = counts - 1
    else:  # a sequence of n = count + 1 items keeps int(ratio * n) (clipped to 1..n-1) as its history
        k = np.clip((history_ratio * (counts + 1.0)).astype(np.int64), 1, np.maximum(counts, 1))
        cut = k - 1  # the sample whose target is item k
    items = torch.as_tensor(np.asarray(items)[order])
    windows = torch.as_tensor(np.asarray(windows)[order])
    sources = windows[torch.as_tensor(starts + cut)]
    in_future = np.arange(len(users)) >= np.repeat(starts + cut, counts)
    owner = np.repeat(np.arange(len(starts)), counts)[in_future]
    return sources, items[torch.as_tensor(in_future)], torch.as_tensor(owner)


def training_cut(dataset, item_field, list_field):
    """:func:`cut_samples` of a RecBole training dataset (one sample per position, ``item_field`` the item,
    ``list_field`` the items before it), cut at the ``user`` protocol's ``history_ratio`` where the dataset has
    one (:class:`~recbole_gemirec.data.user_protocol.UserProtocolDataset`), else before the last sample (``loo``)."""
    feat = dataset.inter_feat
    return cut_samples(feat[dataset.uid_field].numpy(), feat[item_field].numpy(), feat[list_field].numpy(),
                       history_ratio=getattr(dataset, "history_ratio", None))


def count_transitions(source_ids, future_ids, future_owner, n_interests):
    """``T [n_interests, n_interests]`` (module docstring) from the interest ids of the cut samples:
    ``source_ids [U, L]`` (-1 at padding), ``future_ids [F]`` with their user row ``future_owner [F]``."""
    n_users = source_ids.shape[0]
    together = torch.zeros(n_interests, n_interests, dtype=torch.float64)
    holders = torch.zeros(n_interests, dtype=torch.float64)
    for lo in range(0, n_users, COUNT_CHUNK):
        hi = min(lo + COUNT_CHUNK, n_users)
        present = presence(source_ids[lo:hi], n_interests)
        future = torch.zeros(hi - lo, n_interests, dtype=torch.bool)
        mine = (future_owner >= lo) & (future_owner < hi)
        future[future_owner[mine] - lo, future_ids[mine].clamp(min=0)] = True
        novel = future & ~present
        together += present.double().T @ novel.double()
        holders += present.double().sum(dim=0)
    return (together / holders.clamp(min=1.0).unsqueeze(1)).float()


def presence(interest_ids, n_interests):
    """``[B, n_interests]`` bool: which interests occur among ``interest_ids [B, L]`` (-1 = padding)."""
    present = torch.zeros(interest_ids.shape[0], n_interests, dtype=torch.bool, device=interest_ids.device)
    valid = interest_ids >= 0
    rows = torch.arange(interest_ids.shape[0], device=interest_ids.device).unsqueeze(1).expand_as(interest_ids)
    present[rows[valid], interest_ids[valid]] = True
    return present


def transition_log_probs(frequency_scores, transitions, novel_share, current_ids=None, current_share=0.0):
    """log p(interest | user) ``[B, n_interests]`` of the transition predictor: the history shares (from
    :func:`~recbole_gemirec.model.interest_cache.history_frequency_scores`, ``-inf`` = absent), with
    ``current_share`` of them moved to the interest of the history's last item (``current_ids [B]``, -1 for
    none), weighted ``1 - novel_share``, and ``novel_share`` spread over the absent interests by the transitions
    from the present ones. A history whose interests lead nowhere keeps its shares alone; ``-inf`` where all are 0."""
    counts = frequency_scores.clamp(min=0).nan_to_num(0.0)
    share = counts / counts.sum(dim=1, keepdim=True).clamp(min=1e-12)
    present = (counts > 0).to(share.dtype)
    if current_ids is not None:
        known = (current_ids >= 0).to(share.dtype).unsqueeze(1)
        current = torch.zeros_like(share).scatter_(1, current_ids.clamp(min=0).unsqueeze(1), 1.0)
        share = share + current_share * known * (current - share)
    novel = (present @ transitions.to(share.dtype)) * (1.0 - present)
    total = novel.sum(dim=1, keepdim=True)
    beta = novel_share * (total > 0).to(share.dtype)
    mixed = (1.0 - beta) * share + beta * novel / total.clamp(min=1e-12)
    return mixed.log()
