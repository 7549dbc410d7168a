"""Three-stage trainer for GemiRec (DESIGN §2.5).

Stages, each with its own epoch budget (``stage_epochs``), early stopping, fresh optimiser, log label
and checkpoint file:

1. ``retrieval`` - the user tower and item embeddings alone, so item embeddings become meaningful;
2. ``dictionary`` - the interest dictionary on those embeddings, k-means initialised at the stage's
   start (validation: the dictionary loss over all items, lower is better; ranking does not change);
3. ``joint`` - all losses; evaluation scores with each user's interest cache, refreshed from the
   generator before every evaluation. ``joint_training: false`` (GemiRec-J) keeps the dictionary as
   stage 2 left it: no dictionary loss and no gradient into the codewords.

Each stage writes ``<checkpoint_dir>/<Model>-<time>-<stage>.pth`` (the best epoch of the stage; the
next stage starts from that best state) and, after every evaluated epoch, ``...-<stage>-last.pth``
(the latest epoch with its early-stopping state). Checkpoints record their stage, so a run killed in
stage 3 resumes in stage 3, at the next epoch, with ``--resume=<the -last file>``.
"""

import os

import torch
from recbole.trainer import Trainer
from recbole.utils import set_color

from recbole_gemirec.checkpoint import load_checkpoint
from recbole_gemirec.model.gemirec import STAGES
from recbole_gemirec.trainer.safe_trainer import safe_trainer_class

_BaseTrainer = safe_trainer_class(Trainer)


class GemiRecTrainer(_BaseTrainer):
    """RecBole trainer running GemiRec's retrieval, dictionary and joint stages in turn."""

    def __init__(self, config, model):
        super().__init__(config, model)
        self.stage_epochs = self._stage_budget(config["stage_epochs"])
        self.run_file = self.saved_model_file
        self.stage_index = 0
        self.resumed = False
        self.stage_losses = {}  # stage -> training loss of each epoch, for reports and tests

    @staticmethod
    def _stage_budget(stage_epochs):
        budget = {stage: int(stage_epochs.get(stage, 0)) for stage in STAGES}
        return budget

    @property
    def stage(self):
        return STAGES[self.stage_index]

    def stage_file(self, stage):
        root, ext = os.path.splitext(self.run_file)
        return f"{root}-{stage}{ext}"

    def checkpoint_extra(self):
        return {"stage": self.stage, "stage_epochs": self.stage_epochs}

    # --- stage control --------------------------------------------------------------------------
    def _enter_stage(self, index, fresh=True):
        self.stage_index = index
        stage = self.stage
        self.model.set_stage(stage)
        self.epochs = self.stage_epochs[stage]
        self.saved_model_file = self.stage_file(stage)
        if fresh:
            self.start_epoch = 0
            self.cur_step = 0
            self.best_valid_score = float("-inf")  # every stage's score is bigger-is-better
            self.best_valid_result = None
            self.optimizer = self._build_optimizer()
            if stage == "dictionary":
                self.model.start_dictionary_stage()
                self._log_utilisation("after initialisation")
        self.logger.info(set_color(f"GemiRec stage [{stage}]", "pink") + f": up to {self.epochs} epochs")

    def resume_checkpoint(self, resume_file):
        state = load_checkpoint(resume_file, map_location=self.device)
        stage = state["extra"].get("stage", STAGES[0])
        self.run_file = self._run_file_of(resume_file, stage)
        self._enter_stage(STAGES.index(stage), fresh=False)
        super().resume_checkpoint(resume_file)
        self.saved_model_file = self.stage_file(stage)
        self.resumed = True
        return state

    @staticmethod
    def _run_file_of(stage_file, stage):
        """``<run>-<stage>[-last].pth`` -> ``<run>.pth``, so the resumed run keeps writing the same files."""
        root, ext = os.path.splitext(str(stage_file))
        for suffix in ("-last", f"-{stage}"):
            if root.endswith(suffix):
                root = root[: -len(suffix)]
        return root + ext

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """Run the stages in order (from the resumed one, after :meth:`resume_checkpoint`)."""
        start = self.stage_index if self.resumed else 0
        result = (self.best_valid_score, self.best_valid_result)
        for index in range(start, len(STAGES)):
            stage = STAGES[index]
            if self.stage_epochs[stage] <= 0:
                if stage == "dictionary" and self.stage_epochs["joint"] > 0:
                    self._enter_stage(index)  # the joint stage still needs an initialised dictionary
                continue
            if not (self.resumed and index == start):
                self._enter_stage(index)
            result = super().fit(train_data, valid_data, verbose, saved, show_progress,
                                 self._epoch_callback(saved, callback_fn))
            if saved and os.path.exists(self.saved_model_file):
                self.load_model_state(load_checkpoint(self.saved_model_file, map_location=self.device))
            if stage == "dictionary":
                self._log_utilisation("end of stage")
        self.resumed = False
        return result

    def _epoch_callback(self, saved, callback_fn):
        """After every evaluated epoch: write the stage's ``-last`` checkpoint (what ``--resume`` reads to
        continue exactly where a killed run stopped), then call the user's callback."""

        def callback(epoch_idx, valid_score):
            if saved:
                self._save_checkpoint(epoch_idx, verbose=False, saved_model_file=self.last_file(self.stage))
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        return callback

    def last_file(self, stage):
        root, ext = os.path.splitext(self.stage_file(stage))
        return f"{root}-last{ext}"

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        losses = super()._train_epoch(train_data, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        total = sum(losses) if isinstance(losses, tuple) else losses
        self.stage_losses.setdefault(self.stage, []).append(float(total))
        return losses

    # --- per-stage behaviour ----------------------------------------------------------------------
    def _valid_epoch(self, valid_data, show_progress=False):
        if self.stage == "dictionary":
            loss = self._dictionary_validation_loss()
            self._log_utilisation("valid")
            return -loss, {"dictionary_loss": round(loss, 6)}
        return super()._valid_epoch(valid_data, show_progress=show_progress)

    @torch.no_grad()
    def _dictionary_validation_loss(self):
        self.model.eval()
        items = self.model.item_embedding.weight[1:]
        return float(self.model.dictionary.loss(items).item())

    def _log_utilisation(self, when):
        util = self.model.dictionary_utilisation()
        levels = ", ".join(f"{100 * share:.1f}%" for share in util["per_level"])
        self.logger.info(
            set_color("dictionary utilisation", "blue") + f" ({when}): per level [{levels}], "
            f"distinct codes {util['distinct_codes']}"
        )

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model and eval_data and model_file is None:
            model_file = self.saved_model_file
        if load_best_model and eval_data:
            self.load_model_state(load_checkpoint(model_file, map_location=self.device))
            load_best_model = False
        if eval_data and self.model.stage == "joint":
            self.model.eval()
            for batched in eval_data:
                self.model.refresh_interest_cache(batched[0].to(self.device))
            if self.model.stage != "retrieval":
                self._log_utilisation("evaluation")
        return super().evaluate(eval_data, load_best_model=load_best_model, show_progress=show_progress)
