"""recbole-gemirec: GemiRec and its multi-interest neighbours as a RecBole 1.2 extension.

Importing the package makes RecBole 1.2.1 usable on the current numpy/torch stack (see
:mod:`recbole_gemirec._compat`) before any RecBole code runs.
"""

from recbole_gemirec import _compat

_compat.apply()

__version__ = "0.1.0"
