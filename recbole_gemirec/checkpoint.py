"""Checkpoints that load under ``torch.load(weights_only=True)`` and never execute code.

RecBole 1.2.1 pickles its whole ``Config`` object into every checkpoint (pickle protocol 4), so on
torch >= 2.6 its own ``evaluate(load_best_model=True)``, ``resume_checkpoint`` and
``load_data_and_model`` fail, and the only way RecBole users get around it, ``weights_only=False``,
runs whatever code the file carries. Our checkpoints hold only tensors and plain data: the configuration
as plain dictionaries (the user's own settings, from which :func:`recbole_gemirec.quick_start.load_data_and_model`
rebuilds the ``Config``, plus a printable copy of the final one), numbers as Python floats, the model's
``state_dict`` and the optimiser's. Every load here passes ``weights_only=True`` explicitly, so an
environment variable cannot turn the unsafe loader back on; anything else is refused with
:class:`CheckpointError`.
"""

import enum
import os
import pickle
import tempfile
import zipfile

import numpy as np
import torch

from recbole_gemirec.output_paths import temporary_prefix

FORMAT = "recbole_gemirec.checkpoint/1"

# Keys that describe one particular distributed launch; a checkpoint must load in any process layout.
LAUNCH_KEYS = ("local_rank", "world_size", "nproc", "offset", "ip", "port", "single_spec", "device")


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable, not ours, or carries pickled code."""


def to_plain(value):
    """Convert a configuration value to data that ``weights_only`` loading accepts (and JSON can hold).

    Enums become their names, numpy scalars Python numbers, devices and other objects their string form.
    """
    if isinstance(value, np.generic):  # before the Python types: np.float64 is a float subclass
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, enum.Enum):
        return value.name
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_plain(v) for v in value]
    return str(value)


def plain_config(config):
    """The parts of a RecBole ``Config`` that a checkpoint keeps, as plain data.

    ``external`` is what the user set (files, dict, command line, already merged by RecBole) without
    launch-specific keys: it is enough to rebuild the same ``Config``. ``final`` is the full resolved
    configuration, kept for reading and reporting only.
    """
    external = {k: v for k, v in config.external_config_dict.items() if k not in LAUNCH_KEYS}
    return {
        "model": config["model"],
        "dataset": config["dataset"],
        "external": to_plain(external),
        "final": to_plain(config.final_config_dict),
    }


def _plain_other_parameter(other):
    """RecBole's ``model.other_parameter()`` if it holds only tensors and plain data, else an error."""
    if other is None:
        return None
    if isinstance(other, torch.Tensor) or other is None or isinstance(other, (bool, int, float, str)):
        return other
    if isinstance(other, dict):
        return {str(k): _plain_other_parameter(v) for k, v in other.items()}
    if isinstance(other, (list, tuple)):
        return [_plain_other_parameter(v) for v in other]
    raise CheckpointError(
        f"model.other_parameter() holds a {type(other).__name__}; checkpoints keep only tensors and plain data"
    )


def save_checkpoint(path, config, model, *, epoch, cur_step=0, best_valid_score=None, optimizer=None, extra=None):
    """Write a checkpoint atomically: a run killed while saving leaves the previous file intact (and a
    temporary named after its process, removed by the next run: :mod:`recbole_gemirec.output_paths`)."""
    state = {
        "format": FORMAT,
        "config": plain_config(config),
        "epoch": int(epoch),
        "cur_step": int(cur_step),
        "best_valid_score": None if best_valid_score is None else float(best_valid_score),
        "state_dict": model.state_dict(),
        "other_parameter": _plain_other_parameter(model.other_parameter()),
        "optimizer": None if optimizer is None else optimizer.state_dict(),
        "extra": to_plain(extra or {}),
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=temporary_prefix(), suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _unpickling_reason(err):
    """The informative line of torch's weights-only refusal (which global or opcode it met)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    for line in lines:
        if "Unsupported" in line:
            return line
    return lines[-1] if lines else type(err).__name__


def check_checkpoint_file(path):
    """Refuse a checkpoint path that is no file, or a file torch.save did not write (cheap: no loading)."""
    path = str(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    if not zipfile.is_zipfile(path):
        raise CheckpointError(f"cannot read checkpoint {path}: it is not a file written by torch.save")
    return path


def load_checkpoint(path, map_location="cpu"):
    """Load a checkpoint written by :func:`save_checkpoint`, refusing anything that is not plain data."""
    path = check_checkpoint_file(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        reason = _unpickling_reason(err)
        raise CheckpointError(
            f"refused to load {path}: it contains pickled Python objects that could run code when loaded "
            f"({reason}). Only checkpoints written by recbole_gemirec (tensors and plain data) are accepted; "
            "checkpoints RecBole writes without recbole_gemirec pickle their Config and cannot be loaded safely."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"{path} is not a recbole_gemirec checkpoint (format {found!r}, expected {FORMAT!r})")
    check_layout(state, path)
    return state


def check_layout(state, path):
    """The parts of a checkpoint every reader uses have the types :func:`save_checkpoint` writes: an edited
    file fails here with :class:`CheckpointError`, not with a ``KeyError`` or ``TypeError`` later."""
    def damaged(what, allowed):
        raise CheckpointError(f"checkpoint {path} is damaged: {what}; allowed: {allowed} (as recbole_gemirec "
                              "writes it); use an intact checkpoint or retrain")

    config = state.get("config")
    if not isinstance(config, dict):
        damaged(f"'config' is {type(config).__name__}", "a mapping with model, dataset, external and final")
    for key in ("model", "dataset"):
        if not isinstance(config.get(key), str) or not config[key]:
            damaged(f"config[{key!r}] is {config.get(key)!r}", "a non-empty name")
    for key in ("external", "final"):
        if not isinstance(config.get(key), dict) or not all(isinstance(k, str) for k in config[key]):
            damaged(f"config[{key!r}] is {type(config.get(key)).__name__}", "a mapping of setting names to values")
    weights = state.get("state_dict")
    if not isinstance(weights, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                                for k, v in weights.items()):
        damaged(f"'state_dict' is {type(weights).__name__}", "a mapping of parameter names to tensors")
    if not isinstance(state.get("extra", {}), dict):
        damaged(f"'extra' is {type(state['extra']).__name__}", "a mapping")


def check_state_dict(model, state_dict, path):
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
