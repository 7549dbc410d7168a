"""Configuration validation: a bad setting costs one clear message, before any data is loaded.

RecBole accepts almost any value and fails much later (or never): ``gpt_heads=3`` surfaces as a tensor
``view`` error in the first batch, ``interest_nums=3`` (a typo) is silently ignored and the run trains
with the default, a misspelt category field turns into a warning half-way through data loading. This
module checks every configuration key of the extension's models (GemiRec and the ComiRec-SA, ComiRec-DR,
MIND and REMI baselines) and the common training keys, right after :class:`recbole_gemirec.config.Config`
has merged all layers and before any data is read:

* types and ranges (:data:`COMMON_RULES`, :data:`MODEL_RULES`);
* relations between keys (:func:`_gemirec_relations`): GPT and tower heads divide their hidden sizes,
  ``interest_num`` at most the number of interests, at least one positive stage budget and loss weight,
  ``interest_source: category`` names a category field;
* category fields and user-feature fields present in the header of the dataset's atomic files (the
  header line only is read);
* unknown keys that look like a known one (``interest_nums`` -> ``interest_num``), for the extension's
  models.

Every failure raises :class:`recbole_gemirec.errors.ConfigError` whose message names the key, the value
and what is allowed; the command line prints it as one ``error: ...`` line with exit status 2.
:func:`validated_keys` lists what is checked (``docs/reliability.md`` is generated from the same table).
"""

import difflib
import math
import numbers
import os
import re
from functools import lru_cache
from pathlib import Path

import yaml

from recbole_gemirec.checkpoint import LAUNCH_KEYS
from recbole_gemirec.errors import ConfigError
from recbole_gemirec.model.gemirec import STAGES

# The generator's output layer has one logit per interest (the product of the sub-dictionary sizes);
# past this many it no longer fits a sensible memory budget (docs/design.md §2.1 uses 16,384).
MAX_INTERESTS = 1 << 20
BASELINES = ("ComiRecSA", "ComiRecDR", "MIND", "REMI")


# --- value specifications ------------------------------------------------------------------------------
class Spec:
    """One allowed set of values: ``accepts(value)`` and a human description for the error message."""

    description = "a valid value"

    def accepts(self, value):
        raise NotImplementedError

    def __str__(self):
        return self.description


class Integer(Spec):
    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum
        bounds = []
        if minimum is not None:
            bounds.append(f">= {minimum}")
        if maximum is not None:
            bounds.append(f"<= {maximum}")
        self.description = "an integer" + (" " + " and ".join(bounds) if bounds else "")

    def accepts(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            return False
        return (self.minimum is None or value >= self.minimum) and (self.maximum is None or value <= self.maximum)


class Real(Spec):
    def __init__(self, minimum=None, maximum=None, *, min_open=False, max_open=False, infinite=False):
        self.minimum, self.maximum = minimum, maximum
        self.min_open, self.max_open, self.infinite = min_open, max_open, infinite
        bounds = []
        if minimum is not None:
            bounds.append(f"{'>' if min_open else '>='} {minimum}")
        if maximum is not None:
            bounds.append(f"{'<' if max_open else '<='} {maximum}")
        kind = "a number" if infinite else "a finite number"
        self.description = kind + (" " + " and ".join(bounds) if bounds else "") + (" (or .inf)" if infinite else "")

    def accepts(self, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        value = float(value)
        if math.isnan(value) or (math.isinf(value) and not (self.infinite and value > 0)):
            return False
        if self.minimum is not None and (value < self.minimum or (self.min_open and value == self.minimum)):
            return False
        if self.maximum is not None and (value > self.maximum or (self.max_open and value == self.maximum)):
            return False
        return True


class Boolean(Spec):
    description = "true or false"

    def accepts(self, value):
        return isinstance(value, bool)


class String(Spec):
    description = "a field name (string)"

    def accepts(self, value):
        return isinstance(value, str) and value != ""


class OneOf(Spec):
    def __init__(self, *values):
        self.values = values
        self.description = "one of " + ", ".join(repr(v) for v in values)

    def accepts(self, value):
        return any(value == v and type(value) is type(v) for v in self.values)


class Optional(Spec):
    """``~`` (null: the documented default) or a value of ``spec``."""

    def __init__(self, spec):
        self.spec = spec
        self.description = f"~ (null) or {spec}"

    def accepts(self, value):
        return value is None or self.spec.accepts(value)


class Either(Spec):
    """A value of any of ``specs``."""

    def __init__(self, *specs):
        self.specs = specs
        self.description = " or ".join(str(spec) for spec in specs)

    def accepts(self, value):
        return any(spec.accepts(value) for spec in self.specs)


class ListOf(Spec):
    def __init__(self, spec, *, length=None, min_length=1):
        self.spec, self.length, self.min_length = spec, length, min_length
        if length is not None:
            size = f"exactly {length}"
        elif min_length:
            size = f"at least {min_length}"
        else:
            size = "any number of"
        self.description = f"a list of {size} item(s), each {spec}"

    def accepts(self, value):
        if not isinstance(value, (list, tuple)):
            return False
        if self.length is not None and len(value) != self.length:
            return False
        if len(value) < self.min_length:
            return False
        return all(self.spec.accepts(v) for v in value)


class ScalarOrList(Spec):
    def __init__(self, spec):
        self.spec = spec
        self.description = f"{spec}, or a non-empty list of such"

    def accepts(self, value):
        if isinstance(value, (list, tuple)):
            return len(value) > 0 and all(self.spec.accepts(v) for v in value)
        return self.spec.accepts(value)


class StageBudget(Spec):
    """``stage_epochs``: a mapping from stage names to non-negative epoch counts, at least one positive,
    or the list ``[retrieval, dictionary, joint]``."""

    description = (
        "a mapping {retrieval: n, dictionary: n, joint: n} of non-negative integer epoch counts "
        "(missing stages get 0) or a list [retrieval, dictionary, joint], with at least one positive"
    )

    def accepts(self, value):
        if isinstance(value, (list, tuple)):
            value = stage_budget(value) if len(value) == len(STAGES) else None
        if not isinstance(value, dict) or not value:
            return False
        if any(k not in STAGES for k in value):
            return False
        counts = list(value.values())
        return all(Integer(0).accepts(c) for c in counts) and any(c > 0 for c in counts)


class Interval(Spec):
    """RecBole's interval text, e.g. ``[5,inf)`` or ``(0,1];[3,4)``: brackets, two numbers, left <= right.
    RecBole drops a malformed interval with a warning, so the filter silently does nothing."""

    description = "intervals like '[5,inf)' or '(0,1];[3,4)': [ or (, two numbers (inf allowed) low <= high, ] or )"

    def accepts(self, value):
        if isinstance(value, (list, tuple)):  # YAML reads [5, 10] unquoted as a list; RecBole uses str(value)
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            return False
        for part in value.split(";"):
            part = part.strip()
            if len(part) < 2 or part[0] not in "([" or part[-1] not in ")]":
                return False
            ends = part[1:-1].split(",")
            if len(ends) != 2:
                return False
            try:
                low, high = float(ends[0]), float(ends[1])
            except ValueError:
                return False
            if math.isnan(low) or math.isnan(high) or low > high:
                return False
        return True


class MappingOf(Spec):
    def __init__(self, spec):
        self.spec = spec
        self.description = f"a mapping field: value, each value {spec}"

    def accepts(self, value):
        return isinstance(value, dict) and all(isinstance(k, str) and self.spec.accepts(v) for k, v in value.items())


def stage_budget(value):
    """``stage_epochs`` as a mapping: the list form ``[retrieval, dictionary, joint]`` is turned into one."""
    if isinstance(value, (list, tuple)):
        return dict(zip(STAGES, value))
    return value


def _fail(key, value, allowed, why=None):
    reason = f": {why}" if why else ""
    raise ConfigError(f"{key}={value!r} is not allowed{reason}; allowed: {allowed}")


# --- the tables ------------------------------------------------------------------------------------------
# Keys every model run through the extension has (checked when the final configuration holds them).
COMMON_RULES = {
    "seed": Integer(),
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

_BASELINE_COMMON = {
    "embedding_size": Integer(1),
    "interest_num": Integer(1),
    "MAX_ITEM_LIST_LENGTH": Integer(1),
    "loss_type": OneOf("CE"),
    "sampled_softmax": Optional(Boolean()),
    "neg_sample_num": Optional(Integer(1)),
    "item_negatives": Optional(OneOf("full", "sampled", "in_batch")),
    "logq_correction": Optional(Boolean()),
}
_SELF_ATTENTIVE = {"attention_hidden_size": Optional(Integer(1)), "add_position": Optional(Boolean())}
_ROUTING = {"routing_iterations": Optional(Integer(1))}

MODEL_RULES = {
    "GemiRec": {
        "embedding_size": Integer(1),
        "MAX_ITEM_LIST_LENGTH": Integer(1),
        "interest_dictionary_sizes": ListOf(Integer(1)),
        "interest_dim": Integer(1),
        "commitment_beta": Real(0),
        "kmeans_init": Boolean(),
        "interest_category_field": Optional(String()),
        "gpt_layers": Integer(1),
        "gpt_heads": Integer(1),
        "gpt_hidden": Integer(1),
        "gpt_dropout": Real(0, 1, max_open=True),
        "use_user_features": Boolean(),
        "user_feature_fields": Optional(ListOf(String(), min_length=0)),
        "tower_layers": Integer(1),
        "tower_heads": Integer(1),
        "dropout_prob": Real(0, 1, max_open=True),
        "hard_interest_negatives": Integer(0),
        "easy_interest_negatives": Integer(0),
        "loss_weights": ListOf(Real(0), length=3),
        "interest_num": Integer(1),
        "interest_code_limit": Integer(1),
        "stage_epochs": StageBudget(),
        "interest_source": OneOf("learned", "category"),
        "joint_training": Boolean(),
        "interest_predictor": OneOf("gpt", "frequency"),
        "retrieval_interests": OneOf("target", "predicted", "both"),
        "item_negatives": OneOf("full", "sampled", "in_batch"),
        "logq_correction": Boolean(),
        "neg_sample_num": Integer(1),
        "interest_levels": Optional(Integer(1)),
        "joint_codes": OneOf("frozen", "live"),
        "interest_weighting": OneOf("none", "log_prob", "log_joint"),
        "fusion": OneOf("residual", "concat"),
        "joint_backbone_lr_scale": Real(0),
        "user_query": Boolean(),
        "generator_history_prior": Boolean(),
        "interest_distribution": OneOf("softmax", "repeat_explore"),
        "interest_prior_weight": Either(OneOf("auto"), Real(0)),
    },
    "ComiRecSA": {**_BASELINE_COMMON, **_SELF_ATTENTIVE},
    "ComiRecDR": {**_BASELINE_COMMON, **_ROUTING},
    "MIND": {
        **_BASELINE_COMMON, **_ROUTING,
        "relu_layer": Optional(Boolean()),
        "dynamic_interest_num": Optional(Boolean()),
        "label_aware_pow": Optional(Real(0, infinite=True)),
    },
    "REMI": {
        **_BASELINE_COMMON, **_SELF_ATTENTIVE,
        "hard_negative_beta": Optional(Real(0)),
        "routing_reg_weight": Optional(Real(0)),
    },
}

# Relations between keys, documented here and in docs/reliability.md (validated_keys reports them).
RELATIONS = {
    "GemiRec": [
        "gpt_hidden is divisible by gpt_heads",
        "embedding_size is divisible by tower_heads",
        f"the number of interests (product of interest_dictionary_sizes) is at most {MAX_INTERESTS}",
        "interest_num is at most the number of interests",
        "loss_weights has at least one positive weight",
        "stage_epochs names only retrieval, dictionary, joint and has at least one positive budget",
        "interest_source: category needs interest_category_field",
        "interest_category_field is a token/token_seq field in the header of <dataset>.item",
        "every user_feature_fields entry is a field in the header of <dataset>.user",
    ],
    "*": [
        "category_field is a token/token_seq field in the header of <dataset>.item",
        "eval_protocol: user settings (user_split, user_split_seed, history_ratio, eval mode, a sequential "
        "or non-personalised model), checked by UserProtocolDataset before it reads any file",
    ],
}


def validated_keys():
    """``{model or '*': [key, ...]}``: every key whose value is checked (for documentation and tests)."""
    keys = {"*": sorted(COMMON_RULES)}
    for model, rules in MODEL_RULES.items():
        keys[model] = sorted(rules)
    return keys


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

    RecBole's: its property YAMLs, its argument lists and every ``config["..."]`` / ``config.get("...")`` in its source.
    The extension's: its YAML files (``properties/``, ``dataset_configs/``) and every such read
    in the package source, so keys added by later modules are known without editing this file.
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
    package_dir = Path(__file__).resolve().parent
    extension_keys = _source_keys(package_dir)
    for name in ("properties", "dataset_configs"):
        try:
            extension_keys |= _yaml_keys(resource_dir(name))
        except FileNotFoundError:
            pass
    for rules in MODEL_RULES.values():
        extension_keys.update(rules)
    extension_keys.update(COMMON_RULES)
    return frozenset(recbole_keys), frozenset(extension_keys)


def check_unknown_keys(external):
    """Refuse a key nobody reads that is a near miss of one somebody does (``interest_nums``)."""
    recbole_keys, extension_keys = known_keys()
    known = recbole_keys | extension_keys
    for key in external:
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
        _fail(key, field, "~ (no category field) or a token/token_seq field of the item file",
              f"the dataset has no item file ({path} does not exist)")
    header = atomic_header(path, config["field_separator"])
    if field not in header:
        close = difflib.get_close_matches(field, list(header), n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        _fail(key, field, f"~ or a field of the item file (only those can be loaded item fields): {', '.join(header)}",
              f"{path} has no field {field!r}{hint}")
    if header[field] not in ("token", "token_seq"):
        _fail(key, field, "a token or token_seq field of the item file",
              f"field {field!r} of {path} has type {header[field]!r}, not a category")


def check_user_feature_fields(config):
    fields = config["user_feature_fields"]
    if not fields or not config["use_user_features"] or not os.path.isdir(str(config["data_path"])):
        return
    path = _dataset_file(config, "user")
    if not os.path.isfile(path):
        _fail("user_feature_fields", fields, "~ (every loaded user token field) or fields of the user file",
              f"the dataset has no user file ({path} does not exist)")
    header = atomic_header(path, config["field_separator"])
    for field in fields:
        if field not in header:
            close = difflib.get_close_matches(field, list(header), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            _fail("user_feature_fields", fields, f"~ or a list of the user file's fields {', '.join(header)}",
                  f"{path} has no field {field!r}{hint}")


# --- relations -----------------------------------------------------------------------------------------------
def _gemirec_relations(config):
    hidden, heads = config["gpt_hidden"], config["gpt_heads"]
    if hidden % heads:
        divisors = ", ".join(str(d) for d in range(1, hidden + 1) if hidden % d == 0)
        _fail("gpt_heads", heads, f"a divisor of gpt_hidden={hidden} ({divisors})",
              f"gpt_hidden={hidden} is not divisible by it")
    size, heads = config["embedding_size"], config["tower_heads"]
    if size % heads:
        divisors = ", ".join(str(d) for d in range(1, size + 1) if size % d == 0)
        _fail("tower_heads", heads, f"a divisor of embedding_size={size} ({divisors})",
              f"embedding_size={size} is not divisible by it")
    sizes = config["interest_dictionary_sizes"]
    n_interests = math.prod(int(s) for s in sizes)
    if n_interests > MAX_INTERESTS:
        _fail("interest_dictionary_sizes", sizes, f"sizes whose product is at most {MAX_INTERESTS}",
              f"they make {n_interests} interests, one generator logit each")
    if config["interest_source"] == "learned" and config["interest_num"] > n_interests:
        _fail("interest_num", config["interest_num"], f"an integer from 1 to {n_interests}",
              f"interest_dictionary_sizes={sizes} give only {n_interests} interests")
    weights = config["loss_weights"]
    if not any(float(w) > 0 for w in weights):
        _fail("loss_weights", weights, "three non-negative weights [dictionary, generator, retrieval] with at "
              "least one positive", "with every weight 0 the joint stage learns nothing")
    if config["interest_source"] == "category" and not config["interest_category_field"]:
        _fail("interest_source", "category", "'learned', or 'category' together with interest_category_field",
              "interest_category_field is not set, so there is no category to use as the dictionary")
    check_category_field(config, "interest_category_field")
    check_user_feature_fields(config)


def _stage_epochs_detail(value):
    """A precise reason why ``stage_epochs`` was refused (unknown stage name, negative count, ...)."""
    if not isinstance(value, dict) or not value:
        return "it is not a mapping of stage names to epoch counts"
    for stage in value:
        if stage not in STAGES:
            close = difflib.get_close_matches(str(stage), STAGES, n=1, cutoff=0.5)
            return f"unknown stage {stage!r}" + (f" (did you mean {close[0]}?)" if close else "")
    for stage, count in value.items():
        if not Integer(0).accepts(count):
            return f"the {stage} budget {count!r} is not a non-negative integer"
    return "every stage budget is 0, so nothing would be trained"


# --- entry point ---------------------------------------------------------------------------------------------
def _check_rules(config, rules):
    final = config.final_config_dict
    for key, spec in rules.items():
        if key not in final and (isinstance(spec, Optional) or rules is COMMON_RULES):
            continue  # a key this model never reads
        value = final.get(key)
        if not spec.accepts(value):
            why = _stage_epochs_detail(value) if isinstance(spec, StageBudget) else None
            _fail(key, value, spec, why)


def check_evaluation_keys(final):
    """``eval_args`` (mapping, modes), ``topk`` and ``metrics`` of a merged configuration dict, with our message (RecBole checks them while
    it merges, with messages that do not say what is allowed)."""
    args = final.get("eval_args")
    if args is not None and not isinstance(args, dict):
        _fail("eval_args", args, "a mapping with split, order, group_by and mode")
    if isinstance(args, dict) and "mode" in args:
        check_eval_modes(args["mode"])
    topk = final.get("topk")
    if topk is not None and not COMMON_RULES["topk"].accepts(topk):
        _fail("topk", topk, COMMON_RULES["topk"])
    metrics = final.get("metrics")
    if metrics is None:
        return
    from recbole.evaluator.register import metric_types

    listed = [metrics] if isinstance(metrics, str) else list(metrics)
    known = sorted(metric_types)
    for name in listed:
        if str(name).lower() not in metric_types:
            _fail("metrics", metrics, "metric names of RecBole and the extension: " + ", ".join(known),
                  f"there is no metric named {name!r}")
    kinds = {metric_types[str(name).lower()] for name in listed}
    if len(kinds) > 1:
        _fail("metrics", metrics, "only ranking metrics (Recall, NDCG, Hit, MRR, ..., AMR, CUR) or only value "
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
        _fail("eval_args.split", split, "a mapping with one key: RS, LS or TS")
    (kind, value), = split.items()
    valid = _shares(value) if kind in ("RS", "TS") else value in ("valid_and_test", "valid_only", "test_only")
    if not valid:
        _fail(f"eval_args.split.{kind}", value, EVAL_SPLITS[kind])
    order = args.get("order")
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL
    if order not in ("RO", "TO") or (sequential and order != "TO"):
        allowed = "'TO' for a sequential model" if sequential else "'RO' or 'TO'"
        why = ("an eval_args given on the command line or in config_dict replaces the whole mapping: give split, "
               "order and mode together") if order == "RO" else None
        _fail("eval_args.order", order, allowed, why)
    group_by = args.get("group_by")
    if group_by not in (None, "user", "none"):
        _fail("eval_args.group_by", group_by, "'user', 'none' or ~")
    check_eval_modes(args.get("mode"))


def check_eval_modes(mode):
    """``eval_args.mode``: one mode, or a mapping of ``valid``/``test`` to modes."""
    modes = {"valid": mode, "test": mode} if isinstance(mode, str) else mode
    if not isinstance(modes, dict) or not modes:
        _fail("eval_args.mode", mode, "'full', 'labeled', 'uniN', 'popN', or a mapping valid/test: mode")
    for phase, value in modes.items():
        if phase not in ("valid", "test") or not (isinstance(value, str) and EVAL_MODE.match(value)):
            _fail(f"eval_args.mode.{phase}", value, "'full', 'labeled', 'uniN' or 'popN' (N a positive integer) "
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
            _fail("val_interval", fields, f"fields of {path}: {', '.join(sorted(header))}",
                  f"{field!r} is not a column of the .inter file")


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
        _fail("valid_metric", metric, "one of the evaluated metrics at an evaluated cut-off: " + ", ".join(allowed))


def validate_config(config):
    """Check ``config`` (a merged :class:`recbole_gemirec.config.Config`); raise :class:`ConfigError`.

    Common keys and ``category_field`` for every model; the model's own table, relations and the
    unknown-key check for the extension's models.
    """
    model = config["model"]
    rules = MODEL_RULES.get(model)
    check_unknown_keys(config.external_config_dict)  # every model: RecBole's built-ins too
    _check_rules(config, COMMON_RULES)
    check_valid_metric(config)
    check_eval_args(config)
    check_interval_fields(config)
    check_category_field(config, "category_field")
    # eval_protocol: user settings are checked by UserProtocolDataset before it reads any file.
    if rules is None:
        return
    _check_rules(config, rules)
    if model == "GemiRec":
        _gemirec_relations(config)
