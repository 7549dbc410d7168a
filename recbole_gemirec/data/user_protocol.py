"""The ``user`` evaluation protocol of ComiRec and REMI inside RecBole (docs/design.md §4).

* Users (not interactions) are shuffled with ``user_split_seed`` and split by ``user_split``
  (default 80/10/10) into train, valid and test users.
* Training samples come from train users only: RecBole's sequential data augmentation over each train
  user's whole sequence (one sample per interaction after the first, history = the preceding
  ``MAX_ITEM_LIST_LENGTH`` items, left-aligned and zero-padded as RecBole does).
* A valid/test user with n interactions (sorted by time; ties keep file order) is one evaluation row:
  with ``k = int(history_ratio * n)`` (ComiRec's ``int(0.8 n)``, clipped to 1..n-1), the history part
  is the first k interactions (the model sees the last L of them as ``item_id_list``) and **all** of the
  remaining n - k interactions form one multi-item target set. Users with fewer than 2 interactions
  cannot be split and are left out of evaluation.
* Evaluation is full ranking over the whole catalogue with no history masking (repeat consumption is
  allowed, as in ComiRec and RecBole's sequential evaluation). The loader yields every target as a
  positive, so RecBole's Recall@N is ``|hits| / |T|`` and Hit@N is "any hit", with T the set of
  distinct target items.

Evaluation datasets carry ``target_index`` (CSR user id -> distinct target items) and ``eval_history``
(CSR user id -> every item of the history part, used by CUR). The parent dataset keeps the split in
``user_split`` (``{'train'|'valid'|'test': array of user ids}``).
"""

from logging import getLogger

import numpy as np
import torch
from recbole.data.dataloader import FullSortEvalDataLoader
from recbole.data.dataset import Dataset, SequentialDataset
from recbole.data.interaction import Interaction
from recbole.data.utils import create_samplers, get_dataloader
from recbole.utils import ModelType, set_color

from recbole_gemirec.errors import ConfigError
from recbole_gemirec.evaluator.multi_interest_eval import csr_from_pairs, gather_csr

DEFAULT_USER_SPLIT = (0.8, 0.1, 0.1)
DEFAULT_HISTORY_RATIO = 0.8
DEFAULT_SPLIT_SEED = 2020
# Models that score items without any user state: meaningful for users unseen in training.
NON_PERSONALISED_MODELS = ("Pop",)


def user_protocol_settings(config):
    """Validated ``(user_split, user_split_seed, history_ratio)`` of a config; :class:`ConfigError` if invalid."""
    if config["MODEL_TYPE"] != ModelType.SEQUENTIAL and config["model"] not in NON_PERSONALISED_MODELS:
        raise ConfigError(
            f"eval_protocol='user' with model={config['model']!r} ({config['MODEL_TYPE'].name} model) is not "
            "allowed: valid and test users are unseen in training, so the model must read each user's history "
            f"(a sequential model) or ignore the user ({', '.join(NON_PERSONALISED_MODELS)}); "
            "use eval_protocol: loo for other models"
        )
    split, seed, ratio = user_protocol_values(config)
    modes = config["eval_args"]["mode"]
    for phase in ("valid", "test"):
        if modes[phase] != "full":
            raise ConfigError(
                f"eval_args.mode.{phase}={modes[phase]!r} is not allowed with eval_protocol='user': "
                "the protocol ranks the whole catalogue, so the mode must be 'full'"
            )
    if config["benchmark_filename"] is not None:
        raise ConfigError(
            f"benchmark_filename={config['benchmark_filename']!r} is not allowed with eval_protocol='user', "
            "which splits users itself; remove benchmark_filename or use eval_protocol: loo"
        )
    return split, seed, ratio


def user_protocol_values(config):
    """``(user_split, user_split_seed, history_ratio)`` of a config (defaults where unset), each checked on its
    own; :class:`ConfigError` for a bad value. Checked under every protocol (``validate_config``): under
    ``loo`` the keys are unused, but a bad value there is still a mistake worth one clear line."""
    split = config["user_split"]
    split = list(DEFAULT_USER_SPLIT) if split is None else split
    if (
        not isinstance(split, (list, tuple)) or len(split) != 3
        or not all(isinstance(r, (int, float)) and not isinstance(r, bool) and r >= 0 for r in split)
        or split[0] <= 0 or abs(sum(split) - 1.0) > 1e-6
    ):
        raise ConfigError(
            f"user_split={split!r} is not allowed; allowed: three non-negative shares of users "
            "[train, valid, test] summing to 1 with train > 0, e.g. [0.8, 0.1, 0.1]"
        )
    seed = config["user_split_seed"]
    seed = DEFAULT_SPLIT_SEED if seed is None else seed
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"user_split_seed={seed!r} is not allowed; allowed: an integer >= 0")
    ratio = config["history_ratio"]
    ratio = DEFAULT_HISTORY_RATIO if ratio is None else ratio
    if not isinstance(ratio, (int, float)) or isinstance(ratio, bool) or not 0 < ratio < 1:
        raise ConfigError(f"history_ratio={ratio!r} is not allowed; allowed: a number strictly between 0 and 1")
    return [float(r) for r in split], int(seed), float(ratio)


def split_users(users, shares, seed):
    """Shuffle ``users`` with ``seed`` and cut them into train/valid/test by ``shares`` (ComiRec's cut:
    the first ``floor(share_train * n)`` users train, the next ``floor((share_train + share_valid) * n)``
    valid, the rest test). Returns three sorted arrays."""
    users = np.sort(np.asarray(users))
    order = np.random.default_rng(seed).permutation(len(users))
    shuffled = users[order]
    n = len(users)
    first = int(shares[0] * n)
    second = int((shares[0] + shares[1]) * n) if shares[2] > 0 else n
    return np.sort(shuffled[:first]), np.sort(shuffled[first:second]), np.sort(shuffled[second:])


def history_length(n, ratio):
    """Length k of the history part of an n-interaction sequence: ``int(ratio * n)`` clipped to 1..n-1."""
    return np.clip((ratio * np.asarray(n, dtype=np.float64)).astype(np.int64), 1, np.maximum(np.asarray(n) - 1, 1))


class UserProtocolDataset(SequentialDataset):
    """A ``SequentialDataset`` whose ``build()`` splits users instead of interactions (module docstring)."""

    def __init__(self, config):
        self.user_split_shares, self.user_split_seed, self.history_ratio = user_protocol_settings(config)
        self.user_split = None
        super().__init__(config)

    def _change_feat_format(self):
        # Only the format change; augmentation is done per user group in build().
        Dataset._change_feat_format(self)

    def build(self):
        """Split users and return ``[train, valid, test]`` datasets (see the module docstring)."""
        logger = getLogger()
        self._change_feat_format()
        self._aug_presets()
        self._check_field("uid_field", "time_field")
        self._sort_by_user_and_time()

        uid = self.inter_feat[self.uid_field].numpy()
        starts = np.flatnonzero(np.r_[True, uid[1:] != uid[:-1]])
        ends = np.r_[starts[1:], len(uid)]
        users = uid[starts]
        lengths = ends - starts
        train_users, valid_users, test_users = split_users(users, self.user_split_shares, self.user_split_seed)
        self.user_split = {"train": train_users, "valid": valid_users, "test": test_users}

        # training samples: every position after the first of each train user
        is_train = np.isin(users, train_users)
        t_start, t_end = starts[is_train], ends[is_train]
        counts = np.maximum(t_end - t_start - 1, 0)
        user_start = np.repeat(t_start, counts)
        target = user_start + 1 + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        train = self.copy(self._augment(target, user_start))

        history_items = []
        parts = []
        dropped = 0
        for phase_users in (valid_users, test_users):
            chosen = np.isin(users, phase_users) & (lengths >= 2)
            dropped += int((np.isin(users, phase_users) & (lengths < 2)).sum())
            p_start, p_len, p_users = starts[chosen], lengths[chosen], users[chosen]
            k = history_length(p_len, self.history_ratio)
            part = self.copy(self._augment(p_start + k, p_start))
            part.target_index = self._items_csr(p_users, p_start + k, p_start + p_len)
            parts.append(part)
            history_items.append((p_users, p_start, p_start + k))
        eval_history = self._items_csr(
            np.concatenate([h[0] for h in history_items]),
            np.concatenate([h[1] for h in history_items]),
            np.concatenate([h[2] for h in history_items]),
        )
        for part in parts:
            part.eval_history = eval_history
        valid, test = parts
        logger.info(
            set_color("user protocol", "pink") + ": "
            + set_color("users", "cyan") + f" train/valid/test = {len(train_users)}/{len(valid_users)}/{len(test_users)}, "
            + set_color("train samples", "cyan") + f" = {len(train)}, "
            + set_color("history_ratio", "cyan") + f" = {self.history_ratio}, "
            + set_color("user_split_seed", "cyan") + f" = {self.user_split_seed}"
            + (f", {dropped} evaluation user(s) with < 2 interactions left out" if dropped else "")
        )
        return [train, valid, test]

    def _sort_by_user_and_time(self):
        """Sort interactions by (user, time); ties keep their current (file) order."""
        uid = self.inter_feat[self.uid_field].numpy()
        time = self.inter_feat[self.time_field].numpy()
        order = torch.from_numpy(np.lexsort((time, uid)))
        self.inter_feat = Interaction({k: v[order] for k, v in self.inter_feat.interaction.items()})

    def _augment(self, target, history_start):
        """Sequential samples for the interactions at rows ``target``; history = rows from
        ``max(history_start, target - L)`` to ``target - 1``. Same fields and layout as RecBole's
        ``SequentialDataset.data_augmentation``."""
        max_len = self.max_item_list_len
        target = np.asarray(target, dtype=np.int64)
        start = np.maximum(np.asarray(history_start, dtype=np.int64), target - max_len)
        length = target - start
        offsets = np.arange(max_len)
        valid = offsets[None, :] < length[:, None]
        index = torch.from_numpy(np.where(valid, start[:, None] + offsets[None, :], 0))
        valid = torch.from_numpy(valid)
        new_data = Interaction({k: v[torch.from_numpy(target)] for k, v in self.inter_feat.interaction.items()})
        new_dict = {self.item_list_length_field: torch.from_numpy(length)}
        for field in self.inter_feat.interaction:
            if field == self.uid_field:
                continue
            value = self.inter_feat[field]
            gathered = value[index]
            mask = valid.view(valid.shape + (1,) * (gathered.dim() - 2))
            new_dict[getattr(self, f"{field}_list_field")] = torch.where(mask, gathered, torch.zeros_like(gathered))
        new_data.update(Interaction(new_dict))
        return new_data

    def _items_csr(self, users, begin, end):
        """CSR over all user ids: the distinct items of rows ``begin[j]:end[j]`` for user ``users[j]``."""
        counts = np.asarray(end) - np.asarray(begin)
        rows = np.repeat(np.asarray(users), counts)
        positions = np.repeat(np.asarray(begin), counts) + (np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts))
        items = self.inter_feat[self.iid_field][torch.from_numpy(positions.astype(np.int64))]
        return csr_from_pairs(torch.from_numpy(rows.astype(np.int64)), items, self.user_num)


class MultiTargetFullSortEvalDataLoader(FullSortEvalDataLoader):
    """Full-sort evaluation loader whose rows have a set of target items (the ``user`` protocol).

    Each batch is ``(interaction, None, positive_u, positive_i)`` like RecBole's sequential full-sort
    loader — no history masking — but ``positive_u``/``positive_i`` list every distinct target of each
    row, so RecBole's Recall divides by ``|T|`` and Hit, NDCG, AMR and CUR see all targets.
    """

    def collate_fn(self, index):
        index = torch.as_tensor(np.array(index), dtype=torch.long)
        dataset = self._dataset
        interaction = Interaction({k: v[index] for k, v in dataset.inter_feat.interaction.items()})
        transformed = self.transform(dataset, interaction)
        indptr, items = dataset.target_index
        positive_u, positive_i = gather_csr(indptr, items, interaction[self.uid_field])
        return transformed, None, positive_u, positive_i


def user_protocol_data_preparation(config, dataset):
    """``data_preparation`` for the ``user`` protocol: RecBole's training loader over train users'
    samples, :class:`MultiTargetFullSortEvalDataLoader` for valid and test."""
    built = dataset.build()
    train_dataset, valid_dataset, test_dataset = built
    # Samplers see the training part only (popularity negatives must not count evaluation users).
    train_sampler, valid_sampler, test_sampler = create_samplers(config, train_dataset, built)
    train_data = get_dataloader(config, "train")(config, train_dataset, train_sampler, shuffle=config["shuffle"])
    valid_data = MultiTargetFullSortEvalDataLoader(config, valid_dataset, valid_sampler, shuffle=False)
    test_data = MultiTargetFullSortEvalDataLoader(config, test_dataset, test_sampler, shuffle=False)
    logger = getLogger()
    logger.info(
        set_color("[Training]: ", "pink") + set_color("train_batch_size", "cyan") + " = "
        + set_color(f'[{config["train_batch_size"]}]', "yellow") + set_color(" train_neg_sample_args", "cyan")
        + ": " + set_color(f'[{config["train_neg_sample_args"]}]', "yellow")
    )
    logger.info(
        set_color("[Evaluation]: ", "pink") + set_color("eval_batch_size", "cyan") + " = "
        + set_color(f'[{config["eval_batch_size"]}]', "yellow") + set_color(" protocol", "cyan") + ": "
        + set_color(f"[user: split {dataset.user_split_shares}, history_ratio {dataset.history_ratio}, full ranking]", "yellow")
    )
    return train_data, valid_data, test_data
