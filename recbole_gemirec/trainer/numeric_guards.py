"""Numerical guards of every trainer run through the extension (docs/reliability.md).

Every loss term of every batch is checked before the backward pass; a NaN or infinite term stops training
with :class:`~recbole_gemirec.errors.TrainingError` naming the term (``model.loss_names``), the epoch and the
last good checkpoint, which stays intact (checkpoints are written atomically). Evaluation refuses NaN scores
and NaN metrics the same way. Composed into every trainer by
:mod:`recbole_gemirec.trainer.extension_trainer`; it reads ``fault_context`` and ``_last_good_note`` from
:class:`~recbole_gemirec.trainer.checkpointing.SafeCheckpointMixin`.
"""

import math

import numpy as np
import torch

from recbole_gemirec.errors import TrainingError


class NumericGuardMixin:
    """Stops on a non-finite loss term, score or metric, with a message that says where and what next."""

    def _loss_name(self, index, count):
        names = getattr(self.model, "loss_names", None)
        if names and len(names) == count:
            return f"{names[index]} loss"
        return "loss" if count == 1 else f"loss term {index + 1} of {count}"

    def _raise_non_finite(self, what, value, epoch_idx):
        kind = "NaN" if (isinstance(value, torch.Tensor) and bool(torch.isnan(value).any())) or (
            isinstance(value, float) and math.isnan(value)) else "infinite"
        raise TrainingError(
            f"training stopped: the {what} is {kind} at epoch {epoch_idx}{self.fault_context()} "
            f"(model {self.config['model']}, dataset {self.config['dataset']}). "
            f"{self._last_good_note('after lowering learning_rate or fixing the data')}"
        )

    def _check_loss_terms(self, losses, epoch_idx):
        terms = losses if isinstance(losses, tuple) else (losses,)
        for index, term in enumerate(terms):
            finite = bool(torch.isfinite(term).all()) if isinstance(term, torch.Tensor) else math.isfinite(float(term))
            if not finite:
                self._raise_non_finite(self._loss_name(index, len(terms)), term, epoch_idx)

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        """RecBole's epoch, with every loss term of every batch checked before its backward pass."""
        self._epoch_idx = epoch_idx
        compute = loss_func or self.model.calculate_loss

        def guarded(interaction):
            losses = compute(interaction)
            self._check_loss_terms(losses, epoch_idx)
            return losses

        return super()._train_epoch(train_data, epoch_idx, loss_func=guarded, show_progress=show_progress)

    def _check_nan(self, loss):
        """Replaces RecBole's ``ValueError('Training loss is nan')`` (for trainers that bypass ``loss_func``)."""
        if not bool(torch.isfinite(loss).all()):
            self._raise_non_finite("total loss", loss, getattr(self, "_epoch_idx", self.start_epoch))

    # --- evaluation ------------------------------------------------------------------------------------------
    def _check_scores(self, scores):
        if bool(torch.isnan(scores).any()):
            raise TrainingError(
                f"evaluation stopped: the model scored NaN for {int(torch.isnan(scores).sum())} user-item pairs "
                f"(model {self.config['model']}, dataset {self.config['dataset']}{self.fault_context()}); its weights "
                "are not finite. Resume from an earlier checkpoint with a lower learning_rate"
            )

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        self._check_scores(scores)
        return interaction, scores, positive_u, positive_i

    def _neg_sample_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._neg_sample_batch_eval(batched_data)
        self._check_scores(scores)
        return interaction, scores, positive_u, positive_i

    def check_result(self, result):
        """Refuse a NaN metric in an evaluation result (every metric must be a number)."""
        for metric, value in (result or {}).items():
            if isinstance(value, (float, np.floating)) and math.isnan(float(value)):
                raise TrainingError(
                    f"evaluation produced a NaN metric {metric} (model {self.config['model']}, dataset "
                    f"{self.config['dataset']}{self.fault_context()}); every metric must be a number"
                )
