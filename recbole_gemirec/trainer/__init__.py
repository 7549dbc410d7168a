"""Trainers of the extension. ``get_trainer`` looks here for ``<Model>Trainer`` before RecBole."""

from recbole_gemirec.trainer.safe_trainer import SafeCheckpointMixin, safe_trainer_class

__all__ = ["SafeCheckpointMixin", "safe_trainer_class"]
