"""Trainers of the extension. ``get_trainer`` looks here for ``<Model>Trainer`` before RecBole.

One concern per module: :mod:`.checkpointing` (weights-only checkpoints, resuming), :mod:`.checkpoint_files`
(file names, the checkpoint ``--resume`` continues from), :mod:`.rng_state` (random states as plain data),
:mod:`.numeric_guards` (non-finite losses, scores and metrics), :mod:`.evaluation_mixin` (AMR/CUR),
:mod:`.hooks` (events listeners register for), :mod:`.extension_trainer` (the trainer composed of them) and
:mod:`.gemirec_trainer` (GemiRec's three stages).
"""

from recbole_gemirec.trainer.checkpointing import SafeCheckpointMixin
from recbole_gemirec.trainer.evaluation_mixin import MultiInterestEvaluationMixin
from recbole_gemirec.trainer.extension_trainer import ExtensionMixin, ExtensionTrainer, extension_trainer_class
from recbole_gemirec.trainer.gemirec_trainer import GemiRecTrainer

__all__ = ["ExtensionMixin", "ExtensionTrainer", "GemiRecTrainer", "MultiInterestEvaluationMixin",
           "SafeCheckpointMixin", "extension_trainer_class"]
