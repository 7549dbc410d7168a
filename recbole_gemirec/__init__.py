"""recbole-gemirec: GemiRec and its multi-interest neighbours as a RecBole 1.2 extension.

Importing the package makes RecBole 1.2.1 usable on the current numpy/torch stack (see
:mod:`recbole_gemirec._compat`) before any RecBole code runs, and lets RecBole's own
``recbole.quick_start.load_data_and_model`` load the extension's checkpoints and RecBole's own
``Trainer`` write checkpoints in that format (:mod:`recbole_gemirec.recbole_hooks`). The installed wheel
imports this package whenever ``recbole`` is imported (:mod:`recbole_gemirec_startup`).
"""

from recbole_gemirec import _compat, recbole_hooks

_compat.apply()
recbole_hooks.install()  # RecBole's own load_data_and_model and Trainer use our checkpoint format

__version__ = "0.1.0"
