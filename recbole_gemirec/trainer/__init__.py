"""Trainers of the extension. ``get_trainer`` looks here for ``<Model>Trainer`` before RecBole."""

from recbole_gemirec.trainer.evaluation_mixin import MultiInterestEvaluationMixin
from recbole_gemirec.trainer.safe_trainer import SafeCheckpointMixin, safe_trainer_class
from recbole_gemirec.trainer.gemirec_trainer import GemiRecTrainer

__all__ = ["MultiInterestEvaluationMixin", "SafeCheckpointMixin", "safe_trainer_class", "GemiRecTrainer"]
