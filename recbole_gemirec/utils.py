"""Lookup helpers that search the extension first and fall back to RecBole (the RecBole-GNN pattern).

``get_model`` / ``get_trainer`` / ``create_dataset`` / ``data_preparation`` mirror RecBole's functions of
the same names, so any RecBole built-in model (``SASRec``, ``Pop``, ...) runs through the extension
unchanged, while ``GemiRec`` and the multi-interest baselines are found in :mod:`recbole_gemirec.model`.
"""

import importlib
import importlib.util
import pkgutil

from recbole_gemirec import _compat
from recbole.data import create_dataset as recbole_create_dataset
from recbole.data import data_preparation as recbole_data_preparation
from recbole.utils import get_model as recbole_get_model
from recbole.utils import get_trainer as recbole_get_trainer

from recbole_gemirec.errors import ConfigError
from recbole_gemirec.trainer import extension_trainer_class

MODEL_PACKAGE = "recbole_gemirec.model"


def extension_model_names():
    """Names of the models the extension defines (one module per model, named ``<model>.lower()``, whose
    class of that name is a RecBole model)."""
    package = importlib.import_module(MODEL_PACKAGE)
    names = []
    for info in pkgutil.iter_modules(package.__path__):
        module = importlib.import_module(f"{MODEL_PACKAGE}.{info.name}")
        names += [
            name
            for name, obj in vars(module).items()
            if _is_model_class(obj) and name.lower() == info.name and obj.__module__ == module.__name__
        ]
    return sorted(names)


def extension_model(model_name):
    """The extension's model class called ``model_name``, or ``None`` (a RecBole model or an unknown name)."""
    if not isinstance(model_name, str) or not model_name.isidentifier():
        return None
    module_path = f"{MODEL_PACKAGE}.{model_name.lower()}"
    if importlib.util.find_spec(module_path) is None:
        return None
    model_class = getattr(importlib.import_module(module_path), model_name, None)
    return model_class if _is_model_class(model_class) else None


def _is_model_class(obj):
    """A RecBole model class (the model package also holds parts, such as ``codebook.Codebook``)."""
    from recbole.model.abstract_recommender import AbstractRecommender

    return isinstance(obj, type) and issubclass(obj, AbstractRecommender)


def get_model(model_name):
    """Return the model class called ``model_name``: the extension's, else RecBole's.

    Importing RecBole's model package switches torch's anomaly mode on (``sine.py``); it is switched off
    again here, after every lookup.
    """
    try:
        model_class = extension_model(model_name)
        if model_class is not None:
            return model_class
        try:
            return recbole_get_model(model_name)
        except (ValueError, AttributeError, ImportError):
            # RecBole searches its exlib package last, which imports optional libraries (lightgbm,
            # xgboost): an unknown name surfaces as their ImportError, which says nothing about the name.
            raise ConfigError(
                f"model={model_name!r} is neither a RecBole model nor one of this extension's "
                f"({', '.join(extension_model_names())}); model names are case-sensitive class names"
            ) from None
    finally:
        _compat.disable_anomaly_mode()


def get_trainer(model_type, model_name):
    """Return the trainer class: ``recbole_gemirec.trainer.<Model>Trainer``, else RecBole's choice.

    Either way the class is the extension's (:mod:`recbole_gemirec.trainer.extension_trainer`): it writes
    checkpoints that load under ``weights_only=True``, guards against non-finite values and collects AMR/CUR.
    """
    module = importlib.import_module("recbole_gemirec.trainer")
    trainer_class = getattr(module, model_name + "Trainer", None)
    if trainer_class is None:
        trainer_class = recbole_get_trainer(model_type, model_name)
    return extension_trainer_class(trainer_class)


def create_dataset(config):
    """Build the dataset: a protocol-specific class of the extension when the config asks for one
    (see :mod:`recbole_gemirec.data`), else RecBole's ``create_dataset``; then the bad-data checks of
    :mod:`recbole_gemirec.data.checks` (a clear ``DataError`` instead of an empty or NaN run)."""
    from recbole_gemirec.data import dataset_class_for
    from recbole_gemirec.data.checks import checked_dataset

    dataset_class = dataset_class_for(config)
    return checked_dataset(config, recbole_create_dataset if dataset_class is None else dataset_class)


def data_preparation(config, dataset):
    """Split into train/valid/test loaders: the extension's loaders where a protocol needs them,
    else RecBole's ``data_preparation``."""
    from recbole_gemirec.data import data_preparation_for

    prepare = data_preparation_for(config)
    if prepare is None:
        return recbole_data_preparation(config, dataset)
    return prepare(config, dataset)
