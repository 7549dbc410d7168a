"""Checkpoint handling, resuming and numerical guards that every trainer run through the extension uses.

RecBole's ``Trainer`` saves and loads checkpoints with pickled ``Config`` objects (see
:mod:`recbole_gemirec.checkpoint`). :class:`SafeCheckpointMixin` replaces exactly those methods, so that
any RecBole trainer (``Trainer``, ``KGTrainer``, ...) and our own trainers write checkpoints that load
under ``weights_only=True``, and adds what a long run needs to survive faults (``docs/reliability.md``):

* **resume after a crash** - after every evaluated epoch the trainer writes ``<run>-last.pth`` (GemiRec:
  ``<run>-<stage>-last.pth``) with, besides weights and optimiser, the random-number states (torch,
  numpy, Python, the training loader's shuffling generator), the best result so far and whether training
  had finished. :meth:`~SafeCheckpointMixin.resume_checkpoint` takes such a file or a directory (the
  newest ``-last`` checkpoint of this model in it) and the resumed run repeats exactly what the
  uninterrupted run would have done;
* **safe loading** - a checkpoint of another model, with other parameter names or shapes, non-numeric
  counters or NaN weights is refused with :class:`~recbole_gemirec.checkpoint.CheckpointError`, never a
  torch traceback half-way through ``load_state_dict``;
* **numerical faults** - every loss term of every batch is checked before the backward pass; a NaN or
  infinite term stops training with :class:`~recbole_gemirec.errors.TrainingError` naming the term
  (``model.loss_names``), the epoch and the last good checkpoint, which stays intact (checkpoints are
  written atomically). Evaluation refuses NaN scores and NaN metrics the same way;
* **empty splits** - an empty training or evaluation split is a :class:`~recbole_gemirec.errors.DataError`
  instead of RecBole's silent ``None`` result.

:func:`safe_trainer_class` mixes it into a RecBole trainer class, together with
:class:`~recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin` (AMR/CUR collection,
docs/design.md §5), so every trainer returned by :func:`recbole_gemirec.utils.get_trainer` has both.
"""

import glob
import math
import os
import random

import numpy as np
import torch
from recbole.utils import set_color

from recbole_gemirec.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from recbole_gemirec.errors import DataError, TrainingError
from recbole_gemirec.model.gemirec import STAGES  # GemiRec's later stage wins a tie of resume candidates
from recbole_gemirec.output_paths import claim_run_file

LAST_SUFFIX = "-last"


# --- random-number states as plain data ---------------------------------------------------------------------
def _bytes_hex(tensor):
    return tensor.cpu().numpy().tobytes().hex()


def _hex_bytes(text):
    return torch.frombuffer(bytearray(bytes.fromhex(text)), dtype=torch.uint8).clone()


def capture_rng_state(loader=None):
    """Every random-number state a training epoch draws from, as plain data (hex strings, numbers).

    torch's CPU generator (dropout, negative sampling, ``torch.randint``), CUDA's when present, numpy's and
    Python's global generators (RecBole's samplers), and ``loader.generator``, which shuffles RecBole's
    training batches. Plain data keeps the checkpoint loadable under ``weights_only=True``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": _bytes_hex(torch.get_rng_state()),
        "numpy": {"name": name, "keys": np.asarray(keys, dtype=np.uint32).tobytes().hex(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = [_bytes_hex(s) for s in torch.cuda.get_rng_state_all()]
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader"] = _bytes_hex(generator.get_state())
    return state


def restore_rng_state(state, loader=None):
    """Put back what :func:`capture_rng_state` recorded; :class:`CheckpointError` if it is damaged."""
    try:
        torch.set_rng_state(_hex_bytes(state["torch"]))
        numpy_state = state["numpy"]
        keys = np.frombuffer(bytes.fromhex(numpy_state["keys"]), dtype=np.uint32).copy()
        np.random.set_state((numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                             numpy_state["cached_gaussian"]))
        python_state = state["python"]
        random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([_hex_bytes(s) for s in state["cuda"]])
        generator = getattr(loader, "generator", None)
        if "loader" in state and isinstance(generator, torch.Generator):
            generator.set_state(_hex_bytes(state["loader"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"the checkpoint's random-number state is damaged and cannot be restored ({err})") from None


# --- locating checkpoints --------------------------------------------------------------------------------
def strip_last(path):
    """``<run>-last.pth`` -> ``<run>.pth`` (any other path unchanged)."""
    root, ext = os.path.splitext(str(path))
    return (root[: -len(LAST_SUFFIX)] if root.endswith(LAST_SUFFIX) else root) + ext


def resolve_resume_path(path, model_name):
    """A checkpoint file as given, or for a directory its newest ``<model>-*-last.pth``.

    The newest is the most recently written (GemiRec's later stage on a tie); a directory without one is a
    :class:`CheckpointError` naming what was looked for.
    """
    path = str(path)
    if not os.path.isdir(path):
        return path
    pattern = os.path.join(path, f"{glob.escape(model_name)}-*{LAST_SUFFIX}.pth")
    candidates = glob.glob(pattern)
    if not candidates:
        raise CheckpointError(
            f"--resume={path} is a directory without a checkpoint to resume: no file matches "
            f"{os.path.basename(pattern)} (written after every evaluated epoch of a {model_name} run)"
        )

    def newest(candidate):
        root = os.path.splitext(candidate)[0][: -len(LAST_SUFFIX)]
        stage = next((i for i, s in enumerate(STAGES) if root.endswith("-" + s)), -1)
        return os.path.getmtime(candidate), stage

    return max(candidates, key=newest)


def _check_state_dict(model, state_dict, path):
    """Refuse weights that do not fit ``model`` (names, shapes, dtypes) or hold NaN, before loading any."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"checkpoint {path} is damaged: its state_dict is not a mapping of names to tensors")
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"missing {', '.join(missing[:3])}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            detail.append(f"unexpected {', '.join(unexpected[:3])}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(
            f"checkpoint {path} does not fit this {type(model).__name__} model ({'; '.join(detail)}): it was "
            "written by another model or configuration, or it was tampered with"
        )
    for key, value in expected.items():
        saved = state_dict[key]
        if saved.shape != value.shape or saved.dtype != value.dtype:
            raise CheckpointError(
                f"checkpoint {path} does not fit this {type(model).__name__} model: {key} has shape "
                f"{tuple(saved.shape)} ({saved.dtype}) in the file and {tuple(value.shape)} ({value.dtype}) in the "
                "model built from the configuration (another configuration or dataset, or a tampered file)"
            )
        if saved.is_floating_point() and bool(torch.isnan(saved).any()):
            raise CheckpointError(f"checkpoint {path} is unusable: {key} holds NaN values")


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
    """Weights-only checkpoints, exact resuming and numerical guards for any RecBole trainer."""

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
        root, ext = os.path.splitext(strip_last(self.saved_model_file))
        return f"{root}{LAST_SUFFIX}{ext}"

    def _resume_state(self, stopped):
        return {
            "rng": capture_rng_state(self._train_loader),
            "best_valid_result": _plain_result(self.best_valid_result),
            "stopped_early": bool(stopped),
        }

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
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
        _check_state_dict(self.model, state.get("state_dict"), path)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))

    def resume_checkpoint(self, resume_file):
        """Continue from ``resume_file`` (a checkpoint, or a directory: its newest ``-last`` checkpoint)."""
        resume_file = resolve_resume_path(resume_file, self.config["model"])
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

    def _last_good_note(self, fix="after freeing space or fixing the permissions"):
        """The sentence of a stop message that names the last good checkpoint and how to go on from it."""
        if self._last_good_checkpoint:
            return (f"The last good checkpoint, {self._last_good_checkpoint}, is intact: resume with "
                    f"--resume={self._last_good_checkpoint} {fix}")
        return "No checkpoint was written by this run yet"

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

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if eval_data is not None and len(eval_data) == 0:
            raise DataError(
                f"dataset {self.config['dataset']!r}: the evaluation split is empty "
                f"(eval_args={self.config['eval_args']!r}, eval_protocol={self.config['eval_protocol']!r})"
            )
        if load_best_model and eval_data:
            checkpoint_file = model_file or self.saved_model_file
            self.load_model_state(load_checkpoint(checkpoint_file, map_location=self.device), checkpoint_file)
            self.logger.info(f"Loading model structure and parameters from {checkpoint_file}")
        result = super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
        for metric, value in (result or {}).items():
            if isinstance(value, (float, np.floating)) and math.isnan(float(value)):
                raise TrainingError(
                    f"evaluation produced a NaN metric {metric} (model {self.config['model']}, dataset "
                    f"{self.config['dataset']}{self.fault_context()}); every metric must be a number"
                )
        return result


def safe_trainer_class(trainer_class):
    """Return ``trainer_class`` with :class:`SafeCheckpointMixin` and
    :class:`~recbole_gemirec.trainer.evaluation_mixin.MultiInterestEvaluationMixin` in front (those it
    lacks; itself if it already has both)."""
    from recbole_gemirec.trainer.evaluation_mixin import MultiInterestEvaluationMixin

    missing = tuple(m for m in (SafeCheckpointMixin, MultiInterestEvaluationMixin) if not issubclass(trainer_class, m))
    if not missing:
        return trainer_class
    return type(trainer_class.__name__, missing + (trainer_class,), {"__module__": __name__})
