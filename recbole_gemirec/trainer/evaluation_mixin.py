"""AMR/CUR collection in every trainer run through the extension (docs/design.md §3, §5, §7).

RecBole's trainer hands only the score matrix of each batch to its ``Collector``. The multi-interest
metrics also need the model's interests and the user's history, so :class:`MultiInterestEvaluationMixin`

* replaces ``self.eval_collector`` with a
  :class:`~recbole_gemirec.evaluator.collector.MultiInterestCollector`,
* tells it which dataset is being evaluated (``prepare_evaluation``, before every evaluation), and
* after RecBole's ``_full_sort_batch_eval`` has scored a batch, lets it reduce the batch to the per-user
  AMR/CUR counts — only when ``metrics`` contains ``AMR`` or ``CUR``; otherwise evaluation is exactly
  RecBole's.

:mod:`recbole_gemirec.trainer.extension_trainer` composes it into every trainer that
:func:`recbole_gemirec.utils.get_trainer` returns.
"""

from recbole_gemirec.evaluator.collector import MultiInterestCollector
from recbole_gemirec.evaluator.multi_interest_eval import check_multi_interest_config


class MultiInterestEvaluationMixin:
    """Put in front of a RecBole trainer class, before :class:`~recbole_gemirec.trainer.hooks.TrainerHooks`."""

    def __init__(self, config, model):
        check_multi_interest_config(config)
        super().__init__(config, model)
        if hasattr(self, "eval_collector"):
            self.eval_collector = MultiInterestCollector(config)

    def _multi_interest_collector(self):
        collector = getattr(self, "eval_collector", None)
        if isinstance(collector, MultiInterestCollector) and collector.wants_multi_interest:
            return collector
        return None

    def prepare_evaluation(self, eval_data):
        collector = self._multi_interest_collector()
        if collector is not None:
            collector.set_eval_dataset(eval_data._dataset)
        super().prepare_evaluation(eval_data)

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        collector = self._multi_interest_collector()
        if collector is not None:
            collector.multi_interest_batch_collect(
                self.model, interaction.to(self.device), scores, batched_data[1], positive_u, positive_i
            )
        return interaction, scores, positive_u, positive_i
