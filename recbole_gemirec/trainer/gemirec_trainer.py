"""Three-stage trainer for GemiRec (docs/design.md §2.5).

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
(the latest epoch with its early-stopping state, random-number states and best result so far; see
:class:`~recbole_gemirec.trainer.checkpointing.SafeCheckpointMixin`). Checkpoints record their stage, so a
run killed in stage 3 resumes in stage 3, at the next epoch, with ``--resume=<the -last file>`` or
``--resume=<checkpoint_dir>``, and ends with the same result as an uninterrupted run with the same seed
(a ``-last`` file written after a stage's final epoch resumes at the next stage).

After every epoch of the dictionary and joint stages, codewords that no item uses are re-seeded
(:meth:`~recbole_gemirec.model.interest_dictionary.InterestDictionary.reseed_dead_codes`), so
utilisation does not decay during joint training (``reseeding = False`` turns it off, for the benchmark's
dictionary probe).

Under ``interest_source: auto`` the joint stage runs once per interest source the model offers (the learned
dictionary, then the category field's interests), each from the same retrieval-stage weights and each with
its own scoring choice; the source that validates better is kept (ties: the learned dictionary, the paper's)
and written into the run's configuration, so ``<run>-joint.pth`` rebuilds as what was chosen. The candidates
already trained are recorded in every later checkpoint (``-joint-<source>.pth`` holds each one's best), so a
run killed in the second joint stage resumes there and still compares both.

Listeners see each stage's start (``stage_started``, after the dictionary's k-means: a distributed run
shares rank 0's codebooks there) and every utilisation log (``dictionary_utilisation``);
:mod:`recbole_gemirec.trainer.hooks` lists the events.
"""

import os
import shutil

import torch
from recbole.utils import set_color

from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint
from recbole_gemirec.model.gemirec_config import STAGES, stage_budget
from recbole_gemirec.trainer.checkpoint_files import LAST_SUFFIX, resolve_resume_path
from recbole_gemirec.trainer.extension_trainer import ExtensionTrainer

# The scoring choice tries every candidate while (valid rows x items x queries per row x candidates) stays at most
# this many scores; beyond, it searches one key at a time (coordinate ascent from the tie rule's favourite), so a
# large catalogue does not pay hundreds of full-catalogue evaluations. Every run of the benchmark and the main job
# stay under it (the main job, factorised recipe: 943 x 1,683 x 11 x 560 = 9.8e9 scores).
FULL_GRID_SCORES = 5e10


class GemiRecTrainer(ExtensionTrainer):
    """RecBole trainer running GemiRec's retrieval, dictionary and joint stages in turn."""

    stage_names = STAGES

    def __init__(self, config, model):
        super().__init__(config, model)
        self.stage_epochs = self._stage_budget(config["stage_epochs"])
        self.run_file = self.saved_model_file
        self.stage_index = 0
        self.resumed = False
        # stage -> training loss of each epoch trained by this process (a checkpoint also records the losses
        # of the epochs before it, in extra["stage_losses"])
        self.stage_losses = {}
        # stage -> best valid score of the stage in this process (for the log of which stage is final)
        self.stage_best = {}
        self.reseeding = True  # re-seed dead codewords after every dictionary and joint epoch
        # interest_source: auto - source -> {"score", "result", "file"} of each joint stage trained so far, the
        # states of those trained by this process, and the retrieval-stage weights every candidate starts from
        self.source_trials = {}
        self._trial_states = {}
        self._joint_backbone = None

    @staticmethod
    def _stage_budget(stage_epochs):
        """Epochs per stage from ``stage_epochs`` (a mapping, or the list [retrieval, dictionary, joint])."""
        stage_epochs = stage_budget(stage_epochs)
        return {stage: int(stage_epochs.get(stage, 0)) for stage in STAGES}

    @property
    def stage(self):
        return STAGES[self.stage_index]

    def set_run_file(self, path):
        """Name the run (``<run>.pth``); the stages' files derive from it."""
        self.saved_model_file = self.run_file = path

    def stage_file(self, stage):
        root, ext = os.path.splitext(self.run_file)
        return f"{root}-{stage}{ext}"

    def result_extras(self):
        """The training loss of every epoch and the best valid score of every stage."""
        if not self.stage_losses:
            return {}
        extras = {"stage_losses": self.stage_losses, "stage_best_valid": dict(self.stage_best)}
        if self.source_trials:
            extras["interest_source_valid"] = {source: trial["score"] for source, trial in self.source_trials.items()}
            extras["interest_source"] = self.model.interest_source
        return extras

    def checkpoint_extra(self):
        return {"stage": self.stage, "stage_epochs": self.stage_epochs, "stage_losses": self.stage_losses,
                "interest_source_trials": self.source_trials}

    def fault_context(self):
        return f" of the {self.stage} stage"

    # --- stage control --------------------------------------------------------------------------
    def enter_stage(self, index, fresh=True):
        """Make stage ``index`` current: its model mode, epoch budget, checkpoint file and a fresh optimiser;
        ``fresh`` (not when resuming) also resets early stopping and initialises the stage's model state."""
        self.stage_index = index
        stage = self.stage
        self.model.set_stage(stage)
        self.epochs = self.stage_epochs[stage]
        self.saved_model_file = self.stage_file(stage)
        # the stage's own optimiser (a resumed stage then loads its state into it)
        self.optimizer = self._build_optimizer(
            params=self.model.optimiser_groups(self.learning_rate, freeze=bool(self.config["single_spec"])))
        if fresh:
            self.start_epoch = 0
            self.cur_step = 0
            self.best_valid_score = float("-inf")  # every stage's score is bigger-is-better
            self.best_valid_result = None
            if stage == "dictionary":
                self.model.start_dictionary_stage()
            if stage == "joint":
                if self._joint_backbone is None and len(self._source_candidates()) > 1:
                    self._joint_backbone = self.model.backbone_state()
                self.model.start_joint_stage()
            self.run_hooks("stage_started", stage)
            if stage == "dictionary":
                self.log_utilisation("after initialisation")
        self.logger.info(set_color(f"GemiRec stage [{stage}]", "pink") + f": up to {self.epochs} epochs")

    def resume_checkpoint(self, resume_file):
        """Continue from a checkpoint (or a directory: its newest ``-last`` file) in the stage it records."""
        resume_file = resolve_resume_path(resume_file, self.config["model"], STAGES)
        state = load_checkpoint(resume_file, map_location=self.device)
        extra = state.get("extra") or {}
        stage = extra.get("stage", STAGES[0])
        if stage not in STAGES:
            raise CheckpointError(f"checkpoint {resume_file} records stage {stage!r}; allowed: {', '.join(STAGES)}")
        self.run_file = self._run_file_of(resume_file, stage)
        self.source_trials = dict(extra.get("interest_source_trials") or {})
        self._rebuild_for_checkpoint(state)
        self.enter_stage(STAGES.index(stage), fresh=False)
        self._resume_from_state(state, resume_file)
        self.saved_model_file = self.stage_file(stage)
        self.resumed = True
        return state

    @staticmethod
    def _run_file_of(stage_file, stage):
        """``<run>-<stage>[-last].pth`` -> ``<run>.pth``, so the resumed run keeps writing the same files."""
        root, ext = os.path.splitext(str(stage_file))
        for suffix in (LAST_SUFFIX, f"-{stage}"):
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
                    self.enter_stage(index)  # the joint stage still needs an initialised dictionary
                continue
            if not (self.resumed and index == start):
                self.enter_stage(index)
            result = self.fit_stage(train_data, valid_data, verbose, saved, show_progress, callback_fn)
            if saved and os.path.exists(self.saved_model_file):
                self.load_best()
            if stage == "dictionary":
                self.log_utilisation("end of stage")
            if stage == "joint":
                result = self._finish_joint_stage(valid_data, saved)
                if len(self._source_candidates()) > 1 and valid_data is not None:
                    result = self._compare_interest_sources(train_data, valid_data, verbose, saved, show_progress,
                                                            callback_fn)
        self.resumed = False
        self._log_stage_choice()
        return result

    def fit_stage(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """Train the current stage alone (after :meth:`enter_stage`), with RecBole's epoch loop and early
        stopping; records the stage's best valid score."""
        result = super().fit(train_data, valid_data, verbose, saved, show_progress, callback_fn)
        self.stage_best[self.stage] = self.best_valid_score
        return result

    def _finish_joint_stage(self, valid_data, saved):
        """The scoring choice after a joint stage (when the model has one to make); the stage's result."""
        if getattr(self.model, "scoring_candidates", None) and valid_data is not None:
            self._choose_scoring(valid_data, saved)
        return self.best_valid_score, self.best_valid_result

    # --- interest_source: auto ------------------------------------------------------------------
    def _source_candidates(self):
        return tuple(getattr(self.model, "interest_source_candidates", ()))

    def _compare_interest_sources(self, train_data, valid_data, verbose, saved, show_progress, callback_fn):
        """Train the joint stage of every interest source not tried yet, from the same retrieval-stage
        weights, and keep the one that validates best (ties: the first candidate, the learned dictionary)."""
        self._record_trial(saved)
        for source in self._source_candidates():
            if source in self.source_trials:
                continue
            self._start_candidate(source)
            self.fit_stage(train_data, valid_data, verbose, saved, show_progress, callback_fn)
            if saved and os.path.exists(self.saved_model_file):
                self.load_best()
            self._finish_joint_stage(valid_data, saved)
            self._record_trial(saved)
        order = self._source_candidates()
        best = max(self.source_trials, key=lambda src: (self.source_trials[src]["score"], -order.index(src)))
        if best != self.model.interest_source:
            self._restore_trial(best, saved)
        trial = self.source_trials[best]
        self.best_valid_score, self.best_valid_result = trial["score"], trial["result"]
        self.stage_best["joint"] = trial["score"]
        self.logger.info(set_color("interest source", "blue") + f": valid {self.config['valid_metric']} "
                         + ", ".join(f"{src}: {t['score']:.4f}" for src, t in self.source_trials.items())
                         + f"; chose {best}")
        return self.best_valid_score, self.best_valid_result

    def _record_trial(self, saved):
        """Keep the current candidate's best joint state: its valid score and result, and a copy of its
        checkpoint (``<run>-joint-<source>.pth``) or, without checkpoints, of its weights."""
        source = self.model.interest_source
        path = None
        if saved and os.path.exists(self.saved_model_file):
            root, ext = os.path.splitext(self.saved_model_file)
            path = f"{root}-{source}{ext}"
            shutil.copyfile(self.saved_model_file, path)
        else:
            self._trial_states[source] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        self.source_trials[source] = {"score": float(self.best_valid_score), "result": self.best_valid_result,
                                      "file": path}

    def _shared_backbone(self):
        """The retrieval-stage weights the candidates start from: kept at the joint stage's start, or (a
        resumed run) read from the dictionary or retrieval stage's checkpoint, or else the current ones."""
        if self._joint_backbone is not None:
            return self._joint_backbone
        for stage in ("dictionary", "retrieval"):
            if os.path.exists(self.stage_file(stage)):
                state = load_checkpoint(self.stage_file(stage), map_location=self.device)["state_dict"]
                return self.model.backbone_state(state)
        return self.model.backbone_state()

    def _use_source(self, source, backbone):
        """Rebuild the model's interest parts for ``source`` and record it in the run's configuration,
        so every checkpoint written from now on rebuilds as this source."""
        self.model.use_interest_source(source, backbone, seed=int(self.config["seed"]) + 7919)
        self.config["interest_source"] = source
        if "interest_source" in self.config.external_config_dict:
            self.config.external_config_dict["interest_source"] = source

    def _start_candidate(self, source):
        self.logger.info(set_color("interest source", "blue") + f": the joint stage again, with interest_source "
                         f"{source}, from the same retrieval stage")
        self._use_source(source, self._shared_backbone())
        self.enter_stage(STAGES.index("joint"))

    def _restore_trial(self, source, saved):
        """Make the chosen candidate the model again, and its state the joint stage's checkpoint and its
        finished ``-last`` one (so resuming the finished run finds the same source in both)."""
        trial = self.source_trials[source]
        self._use_source(source, self.model.backbone_state())
        self.enter_stage(STAGES.index("joint"), fresh=False)  # an optimiser over this source's parameters
        if source in self._trial_states:
            self.model.load_state_dict(self._trial_states[source])
            epoch = 0
        else:
            state = load_checkpoint(trial["file"], map_location=self.device)
            self.load_model_state(state, trial["file"])
            if state.get("optimizer") is not None:
                self.optimizer.load_state_dict(state["optimizer"])
            epoch = state.get("epoch", 0)
        self.model.set_stage("joint")
        if saved:
            self._save_checkpoint(epoch, saved_model_file=self.saved_model_file)
            self._save_checkpoint(epoch, saved_model_file=self.last_file("joint"), stopped_early=True)

    def _rebuild_for_checkpoint(self, state):
        """A resumed ``interest_source: auto`` run whose checkpoint holds another candidate than the model
        was built as: rebuild the model's interest parts as that one before its weights are loaded."""
        saved = ((state.get("config") or {}).get("final") or {}).get("interest_source")
        if saved in self._source_candidates() and saved != self.model.interest_source:
            self._use_source(saved, self.model.backbone_state())

    @torch.no_grad()
    def _choose_scoring(self, valid_data, saved):
        """``interest_prior_weight: auto``, ``interest_masking: auto``, ``novel_interest_share: auto``,
        ``current_interest_share: auto`` and/or ``within_interest_ranking: auto``: try each ``(masking, tau[, beta,
        alpha[, popularity]])`` of the model's candidates on the valid split with the best joint-stage
        weights (scoring only, nothing is retrained), keep the best and store it in the stage's checkpoint, so the test split and serving
        use what was chosen on valid."""
        from recbole_gemirec.model.gemirec import scoring_label

        scores, results = {}, {}

        def evaluate(candidate):
            if candidate not in scores:
                self.model.set_scoring(*candidate)
                score, results[candidate] = self._valid_epoch(valid_data)  # listeners see every candidate's validation
                scores[candidate] = float(score)
            return (scores[candidate],) + _scoring_preference(candidate)

        candidates = list(self.model.scoring_candidates)  # (masking, tau[, beta[, alpha[, popularity]]])
        full_grid = self._scoring_grid_scores(valid_data, len(candidates)) <= FULL_GRID_SCORES
        with self.model.reusing_normalisers():  # the weights are fixed here: tau and the ranking reuse them
            best = max(candidates, key=evaluate) if full_grid else _coordinate_ascent(candidates, evaluate)
        self.model.set_scoring(*best)
        self.best_valid_score, self.best_valid_result = scores[best], results[best]
        self.stage_best["joint"] = scores[best]
        searched = "" if full_grid else f" (one key at a time: {len(scores)} of {len(candidates)} candidates)"
        self.logger.info(set_color("scoring", "blue") + f": valid {self.config['valid_metric']} by "
                         + ", ".join(f"{scoring_label(*c)}: {score:.4f}" for c, score in scores.items())
                         + f"; chose {scoring_label(*best)}{searched}")
        if saved and os.path.exists(self.saved_model_file):
            epoch = load_checkpoint(self.saved_model_file, map_location=self.device).get("epoch", 0)
            self._save_checkpoint(epoch, saved_model_file=self.saved_model_file)

    def _scoring_grid_scores(self, valid_data, n_candidates):
        """How many item scores trying every scoring candidate computes: valid rows x items x the queries of a
        row (K interests and u) x candidates."""
        rows = len(getattr(valid_data, "dataset", None) or ())
        return rows * int(self.model.n_items) * (int(self.model.interest_num) + 1) * n_candidates

    def _log_stage_choice(self):
        """Say which stage's model is final and how it validated against the retrieval stage's user vector:
        the joint stage's model is the one tested, even where the single vector validated better."""
        retrieval, joint = self.stage_best.get("retrieval"), self.stage_best.get("joint")
        if retrieval is None or joint is None:
            return
        metric = self.config["valid_metric"]
        if joint >= retrieval:
            self.logger.info(set_color("GemiRec", "pink") + f": the joint stage's model is final (valid {metric} "
                             f"{joint:.4f}; the retrieval stage's single user vector {retrieval:.4f})")
        else:
            self.logger.warning(set_color(
                f"GemiRec: the joint stage's model is final (valid {metric} {joint:.4f}), but the retrieval "
                f"stage's single user vector validated better ({retrieval:.4f}); its checkpoint is "
                f"{self.stage_file('retrieval')}", "yellow"))

    def last_file(self, stage=None):
        """``<run>-<stage>-last.pth``: the stage's checkpoint of its latest evaluated epoch."""
        root, ext = os.path.splitext(self.stage_file(stage or self.stage))
        return f"{root}{LAST_SUFFIX}{ext}"

    def after_train_epoch(self, epoch_idx, losses):
        total = sum(losses) if isinstance(losses, tuple) else losses
        self.stage_losses.setdefault(self.stage, []).append(float(total))
        self.reseed_dead_codes(epoch_idx)
        super().after_train_epoch(epoch_idx, losses)

    def reseed_dead_codes(self, epoch_idx):
        """Re-seed unused codewords after a dictionary or joint epoch (not when the dictionary is frozen)."""
        dictionary = self.model.dictionary
        if self.stage == "retrieval" or not self.reseeding:
            return
        if self.stage == "joint" and (not self.model.joint_training or bool(self.model.codes_frozen)):
            return  # a frozen dictionary, or frozen item codes, have no dead codes to revive
        seed = int(self.config["seed"]) * 1009 + 97 * self.stage_index + epoch_idx
        moved = dictionary.reseed_dead_codes(self.model.item_embedding.weight[1:], seed=seed)
        if any(moved):
            self.logger.info(
                set_color("dictionary", "blue") + f": re-seeded {sum(moved)} dead codewords "
                f"(per level {moved}) after epoch {epoch_idx} of the {self.stage} stage"
            )

    # --- per-stage behaviour ----------------------------------------------------------------------
    def validate(self, valid_data, show_progress=False):
        """The dictionary stage validates by its loss (ranking does not change in it), the others by RecBole's."""
        if self.stage == "dictionary":
            loss = self._dictionary_validation_loss()
            self.log_utilisation("valid")
            return -loss, {"dictionary_loss": round(loss, 6)}
        return super().validate(valid_data, show_progress=show_progress)

    @torch.no_grad()
    def _dictionary_validation_loss(self):
        self.model.eval()
        items = self.model.item_embedding.weight[1:]
        return float(self.model.dictionary.loss(items).item())

    @torch.no_grad()
    def log_utilisation(self, when):
        """Log the dictionary's utilisation per level and its distinct codes (and tell the listeners)."""
        util = self.model.dictionary_utilisation()
        self.run_hooks("dictionary_utilisation", self.stage, when, util)
        levels = ", ".join(f"{100 * share:.1f}%" for share in util["per_level"])
        self.logger.info(
            set_color("dictionary utilisation", "blue") + f" ({when}): per level [{levels}], "
            f"distinct codes {util['distinct_codes']}"
        )

    def prepare_evaluation(self, eval_data):
        """The joint stage scores with each user's interest cache: rebuild it from the generator first."""
        if self.model.stage == "joint":
            self.model.eval()
            for batched in eval_data:
                self.model.refresh_interest_cache(batched[0].to(self.device))
            self.log_utilisation("evaluation")
        super().prepare_evaluation(eval_data)


def _scoring_preference(candidate):
    """The scoring choice's tie rule, best last: no masking, then the tau nearest 1, then the smallest beta and
    alpha, then the queries' own ranking."""
    return (not candidate[0], -abs(candidate[1] - 1.0), -sum(float(x) for x in candidate[2:] if x is not None))


def _coordinate_ascent(candidates, evaluate):
    """The best of ``candidates`` (tuples of one grid) found one position at a time: from the tie rule's favourite,
    move to the best candidate that differs in one position only, position after position, until a whole pass
    moves nowhere. ``evaluate(candidate)`` returns a comparable score (it may keep what it computed)."""
    current = max(candidates, key=_scoring_preference)
    best = evaluate(current)
    moved = True
    while moved:
        moved = False
        for position in range(len(current)):
            line = [c for c in candidates if all(c[j] == current[j] for j in range(len(c)) if j != position)]
            challenger = max(line, key=evaluate)
            if evaluate(challenger) > best:
                current, best, moved = challenger, evaluate(challenger), True
    return current
