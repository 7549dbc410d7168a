"""The trainer every model run through the extension gets: RecBole's ``Trainer`` plus the extension's parts.

:class:`ExtensionTrainer` is RecBole's ``Trainer`` with, in this order,

* :class:`~recbole_gemirec.trainer.numeric_guards.NumericGuardMixin` - non-finite losses, scores, metrics;
* :class:`~recbole_gemirec.trainer.checkpointing.SafeCheckpointMixin` - weights-only checkpoints, resuming;
* :class:`~recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin` - AMR/CUR collection;
* :class:`~recbole_gemirec.trainer.hooks.TrainerHooks` - the events listeners can register for.

:class:`ExtensionMixin` holds the steps that tie them together (one ``evaluate``, the timed epoch, the
validation event), so that a model whose RecBole trainer is not the plain ``Trainer`` (``KGTrainer``,
``RaCTTrainer``, ...) gets the same behaviour from :func:`extension_trainer_class`. GemiRec's trainer
derives from :class:`ExtensionTrainer` (:mod:`recbole_gemirec.trainer.gemirec_trainer`).
"""

import time
from functools import lru_cache

import torch
from recbole.trainer import Trainer

from recbole_gemirec.errors import DataError
from recbole_gemirec.trainer.checkpointing import SafeCheckpointMixin
from recbole_gemirec.trainer.evaluation_mixin import MultiInterestEvaluationMixin
from recbole_gemirec.trainer.hooks import TrainerHooks
from recbole_gemirec.trainer.numeric_guards import NumericGuardMixin


class ExtensionMixin(NumericGuardMixin, SafeCheckpointMixin, MultiInterestEvaluationMixin, TrainerHooks):
    """Put in front of any RecBole trainer class."""

    def train_epoch(self, train_data, epoch_idx, loss_func=None):
        """One training epoch (RecBole's loop with the guards), for callers outside the trainer."""
        return self._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=False)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        start = time.perf_counter()
        losses = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        self.after_train_epoch(epoch_idx, losses)
        self.run_hooks("epoch_trained", self.stage, epoch_idx, time.perf_counter() - start)
        return losses

    def validate(self, valid_data, show_progress=False):
        """The valid score and result of the current weights (a trainer with other validation overrides it)."""
        return super()._valid_epoch(valid_data, show_progress=show_progress)

    def _valid_epoch(self, valid_data, show_progress=False):
        score, result = self.validate(valid_data, show_progress=show_progress)
        self.run_hooks("validated", self.stage, score, result)
        return score, result

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        """RecBole's ``evaluate``, with an empty split refused, the best checkpoint loaded through the
        weights-only loader, :meth:`prepare_evaluation` before scoring and NaN metrics refused after."""
        if eval_data is not None and len(eval_data) == 0:
            raise DataError(
                f"dataset {self.config['dataset']!r}: the evaluation split is empty "
                f"(eval_args={self.config['eval_args']!r}, eval_protocol={self.config['eval_protocol']!r})"
            )
        if load_best_model and eval_data:
            loaded = self.load_best(model_file)
            self.logger.info(f"Loading model structure and parameters from {loaded}")
        if eval_data:
            self.prepare_evaluation(eval_data)
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        self.check_result(result)
        return result


class ExtensionTrainer(ExtensionMixin, Trainer):
    """RecBole's ``Trainer`` as every model of the extension (and RecBole's general and sequential models)
    is trained here."""


@lru_cache(maxsize=None)
def extension_trainer_class(trainer_class):
    """The extension's trainer for a model whose RecBole trainer is ``trainer_class``.

    ``Trainer`` -> :class:`ExtensionTrainer`; a class that already has :class:`ExtensionMixin` (GemiRec's)
    -> itself; any other RecBole trainer -> that trainer with :class:`ExtensionMixin` in front, made once
    per class and named like it.
    """
    if trainer_class is Trainer:
        return ExtensionTrainer
    if issubclass(trainer_class, ExtensionMixin):
        return trainer_class

    class WithExtension(ExtensionMixin, trainer_class):
        __doc__ = f"RecBole's {trainer_class.__name__} with the extension's checkpoints, guards and metrics."

    WithExtension.__name__ = WithExtension.__qualname__ = trainer_class.__name__
    return WithExtension
