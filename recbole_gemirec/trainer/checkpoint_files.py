"""Where a run's checkpoints are and which one ``--resume`` continues from (docs/reliability.md).

A run writes ``<run>.pth`` (the best epoch) and, after every evaluated epoch, ``<run>-last.pth`` (the
latest epoch with everything a resume needs). A trainer with stages (GemiRec) writes one pair per stage,
``<run>-<stage>.pth`` and ``<run>-<stage>-last.pth``.
"""

import glob
import os

from recbole_gemirec.checkpoint import CheckpointError

LAST_SUFFIX = "-last"


def strip_last(path):
    """``<run>-last.pth`` -> ``<run>.pth`` (any other path unchanged)."""
    root, ext = os.path.splitext(str(path))
    return (root[: -len(LAST_SUFFIX)] if root.endswith(LAST_SUFFIX) else root) + ext


def last_file_of(path):
    """``<run>.pth`` (or ``<run>-last.pth``) -> ``<run>-last.pth``."""
    root, ext = os.path.splitext(strip_last(path))
    return f"{root}{LAST_SUFFIX}{ext}"


def resolve_resume_path(path, model_name, stages=()):
    """A checkpoint file as given, or for a directory its newest ``<model>-*-last.pth``.

    The newest is the most recently written; on a tie the later of ``stages`` (the trainer's stage names,
    in order) wins. A directory without one is a :class:`CheckpointError` naming what was looked for.
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
        stage = next((i for i, s in enumerate(stages) if root.endswith("-" + s)), -1)
        return os.path.getmtime(candidate), stage

    return max(candidates, key=newest)
