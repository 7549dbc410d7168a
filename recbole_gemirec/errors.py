"""Errors that describe a user's mistake (a bad setting, file or checkpoint), not a bug.

The command-line entry points print these as one clear line and exit with status 2, instead of a
traceback from deep inside RecBole, torch or pandas.
"""


class ConfigError(ValueError):
    """A configuration key has a value that is not allowed; the message names key, value and what is allowed."""


class DataError(ValueError):
    """An input data file is missing, malformed or leaves nothing to train on."""
