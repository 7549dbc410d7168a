"""Start-up hook: RecBole's own tools work in an environment that has recbole-gemirec installed.

The wheel installs ``recbole_gemirec_startup.pth`` into site-packages; Python runs its single line,
``import recbole_gemirec_startup; recbole_gemirec_startup.activate()``, when any interpreter of that
environment starts. :func:`activate` imports nothing heavy (no numpy, no torch; only ``os`` and ``sys``,
which the interpreter has loaded already) and puts one finder on ``sys.meta_path``. When ``recbole`` is
first imported, the finder lets RecBole's package run and then imports :mod:`recbole_gemirec`, whose
import applies the fixes that make RecBole 1.2.1 run on numpy 2 and torch >= 2.6 (they are all in
``recbole_gemirec/_compat.py`` and ``recbole_gemirec/recbole_hooks.py``, with their reasons; see
docs/design.md §7). So ``import recbole.quick_start`` and RecBole's own ``run_recbole`` behave the same
whether or not the user imports ``recbole_gemirec`` first. A process that never imports ``recbole``
pays one dictionary look-up per import and nothing else.

An error while importing the extension (pandas 3, which :mod:`recbole_gemirec._compat` refuses, for
instance) surfaces at ``import recbole``, with its own message.

Switch it off with ``RECBOLE_GEMIREC_STARTUP=0`` (also ``false``, ``no``, ``off``); RecBole then
runs untouched until something imports ``recbole_gemirec``. Any other value than those or ``1``,
``true``, ``yes``, ``on`` (or unset/empty) is refused with a ``ValueError`` naming the variable.

Why a start-up hook and not a newer ray (docs/design.md §7): RecBole 1.2.1 requires
``ray>=1.13.0,<=2.6.3``, and ray 2.6.3 reads ``np.bool8`` at import; a newer ray conflicts with that
requirement, and it would not mend RecBole's own ``Config``, which reads ``np.float_`` on every run.

:func:`after_import` is the one lazy-import mechanism of the project: :mod:`recbole_gemirec.recbole_hooks`
uses it too, to patch RecBole modules when (or, if already imported, as soon as) they are imported.
This module lives outside the ``recbole_gemirec`` package because importing anything inside the package
runs the package's ``__init__``, which imports numpy, torch and RecBole.
"""

import os
import sys

ENV_VAR = "RECBOLE_GEMIREC_STARTUP"
_ON = ("", "1", "true", "yes", "on")
_OFF = ("0", "false", "no", "off")
_PACKAGE = "recbole_gemirec"

_pending = {}  # module name -> callbacks to run once that module has been executed


def after_import(name, callback):
    """Call ``callback(module)`` once module ``name`` has been imported: now if it already is, else right
    after its code has run (before the importing statement returns). Registering the same callback for
    the same module again before it is imported changes nothing."""
    module = sys.modules.get(name)
    if module is not None:
        callback(module)
        return
    callbacks = _pending.setdefault(name, [])
    if callback not in callbacks:
        callbacks.append(callback)
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())


def _run_callbacks(name, module):
    for callback in _pending.pop(name, []):
        callback(module)
    if not _pending:
        _Finder.remove()


class _Loader:
    """Runs the real loader of a module, then the callbacks registered for it."""

    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        return self._loader.create_module(spec) if hasattr(self._loader, "create_module") else None

    def exec_module(self, module):
        # the module keeps its real loader (importlib.resources, inspect and pickle look at it)
        module.__loader__ = self._loader
        if getattr(module, "__spec__", None) is not None:
            module.__spec__.loader = self._loader
        self._loader.exec_module(module)
        _run_callbacks(module.__name__, module)

    def __getattr__(self, name):  # get_source, get_filename, ... of the real loader
        if name == "_loader":  # not set yet (a copy being built): no recursion
            raise AttributeError(name)
        return getattr(self._loader, name)


class _Finder:
    """Finds a module with a pending callback through the other finders and wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname not in _pending:
            return None
        for finder in list(sys.meta_path):
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None:
                break
        else:
            return None
        if spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader)
        return spec

    @staticmethod
    def remove():
        for finder in [f for f in sys.meta_path if isinstance(f, _Finder)]:
            sys.meta_path.remove(finder)


def enabled():
    """Whether ``RECBOLE_GEMIREC_STARTUP`` leaves the hook on; a value that is neither on nor off is an error."""
    value = os.environ.get(ENV_VAR, "").strip().lower()
    if value in _ON:
        return True
    if value in _OFF:
        return False
    raise ValueError(
        f"{ENV_VAR}={os.environ[ENV_VAR]!r}: set it to 0 (or false/no/off) to switch recbole-gemirec's "
        "start-up hook off, or to 1 (true/yes/on) or leave it unset to keep it on"
    )


def _import_extension(_recbole):
    if _PACKAGE not in sys.modules:  # already imported, or importing recbole itself right now
        __import__(_PACKAGE)


def activate():
    """Import :mod:`recbole_gemirec` when ``recbole`` is first imported (at once if it already is).

    Returns whether the hook is on (``RECBOLE_GEMIREC_STARTUP``); idempotent."""
    if not enabled():
        return False
    after_import("recbole", _import_extension)
    return True
