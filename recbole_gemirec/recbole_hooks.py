"""RecBole's own ``recbole.quick_start.load_data_and_model`` on the extension's checkpoints.

RecBole's function reads ``checkpoint["config"]`` as the pickled ``Config`` object RecBole itself saves;
the extension's checkpoints hold plain data instead (:mod:`recbole_gemirec.checkpoint`), so RecBole's
code dies with ``KeyError: 'seed'``. Once :mod:`recbole_gemirec` is imported, RecBole's function hands a
checkpoint written by the extension to :func:`recbole_gemirec.quick_start.load_data_and_model` and
returns its result (the same six values, with the extension's ``Config``, a subclass of RecBole's); every
other file goes to RecBole's own code unchanged.

The extension never imports ``recbole.quick_start`` itself (it imports ray at module level), so
:func:`install` wraps the function when that module is first imported, or at once if it already is.
Under numpy 2 ``recbole.quick_start`` only imports after :mod:`recbole_gemirec` has restored the numpy
names ray needs, so in practice the wrapper is always in place; in a process that never imports
:mod:`recbole_gemirec`, call :func:`recbole_gemirec.quick_start.load_data_and_model` directly.
"""

import functools
import importlib.abc
import os
import sys

_MODULE = "recbole.quick_start.quick_start"
_PACKAGE = "recbole.quick_start"
_MARK = "_recbole_gemirec_wrapped"


def is_extension_checkpoint(model_file):
    """Whether ``model_file`` (a path) is a checkpoint written by the extension; never raises."""
    if not isinstance(model_file, (str, os.PathLike)):
        return False
    import zipfile

    import torch

    from recbole_gemirec.checkpoint import FORMAT

    try:
        if not zipfile.is_zipfile(model_file):
            return False
        state = torch.load(model_file, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - anything unreadable is RecBole's to report
        return False
    return isinstance(state, dict) and state.get("format") == FORMAT


def _wrap(module):
    """Replace ``module.load_data_and_model`` (RecBole's) by the wrapper; idempotent."""
    original = getattr(module, "load_data_and_model", None)
    if original is None or getattr(original, _MARK, False):
        return

    @functools.wraps(original)
    def load_data_and_model(model_file, *args, **kwargs):
        if is_extension_checkpoint(model_file):
            from recbole_gemirec.quick_start import load_data_and_model as load_extension_checkpoint

            return load_extension_checkpoint(model_file, *args, **kwargs)
        return original(model_file, *args, **kwargs)

    setattr(load_data_and_model, _MARK, True)
    module.load_data_and_model = load_data_and_model
    package = sys.modules.get(_PACKAGE)
    if package is not None and getattr(package, "load_data_and_model", None) is original:
        package.load_data_and_model = load_data_and_model


class _WrappingLoader(importlib.abc.Loader):
    """Runs the real loader of ``recbole.quick_start.quick_start``, then wraps its function."""

    def __init__(self, loader, finder):
        self._loader = loader
        self._finder = finder

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        _wrap(module)
        self._finder.remove()

    def __getattr__(self, name):  # get_source, get_filename, ... of the real loader
        return getattr(self._loader, name)


class _QuickStartFinder(importlib.abc.MetaPathFinder):
    """Finds ``recbole.quick_start.quick_start`` through the other finders and wraps its loader."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _MODULE:
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
            spec.loader = _WrappingLoader(spec.loader, self)
        return spec

    def remove(self):
        if self in sys.meta_path:
            sys.meta_path.remove(self)


def install():
    """Make RecBole's ``load_data_and_model`` accept the extension's checkpoints (idempotent)."""
    module = sys.modules.get(_MODULE)
    if module is not None:
        _wrap(module)
        return
    if not any(isinstance(finder, _QuickStartFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _QuickStartFinder())
