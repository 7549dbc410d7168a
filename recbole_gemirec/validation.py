"""Configuration validation: a bad setting costs one clear message, before any data is loaded.

RecBole accepts almost any value and fails much later (or never): ``gpt_heads=3`` surfaces as a tensor
``view`` error in the first batch, ``interest_nums=3`` (a typo) is silently ignored and the run trains
with the default, a misspelt category field turns into a warning half-way through data loading. This
module checks every configuration key of the extension's models (GemiRec and the ComiRec-SA, ComiRec-DR,
MIND and REMI baselines) and the common training keys, right after :class:`recbole_gemirec.config.Config`
has merged all layers and before any data is read:

* types and ranges: :data:`COMMON_RULES` for every model, and each extension model's own
  ``CONFIG_RULES`` (declared with the model, :class:`~recbole_gemirec.model.multi_interest.MultiInterestRecommender`;
  the value specifications are :mod:`recbole_gemirec.config_specs`);
* relations between keys, the model's own ``check_config`` (GemiRec: GPT and tower heads divide their
  hidden sizes, ``interest_num`` at most the number of interests, at least one positive stage budget and
  loss weight, ``interest_source: category`` names a category field);
* category fields and user-feature fields present in the header of the dataset's atomic files (the
  header line only is read);
* unknown keys that look like a known one (``interest_nums`` -> ``interest_num``), for the extension's
  models.

Every failure raises :class:`recbole_gemirec.errors.ConfigError` whose message names the key, the value
and what is allowed; the command line prints it as one ``error: ...`` line with exit status 2.
:func:`validated_keys` lists what is checked (``docs/reliability.md`` is generated from the same table).
"""

import difflib
import os
import re
from functools import lru_cache
from pathlib import Path

import yaml

from recbole_gemirec.checkpoint import LAUNCH_KEYS
from recbole_gemirec.config_specs import (
    SEED_MAX, Boolean, DeviceIds, Either, Integer, Interval, ListOf, MappingOf, OneOf, Optional, Real, ScalarOrList,
    String, Word, fail,
)
from recbole_gemirec.errors import ConfigError


# --- the tables ------------------------------------------------------------------------------------------
# Keys every model run through the extension has (checked when the final configuration holds them).
COMMON_RULES = {
    "seed": Integer(0, SEED_MAX),
    "epochs": Integer(0),
    "train_batch_size": Integer(1),
    "eval_batch_size": Integer(1),
    "learning_rate": Real(0, min_open=True),
    "weight_decay": Optional(Real(0)),
    "stopping_step": Integer(0),
    "eval_step": Integer(),
    "topk": ScalarOrList(Integer(1)),
    "MAX_ITEM_LIST_LENGTH": Optional(Integer(1)),
    "eval_protocol": Optional(OneOf("loo", "user")),
    "category_field": Optional(String()),
    "user_inter_num_interval": Optional(Interval()),
    "item_inter_num_interval": Optional(Interval()),
    "val_interval": Optional(MappingOf(Interval())),
    # RecBole falls back to Adam (with a warning) on any other name
    "learner": Optional(OneOf("adam", "Adam", "adamw", "AdamW", "sgd", "SGD", "adagrad", "Adagrad", "rmsprop",
                              "RMSprop", "sparse_adam")),
}

# RecBole's own data-loading, logging and training keys. RecBole uses their values as given (a number where
# it joins strings, a string where it iterates a list, a word pandas does not know), so a wrong type ends in a
# TypeError deep inside RecBole, pandas or torch, or silently does something else (``load_col: user_id`` is
# read letter by letter, ``show_progress: abc`` counts as true).
_FIELD = Optional(String())
_FIELDS = Optional(ListOf(String(), min_length=0))
_COLUMNS = Optional(MappingOf(Either(OneOf("*"), ListOf(String(), min_length=0)), keys="file suffix (inter, user, item, ...)"))
RECBOLE_RULES = {
    **{key: _FIELD for key in ("USER_ID_FIELD", "ITEM_ID_FIELD", "RATING_FIELD", "TIME_FIELD", "LABEL_FIELD",
                               "NEG_PREFIX", "ITEM_LIST_LENGTH_FIELD", "LIST_SUFFIX", "POSITION_FIELD")},
    "field_separator": String("a non-empty string (a tab by default)"),
    "seq_separator": String("a non-empty string (a space by default)"),
    "encoding": Optional(String("a text encoding name (e.g. utf-8)")),
    "data_path": String("a directory path (string)"),
    "checkpoint_dir": String("a directory path (string)"),
    "load_col": _COLUMNS,
    "unload_col": _COLUMNS,
    "unused_col": Optional(MappingOf(ListOf(String(), min_length=0), keys="file suffix (inter, user, item, ...)")),
    "numerical_features": _FIELDS,
    **{f"alias_of_{kind}_id": _FIELDS for kind in ("user", "item", "entity", "relation")},
    "seq_len": Optional(MappingOf(Integer(1))),
    "normalize_all": Optional(Boolean()),
    "normalize_field": _FIELDS,
    "additional_feat_suffix": _FIELDS,
    "benchmark_filename": _FIELDS,
    "rm_dup_inter": Optional(OneOf("first", "last")),
    "state": Optional(Word("info", "debug", "warning", "error", "critical")),
    "worker": Integer(0),
    "gpu_id": DeviceIds(),
    "metric_decimal_place": Integer(0),
    "loss_decimal_place": Integer(0),
    **{key: Boolean() for key in ("show_progress", "reproducibility", "filter_inter_by_user_or_item", "shuffle",
                                   "save_dataset", "save_dataloaders", "repeatable", "use_gpu", "log_wandb",
                                   "enable_amp", "enable_scaler", "require_pow", "kg_reverse_r")},
}

# Keys RecBole itself reads while it merges the configuration layers (checked then, with our message).
MERGE_READ_RULES = {"data_path": RECBOLE_RULES["data_path"], "checkpoint_dir": RECBOLE_RULES["checkpoint_dir"],
                    "valid_metric": Optional(String("a metric name such as Recall@10"))}

# Relations between keys, documented here and in docs/reliability.md (validated_keys reports them).
RELATIONS = {
    "*": [
        "category_field is a token/token_seq field in the header of <dataset>.item",
        "eval_protocol: user settings (user_split, user_split_seed, history_ratio, eval mode, a sequential "
        "or non-personalised model), checked by UserProtocolDataset before it reads any file",
    ],
}


def extension_models():
    """``{name: class}`` of the extension's models, each carrying its own ``CONFIG_RULES``."""
    from recbole_gemirec.utils import extension_model, extension_model_names

    return {name: extension_model(name) for name in extension_model_names()}


def validated_keys():
    """``{model or '*': [key, ...]}``: every key whose value is checked (for documentation and tests)."""
    keys = {"*": sorted({**COMMON_RULES, **RECBOLE_RULES})}
    for model, model_class in extension_models().items():
        keys[model] = sorted(model_class.CONFIG_RULES)
    return keys


def relations():
    """``{model or '*': [rule, ...]}``: the cross-key rules in words (for documentation)."""
    found = {"*": list(RELATIONS["*"])}
    for model, model_class in extension_models().items():
        if model_class.CONFIG_RELATIONS:
            found[model] = list(model_class.CONFIG_RELATIONS)
    return found


# --- known keys (for the typo check) ---------------------------------------------------------------------
_KEY_PATTERN = re.compile(r"""(?:config\[|config(?:_dict)?\.get\()\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")
# Set by RecBole's Config itself or by the launcher, never in a YAML file.
_INTERNAL_KEYS = {
    "model", "dataset", "config_files", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "is_sequential",
    "train_neg_sample_args", "valid_neg_sample_args", "test_neg_sample_args", *LAUNCH_KEYS,
}


def _yaml_keys(directory):
    keys = set()
    for path in Path(directory).rglob("*.yaml"):
        try:
            with open(path, "r", encoding="utf-8") as f:
                data = yaml.safe_load(f)
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict):
            keys.update(str(k) for k in data)
    return keys


def _source_keys(directory):
    keys = set()
    for path in Path(directory).rglob("*.py"):
        try:
            keys.update(_KEY_PATTERN.findall(path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            continue
    return keys


@lru_cache(maxsize=1)
def known_keys():
    """``(recbole_keys, extension_keys)``: every configuration key RecBole or the extension reads or ships.

    RecBole's: its property YAMLs, its argument lists and every ``config["..."]`` / ``config.get("...")`` in its
    source (RecBole declares no schema, so its reads are the only complete list). The extension's are declared:
    its YAML files (``properties/``, ``dataset_configs/``), the common rules and each model's ``CONFIG_RULES``.
    """
    import recbole
    from recbole.utils import argument_list

    from recbole_gemirec.resources import resource_dir

    recbole_dir = Path(recbole.__file__).resolve().parent
    recbole_keys = _yaml_keys(recbole_dir / "properties") | _source_keys(recbole_dir) | set(_INTERNAL_KEYS)
    for name in dir(argument_list):
        value = getattr(argument_list, name)
        if name.endswith("_arguments") and isinstance(value, list):
            recbole_keys.update(value)
    extension_keys = set()
    for name in ("properties", "dataset_configs"):
        try:
            extension_keys |= _yaml_keys(resource_dir(name))
        except FileNotFoundError:
            pass
    for model_class in extension_models().values():
        extension_keys.update(model_class.CONFIG_RULES)
    extension_keys.update(COMMON_RULES)
    recbole_keys = recbole_keys | set(RECBOLE_RULES)
    return frozenset(recbole_keys), frozenset(extension_keys)


def check_unknown_keys(external):
    """Refuse a key nobody reads that is a near miss of one somebody does (``interest_nums``)."""
    recbole_keys, extension_keys = known_keys()
    known = recbole_keys | extension_keys
    for key in external:
        if not isinstance(key, str):
            raise ConfigError(f"{key!r}={external[key]!r} is not allowed: the key is a {type(key).__name__}; "
                              "allowed: configuration keys are names (strings such as learning_rate)")
        if key in known:
            continue
        close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.8)
        if close:
            raise ConfigError(
                f"{key}={external[key]!r} is not allowed: {key!r} is not a configuration key; did you mean "
                f"{close[0]}? allowed: the keys of RecBole and of the extension (see "
                "properties/model/<Model>.yaml and docs/reliability.md)"
            )


# --- file headers ------------------------------------------------------------------------------------------
def atomic_header(path, separator="\t"):
    """``{field: type}`` from the first line of a RecBole atomic file (``name:type`` columns)."""
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        line = f.readline().rstrip("\r\n")
    fields = {}
    for column in line.split(separator or "\t"):
        name, _, ftype = column.partition(":")
        fields[name.strip()] = ftype.strip()
    return fields


def _dataset_file(config, suffix):
    return os.path.join(str(config["data_path"]), f"{config['dataset']}.{suffix}")


def check_category_field(config, key):
    """``key`` (a category field setting) names a token or token_seq column of ``<dataset>.item``.

    Skipped while the dataset directory does not exist yet (RecBole downloads known datasets later).
    """
    field = config[key]
    if field is None or not os.path.isdir(str(config["data_path"])):
        return
    path = _dataset_file(config, "item")
    if not os.path.isfile(path):
        fail(key, field, "~ (no category field) or a token/token_seq field of the item file",
              f"the dataset has no item file ({path} does not exist)")
    header = atomic_header(path, config["field_separator"])
    if field not in header:
        close = difflib.get_close_matches(field, list(header), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        fail(key, field, f"~ or a field of the item file (only those can be loaded item fields): {', '.join(header)}",
              f"{path} has no field {field!r}{hint}")
    if header[field] not in ("token", "token_seq"):
        fail(key, field, "a token or token_seq field of the item file",
              f"field {field!r} of {path} has type {header[field]!r}, not a category")


def check_user_feature_fields(config):
    fields = config["user_feature_fields"]
    if not fields or not config["use_user_features"] or not os.path.isdir(str(config["data_path"])):
        return
    path = _dataset_file(config, "user")
    if not os.path.isfile(path):
        fail("user_feature_fields", fields, "~ (every loaded user token field) or fields of the user file",
              f"the dataset has no user file ({path} does not exist)")
    header = atomic_header(path, config["field_separator"])
    for field in fields:
        if field not in header:
            close = difflib.get_close_matches(field, list(header), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            fail("user_feature_fields", fields, f"~ or a list of the user file's fields {', '.join(header)}",
                  f"{path} has no field {field!r}{hint}")


# --- entry point ---------------------------------------------------------------------------------------------
def _check_rules(config, rules):
    final = config.final_config_dict
    for key, spec in rules.items():
        if key not in final and (isinstance(spec, Optional) or rules is COMMON_RULES or rules is RECBOLE_RULES):
            continue  # a key this model never reads
        value = final.get(key)
        if not spec.accepts(value):
            why = spec.why(value)
            fail(key, value, spec, why)


def check_evaluation_keys(final):
    """``eval_args`` (mapping, modes), ``topk`` and ``metrics`` of a merged configuration dict, with our message (RecBole checks them while
    it merges, with messages that do not say what is allowed)."""
    args = final.get("eval_args")
    if args is not None and not isinstance(args, dict):
        fail("eval_args", args, "a mapping with split, order, group_by and mode")
    if isinstance(args, dict) and "mode" in args:
        check_eval_modes(args["mode"])
    topk = final.get("topk")
    if topk is not None and not COMMON_RULES["topk"].accepts(topk):
        fail("topk", topk, COMMON_RULES["topk"])
    for key, spec in MERGE_READ_RULES.items():  # joined into paths or split while merging
        if key in final and not spec.accepts(final[key]):
            fail(key, final[key], spec)
    metrics = final.get("metrics")
    if metrics is None:
        return
    from recbole.evaluator.register import metric_types

    if not (isinstance(metrics, str) or (isinstance(metrics, list) and all(isinstance(m, str) for m in metrics))):
        fail("metrics", metrics, "a metric name or a list of them (Recall, NDCG, ...)")
    listed = [metrics] if isinstance(metrics, str) else list(metrics)
    known = sorted(metric_types)
    for name in listed:
        if str(name).lower() not in metric_types:
            fail("metrics", metrics, "metric names of RecBole and the extension: " + ", ".join(known),
                  f"there is no metric named {name!r}")
    kinds = {metric_types[str(name).lower()] for name in listed}
    if len(kinds) > 1:
        fail("metrics", metrics, "only ranking metrics (Recall, NDCG, Hit, MRR, ..., AMR, CUR) or only value "
              "metrics (AUC, RMSE, MAE, LogLoss, ...)", "ranking and value metrics are mixed")


EVAL_SPLITS = {"RS": "a list of 3 numbers >= 0 with a positive sum (train, valid, test shares)",
               "LS": "'valid_and_test', 'valid_only' or 'test_only'",
               "TS": "a list of 3 numbers >= 0 with a positive sum"}
EVAL_MODE = re.compile(r"^(full|labeled|(uni|pop)[1-9][0-9]*)$")


def _shares(value):
    return (isinstance(value, list) and len(value) == 3 and all(Real(0).accepts(v) for v in value)
            and sum(value) > 0)


def check_eval_args(config):
    """``eval_args`` after RecBole's merge: the split, order, grouping and modes its dataset and data loaders
    accept (they fail much later with an unpacking error or a bare ``ValueError``). A command-line or
    ``config_dict`` ``eval_args`` replaces the whole mapping, so a missing ``order`` becomes RecBole's ``RO``,
    which sequential models refuse: the message says so. (A non-mapping never gets here: RecBole refuses it
    while merging, and :func:`check_evaluation_keys` words that refusal.)"""
    from recbole.utils import ModelType

    args = config["eval_args"]
    split = args.get("split")
    if not (isinstance(split, dict) and len(split) == 1 and next(iter(split)) in EVAL_SPLITS):
        fail("eval_args.split", split, "a mapping with one key: RS, LS or TS")
    (kind, value), = split.items()
    valid = _shares(value) if kind in ("RS", "TS") else value in ("valid_and_test", "valid_only", "test_only")
    if not valid:
        fail(f"eval_args.split.{kind}", value, EVAL_SPLITS[kind])
    order = args.get("order")
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
    if order not in ("RO", "TO") or (sequential and order != "TO"):
        allowed = "'TO' for a sequential model" if sequential else "'RO' or 'TO'"
        why = ("an eval_args given on the command line or in config_dict replaces the whole mapping: give split, "
               "order and mode together") if order == "RO" else None
        fail("eval_args.order", order, allowed, why)
    group_by = args.get("group_by")
    if group_by not in (None, "user", "none"):
        fail("eval_args.group_by", group_by, "'user', 'none' or ~")
    check_eval_modes(args.get("mode"))


def check_eval_modes(mode):
    """``eval_args.mode``: one mode, or a mapping of ``valid``/``test`` to modes."""
    modes = {"valid": mode, "test": mode} if isinstance(mode, str) else mode
    if not isinstance(modes, dict) or not modes:
        fail("eval_args.mode", mode, "'full', 'labeled', 'uniN', 'popN', or a mapping valid/test: mode")
    for phase, value in modes.items():
        if phase not in ("valid", "test") or not (isinstance(value, str) and EVAL_MODE.match(value)):
            fail(f"eval_args.mode.{phase}", value, "'full', 'labeled', 'uniN' or 'popN' (N a positive integer) "
                  "for valid and test")


def check_interval_fields(config):
    """Every ``val_interval`` field is a column of ``<dataset>.inter`` (RecBole fails after loading)."""
    fields = config["val_interval"] or {}
    path = _dataset_file(config, "inter")
    if not fields or not os.path.isfile(path):
        return
    header = atomic_header(path, config["field_separator"])
    for field in fields:
        if field not in header:
            fail("val_interval", fields, f"fields of {path}: {', '.join(sorted(header))}",
                  f"{field!r} is not a column of the .inter file")


def check_clip_grad_norm(config):
    """``clip_grad_norm``: ~ or the keyword arguments of ``torch.nn.utils.clip_grad_norm_`` (RecBole passes
    them with ``**`` in every training batch, so a wrong value fails only then)."""
    value = config["clip_grad_norm"]
    allowed = "~ or a mapping with max_norm (a finite number > 0) and optionally norm_type (a number > 0, or .inf)"
    if value is None:
        return
    if not isinstance(value, dict) or "max_norm" not in value:
        fail("clip_grad_norm", value, allowed)
    specs = {"max_norm": Real(0, min_open=True), "norm_type": Real(0, min_open=True, infinite=True),
             "error_if_nonfinite": Boolean()}
    for key, item in value.items():
        if key not in specs:
            fail("clip_grad_norm", value, allowed, f"{key!r} is not an argument of clip_grad_norm_")
        if not specs[key].accepts(item):
            fail("clip_grad_norm", value, allowed, f"{key}={item!r} is not {specs[key]}")


NEG_SAMPLE_RULES = {"sample_num": Integer(1), "alpha": Real(), "dynamic": Boolean(), "candidate_num": Integer(0)}


def check_train_neg_sample_args(config):
    """``train_neg_sample_args`` after RecBole's merge (which checks only the mapping and ``distribution``): a
    negative or non-integer ``sample_num`` fails in the first batch inside numpy or RecBole's sampler."""
    args = config["train_neg_sample_args"]
    if not isinstance(args, dict) or args.get("distribution") == "none":  # RecBole's form of "no negatives"
        return
    allowed = ("a mapping with distribution (uniform or popularity), sample_num (" + str(NEG_SAMPLE_RULES["sample_num"])
               + "), alpha (a finite number), dynamic (true or false), candidate_num (an integer >= 0)")
    for key, spec in NEG_SAMPLE_RULES.items():
        if key in args and not spec.accepts(args[key]):
            fail("train_neg_sample_args", args, allowed, f"{key}={args[key]!r} is not {spec}")


def _inter_header(config):
    """``(path, {field: type})`` of the interaction file RecBole reads first; ``(path, None)`` when it does not
    exist (yet: RecBole downloads known datasets later) or its header is malformed (then
    :func:`~recbole_gemirec.data.atomic_files.check_atomic_files` names the file, the line and the defect)."""
    from recbole_gemirec.data.atomic_files import parse_header
    from recbole_gemirec.errors import DataError

    parts = config["benchmark_filename"] or []
    path = _dataset_file(config, f"{parts[0]}.inter" if parts else "inter")
    if not os.path.isfile(path):
        return path, None
    with open(path, "r", encoding="utf-8", errors="replace") as f:
        line = f.readline().rstrip("\r\n")
    try:
        return path, parse_header(path, line, config["field_separator"])
    except DataError:
        return path, None


def _loaded(config, source, field):
    """Whether ``load_col`` / ``unload_col`` let RecBole load ``field`` of the ``source`` file."""
    load_col, unload_col = config["load_col"], config["unload_col"] or {}
    if isinstance(load_col, dict):
        wanted = load_col.get(source)
        if wanted is None or (wanted != "*" and field not in wanted):
            return False
    return field not in (unload_col.get(source) or ())


def check_loaded_fields(config):
    """The interaction columns a run cannot do without are loaded: the user and item ids always, the time
    field when interactions are ordered by time (sequential models, ``eval_args.order: TO``) - a ``float``
    column, since RecBole remaps a token column to ids in order of appearance. RecBole would stop with a
    ``KeyError`` from pandas, or a ``ValueError`` while sorting, after reading every file."""
    from recbole.utils import ModelType

    path, header = _inter_header(config)
    if header is None:
        return
    needed = [("USER_ID_FIELD", "token"), ("ITEM_ID_FIELD", "token")]
    if config["MODEL_TYPE"] == ModelType.SEQUENTIAL or (config["eval_args"] or {}).get("order") == "TO":
        needed.append(("TIME_FIELD", "float"))
    ordered = "interactions are ordered by time (a sequential model or eval_args.order: TO)"
    for key, ftype in needed:
        field = config[key]
        if field is None or field not in header:
            if key != "TIME_FIELD":
                continue  # a missing id column: check_atomic_files names the file and the key
            close = difflib.get_close_matches(str(field), list(header), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            absent = "it is not set" if field is None else f"{path} has no column {field!r}{hint}"
            fail(key, field, f"a float column of {path}: {', '.join(sorted(header))}", f"{ordered}, and {absent}")
        if header[field] != ftype:
            fail(key, field, f"a {ftype} column of {path}", f"column {field!r} has type {header[field]!r}")
        if not _loaded(config, "inter", field):
            fail("load_col", config["load_col"], f"a mapping whose 'inter' list holds {field!r} (or '*'), and no "
                 f"unload_col['inter'] naming it", f"{key}={field!r} is not loaded from {path}")


def check_valid_metric(config):
    """``valid_metric`` must be one of the evaluated metrics at one of the cut-offs (``Recall@50`` with
    ``metrics: [Recall]`` and ``topk: [50]``); RecBole finds out only after the first training epoch."""
    metric = config["valid_metric"]
    if metric is None:
        return
    metrics = config["metrics"] or []
    metrics = [metrics] if isinstance(metrics, str) else metrics
    topk = config["topk"] or []
    topk = [topk] if isinstance(topk, int) else topk
    from recbole.evaluator.register import metric_types
    from recbole.utils import EvaluatorType

    value_metrics = {name for name, kind in metric_types.items() if kind == EvaluatorType.VALUE}  # no cut-off
    names = {str(m).lower() for m in metrics}
    allowed = sorted({f"{m}@{k}" for m in metrics if str(m).lower() not in value_metrics for k in topk}
                     | {str(m) for m in metrics if str(m).lower() in value_metrics})
    name, _, cut = str(metric).partition("@")
    ranked = name.lower() not in value_metrics
    if name.lower() not in names or ranked != bool(cut) or (cut and (not cut.isdigit() or int(cut) not in topk)):
        fail("valid_metric", metric, "one of the evaluated metrics at an evaluated cut-off: " + ", ".join(allowed))


@lru_cache(maxsize=None)
def recbole_model_defaults(model):
    """``{key: default}`` of RecBole's own ``properties/model/<model>.yaml`` (empty when it has none)."""
    import recbole

    from recbole_gemirec.config import SafeConfigLoader

    path = Path(recbole.__file__).resolve().parent / "properties" / "model" / f"{model}.yaml"
    try:
        with open(path, "r", encoding="utf-8") as f:
            data = yaml.load(f, Loader=SafeConfigLoader)
    except (OSError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def _default_kind(default):
    """The spec a RecBole model key's value must meet, from the type of RecBole's own default (or None)."""
    if isinstance(default, bool):
        return Boolean()
    if isinstance(default, (int, float)):
        # any finite number: RecBole marks some integer defaults as floats (FEARec's global_ratio: 1) and
        # multiplies by others (DCN's reg_weight: 2), so an integer default does not make 0.5 wrong
        return Real()
    if isinstance(default, str):
        return String("a string, as RecBole's default " + repr(default))
    if isinstance(default, list):
        return ListOf(Either(Integer(), Real(), String(), Boolean()), min_length=0)
    return None


def check_recbole_model_types(config):
    """A RecBole model's own keys (``properties/model/<Model>.yaml`` in RecBole) hold a value of their
    default's kind: RecBole and torch use them as given, so ``hidden_size=abc`` fails
    inside torch once the data is loaded (a number where the default is one, a string, a boolean, a list).
    Only keys the user set are checked; ``~`` stays allowed."""
    defaults = recbole_model_defaults(config["model"])
    external = config.external_config_dict
    for key, default in defaults.items():
        if key not in external or external[key] is None:
            continue
        spec = _default_kind(default)
        if spec is not None and not spec.accepts(external[key]):
            fail(key, external[key], f"{spec} (RecBole's {config['model']} default is {default!r})")


def validate_config(config):
    """Check ``config`` (a merged :class:`recbole_gemirec.config.Config`); raise :class:`ConfigError`.

    Common keys and ``category_field`` for every model; the model's own table, relations and the
    unknown-key check for the extension's models.
    """
    from recbole_gemirec.data.user_protocol import user_protocol_values
    from recbole_gemirec.utils import extension_model

    model_class = extension_model(config["model"])
    check_unknown_keys(config.external_config_dict)  # every model: RecBole's built-ins too
    _check_rules(config, COMMON_RULES)
    _check_rules(config, RECBOLE_RULES)
    check_clip_grad_norm(config)
    check_train_neg_sample_args(config)
    check_valid_metric(config)
    check_eval_args(config)
    check_interval_fields(config)
    check_loaded_fields(config)
    check_category_field(config, "category_field")
    user_protocol_values(config)  # under every protocol; the rest of eval_protocol: user's checks are
    # UserProtocolDataset's, before it reads any file
    if model_class is None:  # a RecBole model: the types of its own keys, and RecBole's own checks
        check_recbole_model_types(config)
        return
    _check_rules(config, model_class.CONFIG_RULES)
    model_class.check_config(config)
