"""Metric classes of the extension. Every class defined in this module is registered with RecBole.

(Keep helper base classes elsewhere: RecBole's ``cluster_info`` registers each class defined here.)

``AMR`` and ``CUR`` implement the project's definitions of docs/design.md §5 (the GemiRec paper does not
publish its formulas). They work for every model run through the extension: the trainer's
:class:`~recbole_gemirec.evaluator.collector.MultiInterestCollector` reduces each evaluated user to a
few counts (see :mod:`recbole_gemirec.evaluator.multi_interest_eval`), and these classes average them.
Both are ranking metrics (``topk`` gives the N's), bigger is better, and either can be the
``valid_metric`` (``AMR@20``, ``CUR@50``, ...).

RecBole's own ``recbole.trainer.Trainer`` hands its collector only the merged score matrix, from which
neither metric can be computed (AMR needs each interest's own top-N list, CUR the item categories and
the user's history). Evaluated that way, both raise :class:`MultiInterestCollectionMissing`, naming
:func:`recbole_gemirec.utils.get_trainer`; they never report a value they did not compute.
"""

from recbole.evaluator.base_metric import AbstractMetric
from recbole.utils import EvaluatorType

from recbole_gemirec.evaluator.multi_interest_eval import AMR_KEY, CUR_KEY, amr_values, cur_values


def _collected(dataobject, key, metric):
    """The per-user counts under ``key``, or :class:`MultiInterestCollectionMissing` if no trainer of the
    extension collected them."""
    if key not in dataobject:
        from recbole_gemirec.errors import MultiInterestCollectionMissing

        raise MultiInterestCollectionMissing(
            f"{metric}@N cannot be computed here: this evaluation did not collect the per-user counts it needs "
            "(RecBole's own Trainer, or another trainer class not built by recbole_gemirec, passes its "
            "collector only the merged scores). Build the trainer with "
            "recbole_gemirec.utils.get_trainer(config['MODEL_TYPE'], config['model'])(config, model), or put "
            "recbole_gemirec.trainer.MultiInterestEvaluationMixin in front of your trainer class; "
            f"or drop {metric} from metrics."
        )
    return dataobject.get(key)


class AMR(AbstractMetric):
    r"""Additional multi-interest recall: the share of the merged list's hits that even the best single
    interest, retrieving its own top-N, does not reach (docs/design.md §5).

    .. math::
        \mathrm{AMR@N}(u) = \max\Big(0,\ 1 - \frac{\max_k |L_k(u) \cap T(u)|}{|M(u) \cap T(u)|}\Big)

    averaged over users with :math:`|M(u) \cap T(u)| > 0`. 0 for single-vector models (K = 1) and for
    collapsed interests; large when interests retrieve different relevant items. With a single target
    per user (the ``loo`` protocol) it is always 0: a merged hit is in the list of the interest that
    scores it highest. Use the ``user`` protocol, whose users have many targets.
    """

    metric_type = EvaluatorType.RANKING
    metric_need = [AMR_KEY]
    smaller = False

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject):
        values = amr_values(_collected(dataobject, AMR_KEY, "AMR"))
        return {f"amr@{n}": round(value, self.decimal_place) for n, value in zip(self.topk, values)}


class CUR(AbstractMetric):
    r"""Unseen-category recall: recall restricted to targets whose category does not occur in the user's
    history part (docs/design.md §5).

    .. math::
        U(u) = \{t \in T(u) : cat(t) \notin cat(H(u))\},\qquad
        \mathrm{CUR@N}(u) = \frac{|M(u) \cap U(u)|}{|U(u)|}

    averaged over users with :math:`U(u) \neq \emptyset`. Categories come from the item field
    ``category_field`` (first value of a multi-valued field).
    """

    metric_type = EvaluatorType.RANKING
    metric_need = [CUR_KEY]
    smaller = False

    def __init__(self, config):
        super().__init__(config)
        self.topk = config["topk"]

    def calculate_metric(self, dataobject):
        values = cur_values(_collected(dataobject, CUR_KEY, "CUR"))
        return {f"cur@{n}": round(value, self.decimal_place) for n, value in zip(self.topk, values)}
