"""recbole-gemirec: GemiRec and its multi-interest neighbours as a RecBole 1.2 extension.

Importing the package makes RecBole 1.2.1 usable on the current numpy/torch stack (see
:mod:`recbole_gemirec._compat`) before any RecBole code runs, and lets RecBole's own
``recbole.quick_start.load_data_and_model`` load the extension's checkpoints
(:mod:`recbole_gemirec.recbole_hooks`).
"""

from recbole_gemirec import _compat, recbole_hooks

_compat.apply()
recbole_hooks.install()  # RecBole's own load_data_and_model accepts our checkpoints

__version__ = "0.1.0"
