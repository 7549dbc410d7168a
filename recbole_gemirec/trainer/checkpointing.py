"""Weights-only checkpoints and exact resuming for every trainer run through the extension.

RecBole's ``Trainer`` saves and loads checkpoints with pickled ``Config`` objects (see
:mod:`recbole_gemirec.checkpoint`). :class:`SafeCheckpointMixin` replaces exactly those methods, so that
any RecBole trainer (``Trainer``, ``KGTrainer``, ...) and our own trainers write checkpoints that load
under ``weights_only=True``, and adds what a long run needs to survive faults (``docs/reliability.md``):

* **resume after a crash** - after every evaluated epoch the trainer writes ``<run>-last.pth`` (GemiRec:
  ``<run>-<stage>-last.pth``) with, besides weights and optimiser, the random-number states
  (:mod:`~recbole_gemirec.trainer.rng_state`), the best result so far and whether training had finished.
  :meth:`~SafeCheckpointMixin.resume_checkpoint` takes such a file or a directory (the newest ``-last``
  checkpoint of this model in it, :mod:`~recbole_gemirec.trainer.checkpoint_files`) and the resumed run
  repeats exactly what the uninterrupted run would have done;
* **safe loading** - a checkpoint of another model, with other parameter names or shapes, non-numeric
  counters or NaN weights is refused with :class:`~recbole_gemirec.checkpoint.CheckpointError`, never a
  torch traceback half-way through ``load_state_dict``;
* **empty splits** - an empty training or evaluation split is a :class:`~recbole_gemirec.errors.DataError`
  instead of RecBole's silent ``None`` result.

After every checkpoint it writes (or, in a process that does not write, would have written) it runs the
trainer's ``checkpoint_saved`` hooks (:mod:`~recbole_gemirec.trainer.hooks`).
"""

import numpy as np
from recbole.utils import set_color

from recbole_gemirec.checkpoint import CheckpointError, check_state_dict, load_checkpoint, save_checkpoint
from recbole_gemirec.errors import DataError, TrainingError
from recbole_gemirec.output_paths import claim_run_file
from recbole_gemirec.trainer.checkpoint_files import last_file_of, resolve_resume_path, strip_last
from recbole_gemirec.trainer.rng_state import capture_rng_state, restore_rng_state


def _checkpoint_int(state, key, path):
    value = state.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise CheckpointError(f"checkpoint {path} is damaged: {key}={value!r} is not an integer")
    return value


def _plain_result(result):
    """A metric dictionary with Python floats (``np.float64`` is a ``float`` subclass that pickles as a
    numpy global, which ``weights_only`` loading refuses)."""
    if result is None:
        return None
    return {str(k): (float(v) if isinstance(v, (float, np.floating)) else v) for k, v in dict(result).items()}


class SafeCheckpointMixin:
    """Weights-only checkpoints and exact resuming for any RecBole trainer."""

    stage_names = ()  # a trainer with stages names them in order (a tie of resume candidates: the later wins)
    _train_loader = None
    _pending_rng = None
    _resume_finished = False
    _resume_pending = False
    _last_good_checkpoint = None

    def __init__(self, config, model):
        super().__init__(config, model)
        if config["single_spec"] or config["local_rank"] == 0:  # the writer; others get its name broadcast
            self.saved_model_file = claim_run_file(self.saved_model_file)

    # --- saving ------------------------------------------------------------------------------------------
    def checkpoint_extra(self):
        """Plain data that a subclass wants stored with each checkpoint (e.g. its training stage)."""
        return {}

    def last_file(self):
        """Where the checkpoint of the latest evaluated epoch goes: ``<saved_model_file>-last.pth``."""
        return last_file_of(self.saved_model_file)

    def set_run_file(self, path):
        """Name the run's checkpoint file (a distributed run gives every process rank 0's name)."""
        self.saved_model_file = path

    def _resume_state(self, stopped):
        return {
            "rng": capture_rng_state(self._train_loader),
            "best_valid_result": _plain_result(self.best_valid_result),
            "stopped_early": bool(stopped),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        saved_model_file = kwargs.get("saved_model_file", self.saved_model_file)
        if self.config["single_spec"] or self.config["local_rank"] == 0:  # one process writes
            self._write_checkpoint(epoch, verbose, **kwargs)
        self.run_hooks("checkpoint_saved", saved_model_file)

    def _write_checkpoint(self, epoch, verbose=True, **kwargs):
        saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
        extra = dict(self.checkpoint_extra())
        extra["resume"] = self._resume_state(kwargs.pop("stopped_early", False))
        try:
            save_checkpoint(
                saved_model_file,
                self.config,
                self.model,
                epoch=epoch,
                cur_step=self.cur_step,
                best_valid_score=self.best_valid_score,
                optimizer=self.optimizer,
                extra=extra,
            )
        except OSError as err:  # a full disk or a directory made read-only during the run
            raise TrainingError(
                f"training stopped: checkpoint {saved_model_file} could not be written at epoch {epoch}"
                f"{self.fault_context()} ({err.strerror or err}). {self._last_good_note()}"
            ) from None
        self._last_good_checkpoint = saved_model_file
        if verbose:
            self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")

    # --- loading -----------------------------------------------------------------------------------------
    def load_model_state(self, state, path="checkpoint"):
        """Put a loaded checkpoint's weights into ``self.model`` after checking they fit it."""
        check_state_dict(self.model, state.get("state_dict"), path)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))

    def load_best(self, model_file=None):
        """Load ``model_file`` (default: the run's best checkpoint, ``saved_model_file``) into the model."""
        model_file = model_file or self.saved_model_file
        self.load_model_state(load_checkpoint(model_file, map_location=self.device), model_file)
        return model_file

    def resume_checkpoint(self, resume_file):
        """Continue from ``resume_file`` (a checkpoint, or a directory: its newest ``-last`` checkpoint)."""
        resume_file = resolve_resume_path(resume_file, self.config["model"], self.stage_names)
        state = load_checkpoint(resume_file, map_location=self.device)
        return self._resume_from_state(state, resume_file)

    def _resume_from_state(self, state, resume_file):
        saved_model = state["config"].get("model") if isinstance(state.get("config"), dict) else None
        if str(saved_model).lower() != self.config["model"].lower():
            raise CheckpointError(
                f"checkpoint {resume_file} was written by model {saved_model!r}; this run trains "
                f"{self.config['model']!r}, so it cannot resume from it"
            )
        epoch = _checkpoint_int(state, "epoch", resume_file)
        cur_step = _checkpoint_int(state, "cur_step", resume_file)
        self.load_model_state(state, resume_file)
        if state.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except (ValueError, KeyError, TypeError, RuntimeError) as err:
                raise CheckpointError(f"checkpoint {resume_file}: its optimiser state does not fit ({err})") from None
        self.saved_model_file = strip_last(resume_file)
        self.start_epoch = epoch + 1
        self.cur_step = cur_step
        if state["best_valid_score"] is not None:
            self.best_valid_score = state["best_valid_score"]
        resume = (state.get("extra") or {}).get("resume") or {}
        self.best_valid_result = resume.get("best_valid_result")
        self._pending_rng = resume.get("rng")
        self._resume_finished = bool(resume.get("stopped_early", False))
        self._resume_pending = True
        self._last_good_checkpoint = resume_file
        self.logger.info(f"Checkpoint loaded. Resume training from epoch {self.start_epoch}")
        return state

    # --- training ------------------------------------------------------------------------------------------
    def _check_splits(self, train_data, valid_data):
        name = self.config["dataset"]
        if train_data is not None and len(train_data) == 0:
            raise DataError(
                f"dataset {name!r} has no training sample after the split (eval_args={self.config['eval_args']!r}, "
                f"eval_protocol={self.config['eval_protocol']!r}); sequential models need users with at least "
                "two interactions"
            )
        if valid_data is not None and len(valid_data) == 0:
            raise DataError(
                f"dataset {name!r} has an empty validation split (eval_args={self.config['eval_args']!r}, "
                f"eval_protocol={self.config['eval_protocol']!r}); early stopping and the best epoch need it"
            )

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False, callback_fn=None):
        """RecBole's ``fit`` with split checks, the ``-last`` checkpoint after every evaluated epoch and, after
        :meth:`resume_checkpoint`, the random-number states of the interrupted run restored first."""
        self._check_splits(train_data, valid_data)
        self._train_loader = train_data
        if self._pending_rng is not None:
            restore_rng_state(self._pending_rng, train_data)
            self._pending_rng = None
        resumed, self._resume_pending = self._resume_pending, False
        if resumed and (self._resume_finished or self.start_epoch >= self.epochs):
            # The checkpoint was written when early stopping fired or after the last epoch of the budget:
            # nothing is left to train (and RecBole's fit would overwrite the best checkpoint with the last
            # state). A larger epoch budget than the interrupted run's continues training.
            self._resume_finished = False
            return self.best_valid_score, self.best_valid_result
        return super().fit(train_data, valid_data, verbose, saved, show_progress,
                           self._last_checkpoint_callback(saved, callback_fn))

    def _last_checkpoint_callback(self, saved, callback_fn):
        """After every evaluated epoch (RecBole's callback point: early stopping already updated) write
        :meth:`last_file`, what ``--resume`` reads to continue exactly where a killed run stopped."""

        def callback(epoch_idx, valid_score):
            if saved:
                stopped = self.cur_step > self.stopping_step  # RecBole's early-stopping condition
                self._save_checkpoint(epoch_idx, verbose=False, saved_model_file=self.last_file(), stopped_early=stopped)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        return callback

    def fault_context(self):
        """Words placed after the epoch number in error messages (GemiRec: the stage)."""
        return ""

    def _last_good_note(self, fix="after freeing space or fixing the permissions"):
        """The sentence of a stop message that names the last good checkpoint and how to go on from it."""
        if self._last_good_checkpoint:
            return (f"The last good checkpoint, {self._last_good_checkpoint}, is intact: resume with "
                    f"--resume={self._last_good_checkpoint} {fix}")
        return "No checkpoint was written by this run yet"
