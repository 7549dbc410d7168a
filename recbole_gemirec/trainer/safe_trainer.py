"""Checkpoint handling that every trainer run through the extension uses.

RecBole's ``Trainer`` saves and loads checkpoints with pickled ``Config`` objects (see
:mod:`recbole_gemirec.checkpoint`). :class:`SafeCheckpointMixin` replaces exactly those three methods, so
that any RecBole trainer (``Trainer``, ``KGTrainer``, ...) and our own trainers write checkpoints that
load under ``weights_only=True``; :func:`safe_trainer_class` mixes it into a RecBole trainer class,
together with :class:`~recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin` (AMR/CUR
collection, DESIGN §5), so every trainer returned by :func:`recbole_gemirec.utils.get_trainer` has both.
"""

import torch
from recbole.utils import set_color

from recbole_gemirec.checkpoint import load_checkpoint, save_checkpoint


class SafeCheckpointMixin:
    """Overrides ``_save_checkpoint``, ``resume_checkpoint`` and ``evaluate``'s model loading."""

    def checkpoint_extra(self):
        """Plain data that a subclass wants stored with each checkpoint (e.g. its training stage)."""
        return {}

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        save_checkpoint(
            saved_model_file,
            self.config,
            self.model,
            epoch=epoch,
            cur_step=self.cur_step,
            best_valid_score=self.best_valid_score,
            optimizer=self.optimizer,
            extra=self.checkpoint_extra(),
        )
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    def load_model_state(self, state):
        """Put a loaded checkpoint's weights into ``self.model``."""
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))

    def resume_checkpoint(self, resume_file):
        resume_file = str(resume_file)
        state = load_checkpoint(resume_file, map_location=self.device)
        self.saved_model_file = resume_file
        self.start_epoch = state["epoch"] + 1
        self.cur_step = state["cur_step"]
        if state["best_valid_score"] is not None:
            self.best_valid_score = state["best_valid_score"]
        if state["config"]["model"].lower() != self.config["model"].lower():
            self.logger.warning(
                f"checkpoint {resume_file} was written by model {state['config']['model']}, "
                f"not {self.config['model']}; loading its weights may fail"
            )
        self.load_model_state(state)
        if state.get("optimizer") is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        return state

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            self.load_model_state(load_checkpoint(checkpoint_file, map_location=self.device))
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)


def safe_trainer_class(trainer_class):
    """Return ``trainer_class`` with :class:`SafeCheckpointMixin` and
    :class:`~recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin` in front (those it
    lacks; itself if it already has both)."""
    from recbole_gemirec.trainer.evaluation_mixin import MultiInterestEvaluationMixin

    missing = tuple(m for m in (SafeCheckpointMixin, MultiInterestEvaluationMixin) if not issubclass(trainer_class, m))
    if not missing:
        return trainer_class
    return type(trainer_class.__name__, missing + (trainer_class,), {"__module__": __name__})
