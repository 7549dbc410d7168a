"""The extension's :class:`Config`: RecBole's configurator that also knows the extension's models.

RecBole 1.2.1 resolves ``model`` only among its own classes and loads only its own property files. This
subclass (the RecBole-GNN pattern, docs/design.md §3) resolves names through :func:`recbole_gemirec.utils.get_model`
(extension first, RecBole second), layers ``properties/model/<Model>.yaml`` of the extension over RecBole's
internal defaults, registers the extension's metrics before RecBole validates ``metrics``, and takes the
command line as an explicit argument so that library calls never read ``sys.argv`` by accident.

No configuration value is ever evaluated as code. RecBole 1.2.1 passes every string of ``config_dict``
and of the command line through ``eval()`` (``Config._convert_config_dict``), so a value such as
``"__import__('os').system(...)"`` in a checkpoint's stored config, a hyper-parameter file or a
``--key=value`` would run. Here ``config_dict`` values are taken exactly as given (they are Python values
already: a checkpoint's config, a trial's parameters), a command-line value is read as data by
:func:`parse_value`, and YAML files are read with a safe loader (docs/reliability.md).
"""

import ast
import os
import re

import yaml

from recbole_gemirec import _compat  # noqa: F401  (numpy aliases before RecBole's Config runs)
from recbole.config import Config as RecBoleConfig

from recbole_gemirec.resources import dataset_properties, is_plain_name, model_properties

# Types a command-line value may take, as RecBole's own conversion allows (anything else stays the string).
_VALUE_TYPES = (str, int, float, list, tuple, dict, bool)
_WORDS = {"true": True, "false": False, "null": None, "~": None}


class SafeConfigLoader(yaml.SafeLoader):
    """YAML's safe loader (no Python tags) with RecBole's extra float spellings (``1e-3``, ``.5``); a key
    written twice in one mapping is refused (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node.start_mark)
                except TypeError:  # an unhashable key: the base constructor words it
                    continue
                if first is not key_node.start_mark:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"found key {key!r} a second time (first on line {first.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


# RecBole's ``Config._build_yaml_loader`` adds this resolver to ``yaml.FullLoader``, which also builds
# Python objects from ``!!python/...`` tags; the same resolver on the safe loader keeps the numbers.
SafeConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        """^(?:
     [-+]?(?:[0-9][0-9_]*)\\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\\.[0-9_]+(?:[eE][-+][0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\\.[0-9_]*
    |[-+]?\\.(?:inf|Inf|INF)
    |\\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_config_files(file_list, loader=None):
    """The merged values of YAML config files (later files win), read with the safe loader; a file that is not
    plain YAML data (a Python tag such as ``!!python/name:``, a syntax error), not UTF-8, unreadable or not a
    mapping is a :class:`~recbole_gemirec.errors.ConfigError` naming it."""
    from recbole_gemirec.errors import ConfigError

    values = {}
    for path in file_list or []:
        try:
            with open(path, "r", encoding="utf-8") as f:
                loaded = yaml.load(f.read(), Loader=loader or SafeConfigLoader)
        except OSError as err:
            raise ConfigError(f"config file {path} cannot be read ({err.strerror or err}); allowed: a "
                              "readable YAML file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"config file {path} is not UTF-8 text; allowed: a YAML file in UTF-8") from None
        except yaml.YAMLError as err:
            reason = " ".join(str(err).split())
            raise ConfigError(f"config file {path} is not plain YAML data ({reason})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {path} holds a {type(loaded).__name__}, not a mapping of keys to values")
        for key in loaded or {}:
            if not isinstance(key, str):
                raise ConfigError(f"config file {path}: key {key!r} is not a string ({type(key).__name__}); allowed: keys are "
                                  "configuration names (strings such as learning_rate)")
        if _contains_itself(loaded):
            raise ConfigError(f"config file {path} holds a value that contains itself (a YAML alias such as "
                              "'a: &x [*x]'); allowed: plain values, lists and mappings")
        values.update(loaded or {})
    return values


def _contains_itself(value, _inside=()):
    """Whether a loaded YAML value holds itself (``a: &x [*x]``): every later walk over it would recurse forever."""
    if not isinstance(value, (list, dict)):
        return False
    if any(value is outer for outer in _inside):
        return True
    items = value.values() if isinstance(value, dict) else value
    return any(_contains_itself(item, _inside + (value,)) for item in items)


def parse_value(text):
    """Read one command-line value (the ``VALUE`` of ``--key=VALUE``) as data, never as code.

    In order: a Python literal (``0.001``, ``1e-3``, ``[10, 20]``, ``{'retrieval': 2}``, ``None``,
    ``True``, ``'text'``), as RecBole users write them; the words ``true``/``false`` (any case, as RecBole
    reads them) and YAML's ``null``/``~``; a YAML flow list or mapping (``[Recall, NDCG]``, what a shell
    leaves of ``['Recall','NDCG']``), read by a safe loader; otherwise the string itself. An expression
    such as ``__import__('os').system('...')`` is therefore the string it is, and nothing runs.
    """
    if not isinstance(text, str):
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass
    else:
        return value if value is None or isinstance(value, _VALUE_TYPES) else text
    stripped = text.strip()
    if stripped.lower() in _WORDS:
        return _WORDS[stripped.lower()]
    if stripped[:1] in ("[", "{"):
        try:
            value = yaml.load(stripped, Loader=SafeConfigLoader)
        except (yaml.YAMLError, RecursionError):
            return text
        if isinstance(value, (list, dict)):
            return value
    return text


def parse_cmd_args(args):
    """``--key=value`` strings as a dict of :func:`parse_value` values.

    Raises:
        ConfigError: an argument not of the form ``--key=value``, or a key given twice with different values.
    """
    from recbole_gemirec.errors import ConfigError

    settings, raw = {}, {}
    for arg in args:
        key, sep, text = arg[2:].partition("=") if arg.startswith("--") else ("", "", "")
        if not sep or not key:
            raise ConfigError(f"unrecognised argument {arg!r}; settings take the form --key=value")
        if key in raw and raw[key] != text:
            raise ConfigError(f"--{key} is given twice with different values ({raw[key]!r} and {text!r})")
        raw[key] = text
        settings[key] = parse_value(text)
    return settings


# RecBole models that evaluate a configuration string as Python code, and the values they may take.
_EVALUATED_NAMES = {("KD_DAGFM", "teacher"): ("CrossNet", "CIN")}


class Config(RecBoleConfig):
    """RecBole ``Config`` for models of the extension and of RecBole alike.

    Args:
        model, dataset, config_file_list, config_dict: as in RecBole.
        cmd_args (list of str, optional): ``--key=value`` overrides, highest priority, as RecBole reads
            them from the command line. ``None`` means no command-line overrides (RecBole itself would
            read ``sys.argv``; a library must not).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = list(cmd_args or [])
        from recbole_gemirec.evaluator import register_metrics

        register_metrics()
        from recbole_gemirec.errors import ConfigError

        try:
            super().__init__(model, dataset, config_file_list, config_dict)
        except (ValueError, NotImplementedError, RuntimeError, TypeError, AttributeError) as err:
            # RecBole's own checks (topk, metric names, ranking and value metrics mixed, ...) fire while
            # it merges the layers, and a value of the wrong type (metrics: 5, valid_metric: 5, data_path: 5)
            # fails there with a TypeError or AttributeError; the keys RecBole reads while merging are
            # checked here with our message, anything else becomes one clear line too.
            if isinstance(err, ConfigError):
                raise
            if getattr(self, "final_config_dict", None) is not None:
                from recbole_gemirec.validation import check_evaluation_keys

                check_evaluation_keys(self.final_config_dict)  # the precise message, where we know the key
            raise ConfigError(f"configuration refused by RecBole: {' '.join(str(err).split())}") from None
        self.recipe_keys = self._apply_recipe()
        self._check_evaluated_names()
        from recbole_gemirec.validation import validate_config

        validate_config(self)  # every key checked before any data is read (docs/reliability.md)

    def _apply_recipe(self):
        """The keys a model's recipe set: an extension model that declares ``apply_recipe`` (GemiRec's
        ``recipe`` key) puts its recipe's values in place of its YAML defaults wherever the user set nothing,
        before anything is checked; the user's own settings always win."""
        from recbole_gemirec.utils import extension_model

        apply = getattr(extension_model(self.model), "apply_recipe", None)
        return tuple(apply(self.final_config_dict, self.external_config_dict)) if apply else ()

    def _set_default_parameters(self):
        """RecBole's, except that a ``data_path`` the user sets is read for ml-100k too. RecBole always reads
        ml-100k from the copy it ships and drops the user's ``data_path`` without a word, which would train on
        other data than the user named (a modified ml-100k, or a path that does not exist, which is then
        refused like for any other dataset). Without a ``data_path`` of the user's, the shipped copy is read."""
        super()._set_default_parameters()
        user_path = self.external_config_dict.get("data_path")
        if self.dataset == "ml-100k" and isinstance(user_path, str):
            self.final_config_dict["data_path"] = os.path.join(user_path, self.dataset)

    def _build_yaml_loader(self):
        """The safe YAML loader for every config file (RecBole's is ``yaml.FullLoader``)."""
        return SafeConfigLoader

    def _load_config_files(self, file_list):
        """RecBole's file layer, read with the safe loader (:func:`read_config_files`)."""
        return read_config_files(file_list, self.yaml_loader)

    def _load_variable_config_dict(self, config_dict):
        """``config_dict`` as given. RecBole evaluates its string values (``_convert_config_dict``); a
        string here (from a checkpoint, a hyper-parameter file, a caller) stays that string."""
        return dict(config_dict) if config_dict else {}

    def _load_cmd_line(self):
        """The ``cmd_args`` overrides, each value read as data by :func:`parse_value` (RecBole reads
        ``sys.argv`` and evaluates every value)."""
        return parse_cmd_args(self._cmd_args)

    def _check_evaluated_names(self):
        """Refuse values that a RecBole model would pass to ``eval`` unless they are the names it expects."""
        from recbole_gemirec.errors import ConfigError

        for (model, key), allowed in _EVALUATED_NAMES.items():
            if self.model == model and key in self.final_config_dict and self.final_config_dict[key] not in allowed:
                raise ConfigError(f"{key}={self.final_config_dict[key]!r} is not allowed for {model}: "
                                  f"allowed: {', '.join(allowed)}")

    def _init_device(self):
        """RecBole's device setup; a distributed process (``local_rank`` set by
        :func:`recbole_gemirec.quick_start.run`) joins its process group with NCCL on GPUs and gloo on
        CPUs (RecBole hard-codes NCCL; see :mod:`recbole_gemirec.distributed`)."""
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        from recbole_gemirec.distributed import init_distributed

        init_distributed(self.final_config_dict)

    def _get_model_and_dataset(self, model, dataset):
        from recbole_gemirec.utils import get_model

        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "model is not set: give it as an argument, in a config file, in config_dict or as --model=NAME"
                )
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError(
                    "dataset is not set: give it as an argument, in a config file, in config_dict or as --dataset=NAME"
                )
        if not is_plain_name(dataset):  # RecBole joins it into file, folder and log-file paths
            from recbole_gemirec.errors import ConfigError

            raise ConfigError(f"dataset={dataset!r} is not allowed: RecBole reads <data_path>/<dataset>/<dataset>.inter "
                              "and names log files after it; allowed: a plain name without '/' or a leading '.' "
                              "(ml-100k, tiny); put the folder's parent in data_path")
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        """RecBole's internal layers, then the extension's model file, then its dataset file (dataset
        settings win over model defaults, as in RecBole's own layering)."""
        super()._load_internal_config_dict(model, model_class, dataset)
        self._update_from(model_properties(model))
        dataset_values = self._update_from(dataset_properties(dataset))
        self.parameters["Dataset"] += [k for k in dataset_values if k not in self.parameters["Dataset"]]
        self._drop_negatives_for_ce_loss()

    def _update_from(self, path):
        """Merge one of the extension's YAML files into the internal config; return its values."""
        if not path.is_file():
            return {}
        with open(path, "r", encoding="utf-8") as f:
            values = yaml.load(f.read(), Loader=self.yaml_loader) or {}
        self.internal_config_dict.update(values)
        return values

    def _drop_negatives_for_ce_loss(self):
        """Sequential models trained with ``loss_type: CE`` score the whole catalogue and take no sampled
        negatives, but RecBole's ``overall.yaml`` asks for one and then rejects the combination
        (``train_neg_sample_args ... should be None when the loss_type is CE``): ``run_recbole`` fails for
        SASRec out of the box. Unless the user set ``train_neg_sample_args`` themselves, drop the default."""
        from recbole.utils import ModelType

        loss_type = self.external_config_dict.get("loss_type", self.internal_config_dict.get("loss_type"))
        if (
            self.internal_config_dict.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and loss_type == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            self.internal_config_dict["train_neg_sample_args"] = None
