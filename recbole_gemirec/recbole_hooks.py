"""RecBole's own tools on the extension's checkpoints: ``load_data_and_model`` and ``Trainer``.

* RecBole's ``recbole.quick_start.load_data_and_model`` reads ``checkpoint["config"]`` as the pickled
  ``Config`` object RecBole itself saves; the extension's checkpoints hold plain data instead
  (:mod:`recbole_gemirec.checkpoint`), so RecBole's code dies with ``KeyError: 'seed'``. Once
  :mod:`recbole_gemirec` is imported, RecBole's function hands a checkpoint in the extension's format
  to :func:`recbole_gemirec.quick_start.load_data_and_model` and returns its result (the same six
  values, with the extension's ``Config``, a subclass of RecBole's); every other file goes to RecBole's
  own code unchanged.
* RecBole's ``recbole.trainer.trainer.Trainer._save_checkpoint`` pickles the whole ``Config``, so under
  torch >= 2.6 (``weights_only=True`` by default) RecBole's own ``evaluate(load_best_model=True)``,
  ``resume_checkpoint`` and ``load_data_and_model`` cannot read what RecBole's own ``run_recbole`` wrote.
  The method is replaced by one with the same arguments that writes the extension's plain-data format
  (:func:`recbole_gemirec.checkpoint.save_checkpoint`, atomic), which those three read as they are:
  RecBole's ``torch.load`` calls get tensors and plain data, ``checkpoint["config"]["model"]`` is the
  model name, and ``load_data_and_model`` goes through the wrapper above. Every RecBole trainer that
  inherits ``_save_checkpoint`` is covered (``KGTrainer``, ``NCLTrainer``, ...); those that write their
  own files are not: ``PretrainTrainer.save_pretrained_model`` (S3Rec, RaCT pre-training) and the
  decision-tree trainers (XGBoost, LightGBM). The extension's own trainers override the method anyway
  (:mod:`recbole_gemirec.trainer.checkpointing`).
* RecBole's trainers wrap the model in ``DistributedDataParallel(model, device_ids=[local_rank])``, which
  torch refuses for a CPU model; the trainer module's ``DistributedDataParallel`` is replaced by one that
  leaves ``device_ids`` out for a CPU model (distributed runs on CPUs, :mod:`recbole_gemirec.distributed`).

Neither module is imported by the extension itself (``recbole.quick_start`` imports ray at module
level), so :func:`install` patches each when it is first imported, or at once if it already is, through
:func:`recbole_gemirec_startup.after_import`. In an environment where the wheel is installed, its
start-up hook imports :mod:`recbole_gemirec` whenever ``recbole`` is imported, so these patches (and the
numpy aliases ray and RecBole's ``Config`` need, :mod:`recbole_gemirec._compat`) are in place for
RecBole's own ``run_recbole`` without the user importing the extension (docs/design.md §7).
"""

import functools
import os
import sys

_MODULE = "recbole.quick_start.quick_start"
_PACKAGE = "recbole.quick_start"
_TRAINER_MODULE = "recbole.trainer.trainer"
_MARK = "_recbole_gemirec_wrapped"


def is_extension_checkpoint(model_file):
    """Whether ``model_file`` (a path) is a checkpoint written by the extension; never raises."""
    if not isinstance(model_file, (str, os.PathLike)):
        return False
    import zipfile

    import torch

    from recbole_gemirec.checkpoint import FORMAT

    try:
        if not zipfile.is_zipfile(model_file):
            return False
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - anything unreadable is RecBole's to report
        return False
    return isinstance(state, dict) and state.get("format") == FORMAT


def _wrap(module):
    """Replace ``module.load_data_and_model`` (RecBole's) by the wrapper; idempotent."""
    original = getattr(module, "load_data_and_model", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def load_data_and_model(model_file, *args, **kwargs):
        if is_extension_checkpoint(model_file):
            from recbole_gemirec.quick_start import load_data_and_model as load_extension_checkpoint

            return load_extension_checkpoint(model_file, *args, **kwargs)
        return original(model_file, *args, **kwargs)

    setattr(load_data_and_model, _MARK, True)
    module.load_data_and_model = load_data_and_model
    package = sys.modules.get(_PACKAGE)
    if package is not None and getattr(package, "load_data_and_model", None) is original:
        package.load_data_and_model = load_data_and_model


def _save_checkpoint(self, epoch, verbose=True, **kwargs):
    """RecBole's ``Trainer._save_checkpoint`` with the same arguments, writing the extension's plain-data
    checkpoint (:func:`recbole_gemirec.checkpoint.save_checkpoint`) instead of one with the pickled
    ``Config``."""
    if not self.config["single_spec"] and self.config["local_rank"] != 0:
        return
    from recbole.utils import set_color

    from recbole_gemirec.checkpoint import save_checkpoint

    saved_model_file = kwargs.pop("saved_model_file", self.saved_model_file)
    save_checkpoint(saved_model_file, self.config, self.model, epoch=epoch, cur_step=self.cur_step,
                    best_valid_score=self.best_valid_score, optimizer=getattr(self, "optimizer", None))
    if verbose:
        self.logger.info(set_color("Saving current", "blue") + f": {saved_model_file}")


setattr(_save_checkpoint, _MARK, True)


def _cpu_aware_ddp(module, device_ids=None, **kwargs):
    """torch's ``DistributedDataParallel`` as RecBole's trainers call it, without ``device_ids`` for a CPU
    model (the one argument combination torch refuses); GPU models are wrapped exactly as before."""
    from torch.nn.parallel import DistributedDataParallel

    on_cpu = all(p.device.type == "cpu" for p in module.parameters())
    return DistributedDataParallel(module, device_ids=None if on_cpu else device_ids, **kwargs)


setattr(_cpu_aware_ddp, _MARK, True)


def _wrap_trainer(module):
    """Make ``module.Trainer`` (RecBole's) save plain-data checkpoints, and the module's
    ``DistributedDataParallel`` accept CPU models (distributed runs on CPUs); idempotent."""
    ddp = getattr(module, "DistributedDataParallel", None)
    if ddp is not None and not getattr(ddp, _MARK, False):
        module.DistributedDataParallel = _cpu_aware_ddp
    trainer = getattr(module, "Trainer", None)
    if trainer is None or getattr(trainer.__dict__.get("_save_checkpoint"), _MARK, False):
        return
    trainer._save_checkpoint = _save_checkpoint


def install():
    """Make RecBole's ``load_data_and_model`` accept the extension's checkpoints and RecBole's ``Trainer``
    write them; each when its module is imported, or at once if it already is. Idempotent."""
    from recbole_gemirec_startup import after_import

    after_import(_MODULE, _wrap)
    after_import(_TRAINER_MODULE, _wrap_trainer)
