"""Make RecBole 1.2.1 run on today's numpy and torch (docs/design.md §7).

RecBole 1.2.1 was released for numpy 1.x and torch < 2.6. Three things break on the current stack and
are mended here, once, when :mod:`recbole_gemirec` is imported; where the wheel is installed, its
start-up hook (:mod:`recbole_gemirec_startup`) imports :mod:`recbole_gemirec` as soon as ``recbole`` is
imported, so RecBole's own tools get the same fixes. RecBole's checkpoints (pickled ``Config``) are
mended in :mod:`recbole_gemirec.recbole_hooks`.

* numpy 2 removed ``np.float_``, ``np.complex_``, ``np.unicode_`` and ``np.bool8``. RecBole's
  ``Config.compatibility_settings`` reads the first three on every ``Config()``; ray 2.6.3 reads
  ``np.bool8`` at import. We restore those four names as aliases of their numpy 2 spellings (we do not
  also pin numpy < 2: the aliases are the one chosen fix).
* ``recbole/model/sequential_recommender/sine.py`` calls ``torch.autograd.set_detect_anomaly(True)`` at
  import, which slows every later backward pass in the process (RecBole's own ``run_recbole`` of SASRec
  on ml-100k trained about twice as slowly with it on, docs/design.md §7).
  :func:`disable_anomaly_mode` turns it off again: right after that module has been imported, whoever
  imports it (RecBole's own ``get_model`` too; :func:`keep_anomaly_mode_off`), and
  :func:`recbole_gemirec.utils.get_model` after every model lookup.
* RecBole stores float fields as float32 tensors; an epoch timestamp (about 1e9 s) then has a resolution
  of 64 s, so events less than a minute apart tie and RecBole's later sort by (user, time) falls back to
  file order. :func:`keep_time_order` sorts the interactions by (user, time) while the times are still
  float64 (pandas), before the conversion; RecBole's stable sorts then keep that order for every model.
* pandas 3 silently breaks RecBole's feature loading; that is handled by the ``pandas<3`` requirement,
  and :func:`check_pandas` refuses to run on pandas 3 with a clear message instead of producing
  silently wrong data.
"""

import warnings

import numpy as np
import torch

_NUMPY_ALIASES = {
    "float_": "float64",
    "complex_": "complex128",
    "unicode_": "str_",
    "bool8": "bool_",
}


def restore_numpy_aliases():
    """Define the numpy 1.x names that RecBole 1.2.1 and ray 2.6.3 still use, where numpy 2 removed them."""
    for old, new in _NUMPY_ALIASES.items():
        if old not in np.__dict__:
            setattr(np, old, getattr(np, new))


def disable_anomaly_mode():
    """Switch off torch's autograd anomaly detection that importing RecBole's SINE turns on."""
    if torch.is_anomaly_enabled():
        torch.autograd.set_detect_anomaly(False)


def _anomaly_off(_module):
    disable_anomaly_mode()


def keep_anomaly_mode_off():
    """Switch anomaly mode off right after RecBole's SINE module has switched it on at import (at once if
    that module is already imported)."""
    from recbole_gemirec_startup import after_import

    after_import("recbole.model.sequential_recommender.sine", _anomaly_off)


def check_pandas():
    """Raise a clear error on pandas >= 3, which RecBole 1.2.1 mis-reads without failing (docs/design.md §7)."""
    import pandas as pd

    major = int(pd.__version__.split(".")[0])
    if major >= 3:
        raise ImportError(
            f"pandas {pd.__version__} is installed, but RecBole 1.2.1 loads sequence fields wrongly and "
            "leaves missing values unfilled under pandas 3; install 'pandas<3' (see constraints.txt)."
        )


def quiet_recbole_future_warnings():
    """Hide the FutureWarnings RecBole 1.2.1 triggers on every run (pandas chained ``fillna(inplace=True)``,
    ``torch.cuda.amp.GradScaler``): they concern RecBole's code, not the user's, and drown the log.
    The pandas ones are harmless under the ``pandas<3`` pin."""
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole(\.|$)")


def keep_time_order():
    """Make ``Dataset._change_feat_format`` sort ``inter_feat`` by (user, time) in float64 first (see above)."""
    from recbole.data.dataset import Dataset

    original = Dataset._change_feat_format
    if getattr(original, "_keeps_time_order", False):
        return

    def change_feat_format(self):
        frame = getattr(self, "inter_feat", None)
        uid, time = getattr(self, "uid_field", None), getattr(self, "time_field", None)
        split_files = self.config["benchmark_filename"]  # RecBole splits those by row position: keep it
        if not split_files and frame is not None and hasattr(frame, "sort_values") and uid in frame and time in frame:
            self.inter_feat = frame.sort_values(by=[uid, time], kind="stable").reset_index(drop=True)
        original(self)

    change_feat_format._keeps_time_order = True
    Dataset._change_feat_format = change_feat_format


def quiet_faiss_loader():
    """faiss-cpu logs at INFO which CPU build it loads (and that the AVX512 one is missing) on import;
    that says nothing about the run, so its loader logs warnings only."""
    import logging

    logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def apply():
    """Apply every fix; idempotent."""
    quiet_faiss_loader()
    restore_numpy_aliases()
    keep_time_order()
    quiet_recbole_future_warnings()
    check_pandas()
    keep_anomaly_mode_off()
