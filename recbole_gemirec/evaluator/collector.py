"""A RecBole ``Collector`` that also gathers what AMR and CUR need (docs/design.md §5, §7).

RecBole's collector sees only the score matrix of each batch; AMR needs each interest's own top-N list
(so the model and the batch) and CUR needs item categories and each user's full history part H(u).
:class:`MultiInterestCollector` adds both, installed by
:class:`recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin`:

* ``data_collect(train_data)`` (start of ``fit``) reads the item categories from ``category_field`` and,
  per user, the categories of the user's training interactions;
* ``multi_interest_batch_collect(...)`` (each full-sort batch) reduces every user of the batch to a few
  counts (:mod:`recbole_gemirec.evaluator.multi_interest_eval`) stored under ``mi.amr`` / ``mi.cur``;
* ``get_data_struct()`` clears those per-batch keys, so evaluations do not accumulate.

H(u) of an evaluated row is the union of: the categories of the user's training interactions, the
row's own ``item_id_list``, RecBole's history mask (non-sequential loaders), and the dataset's
``eval_history`` when it has one (the ``user`` protocol's complete first 80%). Under RecBole's ``loo``
this is every interaction before the target; under ``user`` it is the whole history part, not only the
last L items fed to the model.
"""

from logging import getLogger

import torch
from recbole.evaluator.collector import Collector

from recbole_gemirec.evaluator.multi_interest_eval import (
    AMR_KEY,
    CUR_KEY,
    amr_counts,
    csr_from_pairs,
    cur_counts,
    gather_csr,
    item_categories,
    per_interest_topk,
    unseen_category_targets,
)
from recbole_gemirec.model.multi_interest import interest_view


class MultiInterestCollector(Collector):
    """RecBole's collector plus the per-user counts of AMR and CUR."""

    def __init__(self, config):
        super().__init__(config)
        self.logger = getLogger()
        self.need_amr = bool(self.register.need(AMR_KEY))
        self.need_cur = bool(self.register.need(CUR_KEY))
        self.category_field = config["category_field"]
        self.iid_field = config["ITEM_ID_FIELD"]
        self.uid_field = config["USER_ID_FIELD"]
        self.item_list_field = config["ITEM_ID_FIELD"] + config["LIST_SUFFIX"]
        self.item_category = None  # LongTensor [n_items], 0 = no category
        self.train_history = None  # CSR user id -> distinct categories of the user's training items
        self.eval_history = None  # CSR user id -> distinct categories of the eval dataset's history part

    @property
    def wants_multi_interest(self):
        """Whether AMR or CUR is among the configured metrics."""
        return self.need_amr or self.need_cur

    def data_collect(self, train_data):
        super().data_collect(train_data)
        if not self.need_cur:
            return
        dataset = train_data.dataset
        self.item_category = item_categories(dataset, self.category_field)
        self.train_history = self._user_categories(dataset)

    def _user_categories(self, dataset):
        """CSR over user ids of the categories of every item in ``dataset``'s interactions."""
        inter = dataset.inter_feat
        users = inter[self.uid_field].long()
        rows = [users]
        items = [inter[self.iid_field].long()]
        if self.item_list_field in inter:
            lists = inter[self.item_list_field].long()
            rows.append(users.unsqueeze(1).expand_as(lists).reshape(-1))
            items.append(lists.reshape(-1))
        rows, items = torch.cat(rows), torch.cat(items)
        categories = self.item_category[items]
        keep = (items > 0) & (categories > 0)
        return csr_from_pairs(rows[keep], categories[keep], dataset.user_num)

    def set_eval_dataset(self, dataset):
        """Called by the trainer before each evaluation with the dataset being evaluated."""
        self.eval_history = None
        if not self.need_cur or dataset is None:
            return
        if self.item_category is None:
            self.item_category = item_categories(dataset, self.category_field)
        history = getattr(dataset, "eval_history", None)
        if history is not None:
            indptr, items = history
            rows = torch.repeat_interleave(torch.arange(len(indptr) - 1), indptr[1:] - indptr[:-1])
            categories = self.item_category[items.long()]
            keep = categories > 0
            self.eval_history = csr_from_pairs(rows[keep], categories[keep], len(indptr) - 1)
        elif self.train_history is None:
            raise RuntimeError(
                "CUR needs each user's training history: call trainer.eval_collector.data_collect(train_data) "
                "before trainer.evaluate(...) when the model was not trained by trainer.fit"
            )

    def multi_interest_batch_collect(self, model, interaction, scores, history_index, positive_u, positive_i):
        """Reduce one full-sort batch to the per-user AMR / CUR counts.

        Args:
            model: the model being evaluated (its ``interest_view`` gives the K interests, if any).
            interaction: the batch, on the model's device.
            scores: ``[B, n_items]`` scores the model ranks with (padding and history already ``-inf``).
            history_index: RecBole's history mask ``(rows, items)`` or ``None`` (sequential loaders).
            positive_u, positive_i: the (row, item) target pairs.
        """
        device = scores.device
        n_items = scores.shape[1]
        n = max(self.topk)
        positive_u = positive_u.to(device).long()
        positive_i = positive_i.to(device).long()
        merged_topk = torch.topk(scores, min(n, n_items), dim=-1).indices
        if self.need_amr:
            interest_topk = None
            view = interest_view(model, interaction)
            if view is not None and view[0].shape[1] > 1:
                excluded = None
                if history_index is not None:
                    excluded = (history_index[0].to(device).long(), history_index[1].to(device).long())
                interest_topk = per_interest_topk(view[0], view[1], n, excluded=excluded)
            counts = amr_counts(merged_topk, interest_topk, positive_u, positive_i, n_items, self.topk)
            self.data_struct.update_tensor(AMR_KEY, counts.reshape(len(scores), -1))
        if self.need_cur:
            history_rows, history_categories = self._history_categories(interaction, history_index, len(scores), device)
            category = self.item_category.to(device)
            unseen = unseen_category_targets(positive_u, category[positive_i], history_rows, history_categories)
            counts = cur_counts(merged_topk, positive_u, positive_i, unseen, n_items, self.topk)
            self.data_struct.update_tensor(CUR_KEY, counts)

    def _history_categories(self, interaction, history_index, batch, device):
        """(row, category) pairs of H for every row of the batch."""
        category = self.item_category.to(device)
        rows, cats = [], []
        users = interaction[self.uid_field].to(device).long() if self.uid_field in interaction else None
        for csr in (self.train_history, self.eval_history):
            if csr is not None and users is not None:
                indptr, values = csr
                r, c = gather_csr(indptr.to(device), values.to(device), users)
                rows.append(r)
                cats.append(c)
        if self.item_list_field in interaction:
            lists = interaction[self.item_list_field].to(device).long()
            r = torch.arange(batch, device=device).unsqueeze(1).expand_as(lists).reshape(-1)
            rows.append(r)
            cats.append(category[lists.reshape(-1)])
        if history_index is not None:
            rows.append(history_index[0].to(device).long())
            cats.append(category[history_index[1].to(device).long()])
        if not rows:
            return torch.zeros(0, dtype=torch.long, device=device), torch.zeros(0, dtype=torch.long, device=device)
        return torch.cat(rows), torch.cat(cats)

    def get_data_struct(self):
        returned = super().get_data_struct()
        for key in (AMR_KEY, CUR_KEY):
            if key in self.data_struct:
                del self.data_struct[key]
        return returned
