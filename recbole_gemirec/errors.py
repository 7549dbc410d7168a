"""Errors that describe a user's mistake (a bad setting, file or checkpoint) or a failed run, not a bug.

The command-line entry points print these as one clear ``error: ...`` line instead of a traceback from
deep inside RecBole, torch or pandas: :class:`ConfigError` and :class:`DataError` (and
:class:`recbole_gemirec.checkpoint.CheckpointError`) exit with status 2, :class:`TrainingError` with 1.
"""


class ConfigError(ValueError):
    """A configuration key has a value that is not allowed; the message names key, value and what is allowed."""


class DataError(ValueError):
    """An input data file is missing, malformed or leaves nothing to train on."""


class TrainingError(RuntimeError):
    """Training cannot go on: a loss term or a metric became non-finite, or the model scored NaN.

    The message names the loss term (or metric), the stage and epoch, and the last good checkpoint, which
    stays loadable (checkpoints are written atomically) and can be resumed with ``--resume``. The
    command line prints it as one ``error: ...`` line and exits with status 1: the inputs were valid but
    the run failed, unlike a :class:`ConfigError` or :class:`DataError` (status 2).
    """


class MultiInterestCollectionMissing(RuntimeError):
    """AMR or CUR was evaluated by a trainer that does not collect what they need (RecBole's own
    ``Trainer``); the message names :func:`recbole_gemirec.utils.get_trainer`. Raised instead of
    reporting a value that was never computed."""
