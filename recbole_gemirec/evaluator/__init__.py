"""The extension's evaluation metrics, registered into RecBole's metric tables.

RecBole builds four module-level tables from ``recbole.evaluator.metrics`` at import time
(``smaller_metrics``, ``metric_information``, ``metric_types``, ``metrics_dict``). ``Config``,
``Evaluator`` and ``Register`` all hold references to those same objects, so new metric names become
usable by merging into them in place; rebinding them would not be seen (docs/design.md §7).
"""

from recbole.evaluator import register as recbole_register

from recbole_gemirec.evaluator import metrics

_registered = False


def register_metrics():
    """Make every metric class of :mod:`recbole_gemirec.evaluator.metrics` known to RecBole (idempotent)."""
    global _registered
    if _registered:
        return
    smaller, information, types, classes = recbole_register.cluster_info(metrics.__name__)
    for name in smaller:
        if name not in recbole_register.smaller_metrics:
            recbole_register.smaller_metrics.append(name)
    recbole_register.metric_information.update(information)
    recbole_register.metric_types.update(types)
    recbole_register.metrics_dict.update(classes)
    _registered = True
