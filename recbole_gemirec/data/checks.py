"""Bad input data: each case is handled in one documented way or stopped with one clear error.

:func:`checked_dataset` builds the dataset (RecBole's or a protocol's class) and then runs
:func:`check_dataset`. The cases, also listed in ``docs/reliability.md``:

* **missing files / unknown dataset** - RecBole's ``ValueError`` becomes a :class:`DataError` naming the
  path it looked for.
* **empty or all-filtered dataset** - RecBole's "Some feat is empty" becomes a :class:`DataError`
  naming the dataset, the file that is empty (header only) if any, and every filter setting.
* **users with a single interaction** - RecBole's sequential datasets make one sample per interaction
  after the first, so such users give no training, validation or test sample. They are kept (ids stay
  stable) and reported by one warning with their count; if *no* user has two interactions, a
  :class:`DataError`.
* **items without a category** (an empty category cell, an empty ``token_seq``) - RecBole maps them to
  token 0 (``[PAD]``). GemiRec reads that as category -1: the first-level initialisation ignores them,
  and under ``interest_source: category`` they share one "unknown" interest; CUR never counts them as
  unseen-category targets. One warning counts them; when *every* item lacks a category and the run
  needs categories (``interest_source: category`` or the CUR metric), a :class:`DataError`.
  Items present in ``.inter`` but absent from ``.item`` are dropped with their interactions by RecBole's
  ``filter_inter_by_user_or_item`` (default ``True``); set it to ``False`` to keep them (then they have
  no category either).
* **missing categorical feature values** (user features, categories) - token 0 (``[PAD]``), which the
  feature embeddings treat as an ordinary "unknown" value. Missing **float** values are filled by RecBole
  with the column mean; a float column with no value at all stays NaN and is a :class:`DataError`.
* **rows without a user or item id** - dropped by RecBole before any of this.
* ``interest_source: category`` with fewer interests (categories + "unknown") than ``interest_num`` -
  a :class:`ConfigError`, the one relation that needs the data to check.

The trainers add the last guard (:mod:`recbole_gemirec.trainer.extension_trainer`): an empty training or
evaluation split is a :class:`DataError` and a NaN metric a :class:`TrainingError`, so a run never
reports NaN or empty metrics.
"""

import os
from logging import getLogger

import numpy as np
import torch
from recbole.utils import FeatureType, ModelType, set_color

from recbole_gemirec.data.atomic_files import check_atomic_files
from recbole_gemirec.data.categories import first_category_tokens
from recbole_gemirec.errors import ConfigError, DataError

FILTER_KEYS = (
    "load_col", "unload_col", "user_inter_num_interval", "item_inter_num_interval", "val_interval",
    "rm_dup_inter", "filter_inter_by_user_or_item", "benchmark_filename",
)


def filter_settings(config):
    """The settings that decide which rows survive loading, as ``key=value`` text for messages."""
    parts = []
    for key in FILTER_KEYS:
        try:
            value = config[key]
        except KeyError:
            continue
        if value is not None:
            parts.append(f"{key}={value!r}")
    return ", ".join(parts) or "none"


def _header_only_files(config):
    """Atomic files of the dataset that hold a header but no row (cheap: reads two lines per file)."""
    empty = []
    for suffix in ("inter", "user", "item"):
        path = os.path.join(str(config["data_path"]), f"{config['dataset']}.{suffix}")
        if not os.path.isfile(path):
            continue
        with open(path, "r", encoding="utf-8", errors="replace") as f:
            f.readline()
            if not f.readline().strip():
                empty.append(path)
    return empty


def checked_dataset(config, build):
    """``build(config)`` (a dataset class or RecBole's ``create_dataset``), then :func:`check_dataset`.

    The files' format is checked first (:func:`~recbole_gemirec.data.atomic_files.check_atomic_files`).
    RecBole's own refusals of missing and emptied data become :class:`DataError` with the paths and
    settings involved instead of a traceback from inside its dataset code.
    """
    name = config["dataset"]
    if not os.path.isdir(str(config["data_path"])):
        # RecBole downloads a dataset it knows (ml-1m, ...) whose folder is missing: a traceback offline, and
        # never what the user named; nothing is downloaded here
        raise DataError(
            f"dataset {name!r} cannot be read: the folder {config['data_path']!r} does not exist (RecBole reads "
            "<data_path>/<dataset>/<dataset>.inter; nothing is downloaded: put the atomic files there, or set "
            "data_path to their folder's parent)")
    check_atomic_files(config)
    try:
        dataset = build(config)
    except ValueError as err:
        message = str(err)
        if isinstance(err, (ConfigError, DataError)):
            raise
        if "Some feat is empty" in message:
            empty = _header_only_files(config)
            where = f"{', '.join(empty)} has no rows" if empty else "no interaction is left after filtering"
            raise DataError(
                f"dataset {name!r} is empty: {where}. Filter settings: {filter_settings(config)}; loosen "
                "them or check the files under data_path"
            ) from None
        if "not exist" in message or "Neither" in message:
            raise DataError(
                f"dataset {name!r} cannot be read: {message} (RecBole reads <data_path>/<dataset>/<dataset>.inter; "
                f"data_path={config['data_path']!r})"
            ) from None
        raise
    check_dataset(config, dataset)
    return dataset


def check_dataset(config, dataset, logger=None):
    """Refuse data that would train on nothing or produce NaN; warn once per tolerated defect."""
    logger = logger or getLogger()
    name = config["dataset"]
    if dataset.inter_num == 0:
        raise DataError(f"dataset {name!r} has no interactions left. Filter settings: {filter_settings(config)}")
    _check_float_columns(dataset, name)
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL:
        _check_sequence_lengths(config, dataset, logger)
    _check_categories(config, dataset, logger)


def _column(feat, field):
    """One column as a numpy array, whether the feature table is still a DataFrame or already an Interaction."""
    values = feat[field]
    return values.numpy() if isinstance(values, torch.Tensor) else np.asarray(values)


def _check_float_columns(dataset, name):
    for feat_name, feat in (("inter", dataset.inter_feat), ("user", dataset.user_feat), ("item", dataset.item_feat)):
        if feat is None:
            continue
        for field in feat.columns:
            if dataset.field2type.get(field) != FeatureType.FLOAT:
                continue
            values = _column(feat, field).astype(float)
            if values.size and np.isnan(values).any():
                raise DataError(
                    f"dataset {name!r}: float field {field!r} of the {feat_name} file has missing values that "
                    "RecBole could not fill (a column without any value); give it values or leave it out of load_col"
                )


def _inter_counts(dataset):
    users = _column(dataset.inter_feat, dataset.uid_field)
    return np.bincount(users.astype(np.int64), minlength=dataset.user_num)[1:]


def _check_sequence_lengths(config, dataset, logger):
    counts = _inter_counts(dataset)
    active = counts[counts > 0]
    single = int((active == 1).sum())
    if active.size and single == active.size:
        raise DataError(
            f"dataset {config['dataset']!r}: every one of its {active.size} users has a single interaction, so a "
            "sequential model has nothing to learn or predict (a sample needs a history item and a target). "
            f"Filter settings: {filter_settings(config)}"
        )
    if single:
        logger.warning(set_color(
            f"dataset {config['dataset']!r}: {single} of {active.size} users have a single interaction; they give "
            "no training or evaluation sample and are otherwise ignored", "yellow"))


def category_ids(dataset, field):
    """Per-item category token (first value of a token_seq), 0 = none, for items 1..n-1; ``None`` if not loaded."""
    tokens = first_category_tokens(dataset, field)
    return None if tokens is None else tokens[1:]


def _check_categories(config, dataset, logger):
    from recbole_gemirec.evaluator.multi_interest_eval import requested_multi_interest_metrics

    from recbole_gemirec.utils import extension_model

    model_class = extension_model(config["model"])
    needs = dict(model_class.category_fields(config)) if model_class is not None else {}
    if config["category_field"]:
        cur = "cur" in requested_multi_interest_metrics(config)
        field = config["category_field"]
        needs[field] = needs.get(field, False) or cur
    for field, required in needs.items():
        categories = category_ids(dataset, field)
        if categories is None or categories.numel() == 0:
            continue
        missing = int((categories == 0).sum())
        if missing == categories.numel() and required:
            raise DataError(
                f"dataset {config['dataset']!r}: no item has a value in the category field {field!r}, which "
                "interest_source: category or the CUR metric needs"
            )
        if missing:
            logger.warning(set_color(
                f"dataset {config['dataset']!r}: {missing} of {categories.numel()} items have no {field!r} value; "
                "they count as 'no category' (GemiRec: ignored by the first-level initialisation, one shared "
                "'unknown' interest under interest_source: category; CUR: never an unseen-category target)",
                "yellow"))
    if model_class is not None:
        model_class.check_dataset(config, dataset)
