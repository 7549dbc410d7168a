"""Where a run writes: checked before training, claimed per run, cleaned of what dead runs left (docs/reliability.md).

A run that can only find out at the end that ``--result_file`` is unwritable loses the whole run, and RecBole
finds a read-only ``checkpoint_dir`` at the first checkpoint, as a traceback. So:

* :func:`check_output_locations` tries every output location before any data is read: the checkpoint
  directory (when checkpoints are saved) and the directory of the result file get a probe file created and
  removed; an existing result file must be writable; a result path that is a directory is refused.
  A failure is a :class:`OutputError` (exit status 2) naming the key, the path and the system's reason.
* :func:`claim_run_file` makes a run's checkpoint names its own. RecBole names a run ``<Model>-<time>.pth``
  to the second, so two runs started in the same second in one directory would overwrite each other's
  checkpoints. The run claims its base name by creating ``.<name>.claim`` exclusively (``O_EXCL``, atomic
  on local and NFSv3+ file systems); if that name is taken, or any checkpoint of that name already exists,
  it takes ``<Model>-<time>-2.pth``, ``-3``, ... Every file the run writes (``-last``, GemiRec's stage files)
  derives from the claimed name, so a run never overwrites a file it did not create.
* :func:`temporary_prefix` and :func:`remove_stale_temporaries`: checkpoints are written to a temporary
  file and renamed into place (:func:`recbole_gemirec.checkpoint.save_checkpoint`), so a kill mid-write
  leaves the previous checkpoint intact but the temporary behind. Its name carries the writer's process id
  and host; the next run removes those of processes on this host that are no longer alive, and any older
  than :data:`STALE_TEMPORARY_S` (other hosts, where liveness cannot be checked).
"""

import glob
import os
import re
import socket
import tempfile
import time

from recbole_gemirec.errors import ConfigError

TEMPORARY_PREFIX = ".ckpt-"
STALE_TEMPORARY_S = 24 * 3600
_TEMPORARY = re.compile(r"^\.ckpt-(\d+)@(.*)-[^-]*\.tmp$")


class OutputError(ConfigError):
    """An output location (checkpoint directory, result file) cannot be written."""


def _host():
    return re.sub(r"[^A-Za-z0-9_.]", "_", socket.gethostname()) or "host"


def check_writable_directory(path, key):
    """Create ``path`` if needed and prove a file can be created in it; :class:`OutputError` otherwise."""
    try:
        os.makedirs(path, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise OutputError(f"{key}={str(path)!r} cannot be written: {err.strerror or err}; allowed: a directory "
                          "this user can create files in (checked before training, so no result is lost)") from None


def check_result_file(path, key="--result_file"):
    """An output file (``--result_file``, ``key`` in the messages): not a directory, its directory writable, the
    file itself writable if it exists."""
    path = str(path)
    if os.path.isdir(path):
        raise OutputError(f"{key}={path!r} is a directory; allowed: a file path")
    check_writable_directory(os.path.dirname(os.path.abspath(path)), f"{key} (its directory)")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"{key}={path!r} exists and is not writable; allowed: a writable or new file")


# Where RecBole itself writes, relative to the current directory, whatever the configuration says: its logger
# (recbole.utils.logger.init_logger, ./log/<model>/) and its trainer's TensorBoard writer (./log_tensorboard/).
RECBOLE_LOG_ROOT = "log"
RECBOLE_TENSORBOARD_ROOT = "log_tensorboard"


def check_output_locations(checkpoint_dir=None, result_file=None, model=None):
    """Every location the run will write to, before any data is read (see the module doc); with ``model``
    also RecBole's own log and TensorBoard directories in the current directory (a file named ``log`` there
    used to end the run in a traceback from RecBole's logger)."""
    if checkpoint_dir is not None:
        check_writable_directory(checkpoint_dir, "checkpoint_dir")
        remove_stale_temporaries(checkpoint_dir)
    if result_file:
        check_result_file(result_file)
    if model is not None:  # last: these are created where they pass, and nothing is created before a refusal above
        check_writable_directory(os.path.join(RECBOLE_LOG_ROOT, str(model)), "the log directory")
        check_writable_directory(RECBOLE_TENSORBOARD_ROOT, "the TensorBoard directory")


def claim_run_file(path):
    """The first of ``path``, ``<root>-2<ext>``, ``<root>-3<ext>``, ... that no other run has claimed and
    no existing checkpoint uses; claimed by creating its ``.claim`` file exclusively."""
    directory, name = os.path.split(str(path))  # relative stays relative, as RecBole wrote it
    root, ext = os.path.splitext(name)
    number = 1
    while True:
        candidate_root = root if number == 1 else f"{root}-{number}"
        number += 1
        if glob.glob(os.path.join(glob.escape(directory or "."), glob.escape(candidate_root) + "*" + ext)):
            continue  # a checkpoint of that name (or derived from it) exists already
        claim = os.path.join(directory, f".{candidate_root}{ext}.claim")
        try:
            fd = os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"{os.getpid()}@{_host()}\n")
        return os.path.join(directory, candidate_root + ext)


def temporary_prefix():
    """Prefix of this process's temporary checkpoint files: ``.ckpt-<pid>@<host>-``."""
    return f"{TEMPORARY_PREFIX}{os.getpid()}@{_host()}-"


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory, now=None):
    """Remove temporary checkpoint files that no live process will finish; return their paths."""
    now = time.time() if now is None else now
    removed = []
    for path in glob.glob(os.path.join(glob.escape(str(directory)), TEMPORARY_PREFIX + "*.tmp")):
        match = _TEMPORARY.match(os.path.basename(path))
        try:
            old = now - os.path.getmtime(path) > STALE_TEMPORARY_S
            dead = bool(match) and match.group(2) == _host() and not _alive(int(match.group(1)))
            if old or dead:
                os.remove(path)
                removed.append(path)
        except OSError:
            continue  # gone meanwhile, or not ours to remove
    return removed
