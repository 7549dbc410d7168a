"""GemiRec's configuration: its stages and the rules of its keys (the defaults are in
``properties/model/GemiRec.yaml``, as for every RecBole model; docs/design.md §2 and docs/reliability.md).

:class:`~recbole_gemirec.model.gemirec.GemiRec` exposes :data:`CONFIG_RULES`, :data:`RELATIONS` and
:func:`check_relations` as its ``CONFIG_RULES`` / ``CONFIG_RELATIONS`` / ``check_config``, which
:mod:`recbole_gemirec.validation` reads like any model's.
"""

import difflib
import math

from recbole_gemirec.config_specs import (
    Boolean, Either, Integer, ListOf, OneOf, Optional, Real, Spec, String, fail,
)
from recbole_gemirec.errors import ConfigError

STAGES = ("retrieval", "dictionary", "joint")

# The generator's output layer has one logit per interest (the product of the sub-dictionary sizes);
# past this many it no longer fits a sensible memory budget (docs/design.md §2.1 uses 16,384).
MAX_INTERESTS = 1 << 20


def stage_budget(value):
    """``stage_epochs`` as a mapping: the list form ``[retrieval, dictionary, joint]`` is turned into one."""
    if isinstance(value, (list, tuple)):
        return dict(zip(STAGES, value))
    return value


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

    def why(self, value):
        return _stage_epochs_detail(value)


# recipe: which set of defaults GemiRec starts from (docs/gemirec.md, recipes). "paper" is the paper's model
# (the learned dictionary, the GPT, the fused queries merged by max); "factorised" is the configuration that
# measured best at convergence where items have a category field (beyond the paper); "auto", the default,
# is factorised where interest_category_field names an item field and paper where it names none.
RECIPES = ("auto", "paper", "factorised")
# The factorised recipe's values: properties/presets/<this file>, the one place they are written (a user can
# also add that file by hand, as before the recipe existed).
FACTORISED_PRESET = "GemiRec-factorised-categories.yaml"
# Most values the factorised recipe's masking columns (items x interests, one float each) may hold: 2^28, 1 GiB of
# float32, e.g. 268 categories at a million items. A larger table sends the run back to the paper's recipe.
MASKING_TABLE_CELLS = 1 << 28
# A checkpoint written before the recipe key existed was trained from the paper's defaults and its own settings.
CHECKPOINT_DEFAULTS = {"recipe": "paper"}


# (key, value, whether the rest of the configuration rules the recipe's value out): where a key the user set makes a
# value the recipe set impossible (the relations below), the recipe's value gives way to this one, in this order.
RECIPE_YIELDS = (
    ("interest_masking", False, lambda config: config.get("interest_weighting") == "none"),
    ("within_interest_ranking", "query", lambda config: config.get("interest_masking") is not True),
)


def recipe_of(config):
    """``paper`` or ``factorised``: the recipe ``config`` (a mapping) resolves to, ``None`` for a value
    :data:`RECIPES` does not allow (the key's rule refuses it)."""
    recipe = config.get("recipe")
    if recipe == "auto":
        return "factorised" if config.get("interest_category_field") else "paper"
    return recipe if recipe in ("paper", "factorised") else None


def recipe_values(recipe):
    """The settings recipe ``recipe`` puts in place of the YAML defaults (none for ``paper``)."""
    if recipe != "factorised":
        return {}
    from recbole_gemirec.config import read_config_files
    from recbole_gemirec.resources import resource_dir

    return read_config_files([resource_dir("properties") / "presets" / FACTORISED_PRESET])


def apply_recipe(final, external):
    """Resolve ``recipe`` in the merged configuration ``final`` and put its values in place of the YAML
    defaults for every key the user did not set (``external``: the config files, ``config_dict`` and the
    command line). Returns the keys the recipe set; ``final["recipe"]`` becomes the resolved name, so logs,
    result files and checkpoints say which recipe ran."""
    recipe = recipe_of(final)
    if recipe is None:
        return ()
    final["recipe"] = recipe
    values = recipe_values(recipe)
    keys = tuple(key for key in values if key not in external)
    final.update({key: values[key] for key in keys})
    for key, value, conflicts in RECIPE_YIELDS:  # a recipe value that a setting of the user's rules out gives way
        if key in keys and conflicts(final):
            final[key] = value
    return keys


CONFIG_RULES = {
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
    "recipe": OneOf(*RECIPES),
    "interest_source": OneOf("learned", "category", "auto"),
    "joint_training": Boolean(),
    "interest_predictor": OneOf("gpt", "frequency", "transition"),
    "novel_interest_share": Either(OneOf("auto"), Real(0, 1, max_open=True)),
    "current_interest_share": Either(OneOf("auto"), Real(0, 1, max_open=True)),
    "within_interest_ranking": OneOf("query", "popularity", "auto"),
    "retrieval_interests": OneOf("target", "predicted", "both"),
    "item_negatives": Optional(OneOf("full", "sampled", "in_batch")),
    "logq_correction": Boolean(),
    "neg_sample_num": Integer(1),
    "interest_levels": Optional(Integer(1)),
    "joint_codes": OneOf("frozen", "live"),
    "interest_weighting": OneOf("none", "log_prob", "log_joint"),
    "fusion": OneOf("residual", "concat"),
    "fusion_interest_embedding": Boolean(),
    "fusion_history": Boolean(),
    "joint_backbone_lr_scale": Real(0),
    "user_query": Boolean(),
    "user_query_log_weight": Real(-20, 0),
    "interest_masking": Either(OneOf("auto"), Boolean()),
    "target_softmax": OneOf("catalogue", "interest"),
    "generator_history_prior": Boolean(),
    "interest_distribution": OneOf("softmax", "repeat_explore"),
    "interest_prior_weight": Either(OneOf("auto"), Real(0)),
}

# Relations between keys, checked by check_relations and listed in docs/reliability.md.
RELATIONS = [
    "gpt_hidden is divisible by gpt_heads",
    "embedding_size is divisible by tower_heads",
    f"the number of interests (product of interest_dictionary_sizes) is at most {MAX_INTERESTS}",
    "interest_num is at most the number of interests",
    "interest_levels is at most the number of dictionary levels (1 under interest_source: category)",
    "interest_predictor: transition needs at most 4096 interests at the interest granularity (checked with the data)",
    "loss_weights has at least one positive weight",
    "stage_epochs names only retrieval, dictionary, joint and has at least one positive budget",
    "interest_source: category needs interest_category_field",
    "recipe: factorised needs interest_category_field",
    "interest_masking (true or auto) needs interest_weighting log_prob or log_joint",
    "within_interest_ranking popularity or auto needs interest_masking: true",
    "interest_category_field is a token/token_seq field in the header of <dataset>.item",
    "every user_feature_fields entry is a field in the header of <dataset>.user",
]


def check_relations(config):
    """The checks between GemiRec's keys (:data:`RELATIONS`), on the merged configuration. A refusal that names
    a key the recipe set says so, and how to start from the paper's defaults instead."""
    try:
        _check_relations(config)
    except ConfigError as err:
        named = [key for key in getattr(config, "recipe_keys", ()) if key in str(err)]
        if not named:
            raise
        raise ConfigError(f"{err} ({', '.join(named)} set by recipe {config['recipe']}; --recipe=paper starts "
                          "from the paper's defaults)") from None


def _check_relations(config):
    from recbole_gemirec.validation import check_category_field, check_user_feature_fields

    hidden, heads = config["gpt_hidden"], config["gpt_heads"]
    if hidden % heads:
        divisors = ", ".join(str(d) for d in range(1, hidden + 1) if hidden % d == 0)
        fail("gpt_heads", heads, f"a divisor of gpt_hidden={hidden} ({divisors})",
             f"gpt_hidden={hidden} is not divisible by it")
    size, heads = config["embedding_size"], config["tower_heads"]
    if size % heads:
        divisors = ", ".join(str(d) for d in range(1, size + 1) if size % d == 0)
        fail("tower_heads", heads, f"a divisor of embedding_size={size} ({divisors})",
             f"embedding_size={size} is not divisible by it")
    sizes = config["interest_dictionary_sizes"]
    n_interests = math.prod(int(s) for s in sizes)
    if n_interests > MAX_INTERESTS:
        fail("interest_dictionary_sizes", sizes, f"sizes whose product is at most {MAX_INTERESTS}",
             f"they make {n_interests} interests, one generator logit each")
    if config["interest_source"] != "category" and config["interest_num"] > n_interests:
        fail("interest_num", config["interest_num"], f"an integer from 1 to {n_interests}",
             f"interest_dictionary_sizes={sizes} give only {n_interests} interests")
    levels = config["interest_levels"]
    most = 1 if config["interest_source"] == "category" else len(sizes)
    if levels is not None and int(levels) > most:
        fail("interest_levels", levels, f"~ or an integer from 1 to {most}",
             "interest_source: category has one level" if config["interest_source"] == "category" else
             f"interest_dictionary_sizes={sizes} has {len(sizes)} levels, and an interest is a prefix of them")
    weights = config["loss_weights"]
    if not any(float(w) > 0 for w in weights):
        fail("loss_weights", weights, "three non-negative weights [dictionary, generator, retrieval] with at "
             "least one positive", "with every weight 0 the joint stage learns nothing")
    if config["recipe"] == "factorised" and not config["interest_category_field"]:
        fail("recipe", "factorised", "'paper', 'auto', or 'factorised' together with interest_category_field",
             "the factorised recipe's interests are the values of an item category field, and none is named")
    if config["interest_source"] == "category" and not config["interest_category_field"]:
        fail("interest_source", "category", "'learned', 'auto', or 'category' together with interest_category_field",
             "interest_category_field is not set, so there is no category to use as the dictionary")
    if config["interest_masking"] not in (False, None) and config["interest_weighting"] == "none":
        fail("interest_masking", config["interest_masking"], "false, or true/auto together with interest_weighting "
             "log_prob or log_joint", "masked scoring adds each query's normaliser to its bias column, which "
             "interest_weighting: none leaves out")
    ranking = config["within_interest_ranking"]
    if ranking not in (None, "query") and config["interest_masking"] is not True:
        fail("within_interest_ranking", ranking, "query, or popularity/auto together with interest_masking: true",
             f"interest_masking is {config['interest_masking']!r}: an interest ranks its own items by popularity "
             "only where its query scores nothing else")
    check_category_field(config, "interest_category_field")
    check_user_feature_fields(config)


def category_fields(config):
    """``{field: required}``: the item category field GemiRec reads; required under ``interest_source:
    category``, where it is the dictionary, optional otherwise (it only starts the first level)."""
    field = config["interest_category_field"]
    return {field: config["interest_source"] == "category"} if field else {}


def check_dataset(config, dataset):
    """``interest_num`` against the interests ``interest_source: category`` gives, and the transition
    predictor's table size, known once the data is loaded; first the recipe is fitted to the data
    (:func:`_fit_recipe_to_data`)."""
    _fit_recipe_to_data(config, dataset)
    _check_transition_size(config, dataset)
    if config["interest_source"] != "category":
        return
    n_interests = _category_interests(config, dataset)
    if n_interests is not None and config["interest_num"] > n_interests:
        raise ConfigError(
            f"interest_num={config['interest_num']!r} is not allowed: interest_source='category' gives "
            f"{n_interests} interests ({n_interests - 1} categories of {config['interest_category_field']!r} "
            f"and 'unknown'); allowed: an integer from 1 to {n_interests}"
        )


def _fit_recipe_to_data(config, dataset):
    """Where the recipe, not the user, set a value the loaded data does not allow (``config.recipe_keys``), the
    recipe adapts instead of the run being refused, and the log says so: a category field too large for the
    transition table, or for the masking columns, sends the run back to the paper's recipe; a K above the
    interests the field gives is lowered to them (under ``interest_source: auto`` too, so the categories stay a
    candidate)."""
    if "interest_predictor" in getattr(config, "recipe_keys", ()) and config["interest_predictor"] == "transition":
        try:
            _check_transition_size(config, dataset)
        except ConfigError as err:
            _back_to_paper(config, str(err))
    if "interest_masking" in getattr(config, "recipe_keys", ()) and config["interest_masking"] is True:
        cells = _masking_table_cells(config, dataset)
        if cells > MASKING_TABLE_CELLS:
            _back_to_paper(config, f"interest masking's one-hot item columns would hold {cells:,} values, more than "
                                   f"{MASKING_TABLE_CELLS:,}: items x the category field's interests")
    if "interest_num" not in getattr(config, "recipe_keys", ()) or config["interest_source"] not in ("category", "auto"):
        return
    n_interests = _category_interests(config, dataset)
    if n_interests is not None and config["interest_num"] > n_interests:
        _recipe_note(f"interest_num lowered from {config['interest_num']} to {n_interests}: the recipe's K is more "
                     f"than the {n_interests} interests {config['interest_category_field']!r} gives")
        config["interest_num"] = n_interests


def _category_interests(config, dataset):
    """The interests the category field gives (its values and "unknown"), ``None`` without a loaded field."""
    from recbole_gemirec.data.checks import category_ids

    field = config["interest_category_field"]
    categories = category_ids(dataset, field) if field else None
    if categories is None:
        return None
    return int(categories.max().item()) + 1 if categories.numel() else 1


def _masking_table_cells(config, dataset):
    """Items x interests: the size of the one-hot interest columns ``interest_masking`` adds to the item table
    (and to a serving index), for category interests (0 where the field is not loaded)."""
    n_interests = _category_interests(config, dataset) if config["interest_source"] == "category" else None
    return 0 if n_interests is None else int(dataset.item_num) * n_interests


def _back_to_paper(config, reason):
    """Undo the factorised recipe where the data does not allow it: its keys get the YAML defaults back."""
    from recbole_gemirec.model.multi_interest import model_defaults

    defaults = model_defaults("GemiRec")
    for key in config.recipe_keys:
        config[key] = defaults.get(key)
    config["recipe"] = "paper"
    config.recipe_keys = ()
    _recipe_note(f"the factorised recipe does not fit this data ({reason}); the paper's recipe is used")


def _recipe_note(message):
    from logging import getLogger

    from recbole.utils import set_color

    getLogger().warning(set_color("recipe: ", "yellow") + message)


def _check_transition_size(config, dataset):
    """``interest_predictor: transition`` holds an interests x interests table: refuse an interest set (the
    category field's values and "unknown", or the learned prefix of ``interest_levels``, or its default for this
    catalogue) with more interests than it allows."""
    if config["interest_predictor"] != "transition":
        return
    from recbole_gemirec.model.gemirec_queries import default_interest_levels
    from recbole_gemirec.model import interest_transitions

    limit = interest_transitions.MAX_TRANSITION_INTERESTS
    if config["interest_source"] == "category":
        n_interests = _category_interests(config, dataset) or 1
        if n_interests > limit:
            raise ConfigError(
                f"interest_predictor='transition' is not allowed with interest_source='category' on "
                f"{config['interest_category_field']!r}: {n_interests} interests, and its transition table is "
                f"interests x interests; allowed: at most {limit} interests (another predictor, or a coarser field)")
        return
    sizes = [int(s) for s in config["interest_dictionary_sizes"]]
    levels = config["interest_levels"]
    levels = min(default_interest_levels(sizes, dataset.item_num) if levels is None else int(levels), len(sizes))
    n_interests = math.prod(sizes[:levels])
    if n_interests > limit:
        raise ConfigError(
            f"interest_predictor='transition' is not allowed with interest_levels={levels} of "
            f"interest_dictionary_sizes={sizes}: {n_interests} interests, and its transition table is interests x "
            f"interests; allowed: at most {limit} interests (fewer interest_levels)")
