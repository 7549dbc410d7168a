"""The interface every multi-interest model of the extension shares (docs/design.md §3).

A multi-interest model exposes two things: the K interest vectors of a batch of users,
``interest_vectors(interaction) -> [B, K, D]``, and the item embedding table,
``item_embeddings() -> [n_items, D]`` (row 0 is padding). An item's score for a user is the inner
product with each interest, and the user's score is the maximum over interests. Ranking by that maximum
is the same as ComiRec's "each interest retrieves its own top-N, merge by score, drop duplicates".

``full_sort_predict``, ``predict`` and the AMR/CUR metrics are written once against this interface.
RecBole's single-vector models do not implement it and count as K = 1.
"""

from functools import lru_cache

import torch
import yaml
from recbole.model.abstract_recommender import SequentialRecommender

from recbole_gemirec.model.scoring import ITEM_BLOCK, catalogue_logsumexp, max_interest_scores  # noqa: F401 (re-exported)

def interest_view(model, interaction):
    """``(interests [B, K, D], items [N, D])`` for a multi-interest model, ``None`` for any other (K = 1)."""
    if not isinstance(model, MultiInterestRecommender):
        return None
    return model.interest_vectors(interaction), model.item_embeddings()


@lru_cache(maxsize=None)
def model_defaults(model_name):
    """The defaults of ``properties/model/<model_name>.yaml`` (empty when the model ships none)."""
    from recbole_gemirec.resources import model_properties

    path = model_properties(model_name)
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f) or {}


class MultiInterestRecommender(SequentialRecommender):
    """Base class of GemiRec and the multi-interest baselines.

    Subclasses implement :meth:`interest_vectors` and own an ``item_embedding`` (``nn.Embedding``) or
    override :meth:`item_embeddings`; scoring is inherited.

    A model also describes its configuration and data needs here, for the generic checks
    (:mod:`recbole_gemirec.validation`, :mod:`recbole_gemirec.data.checks`), which know no model names:
    ``CONFIG_RULES`` (key -> :class:`~recbole_gemirec.config_specs.Spec`), ``CONFIG_RELATIONS`` (the
    cross-key rules in words) checked by :meth:`check_config`, :meth:`category_fields` and
    :meth:`check_dataset`; optionally ``apply_recipe(final, external)``, which the extension's ``Config``
    calls to put a set of values in place of the YAML defaults the user left alone, and
    ``CHECKPOINT_DEFAULTS``, the values of keys that a checkpoint written before they existed lacks.
    Defaults stay in the model's YAML, as in RecBole; :meth:`setting` reads a key with that default, for a
    configuration that did not load the YAML (RecBole's own ``Config`` given the model class).
    """

    CONFIG_RULES = {}
    CONFIG_RELATIONS = ()

    def setting(self, config, key):
        """``config[key]``, or the default of ``properties/model/<Model>.yaml`` where the configuration has none."""
        value = config[key]
        return model_defaults(type(self).__name__).get(key) if value is None else value

    @classmethod
    def check_config(cls, config):
        """Checks between this model's keys on the merged configuration (raise ``ConfigError``)."""

    @classmethod
    def category_fields(cls, config):
        """``{item field: required}``: category fields the model reads from the item file."""
        return {}

    @classmethod
    def check_dataset(cls, config, dataset):
        """Checks of the configuration that need the loaded dataset (raise ``ConfigError``)."""

    def set_stage(self, stage):
        """Switch to training stage ``stage`` (a checkpoint restores the one it was saved in). Models
        trained in one stage have nothing to switch; GemiRec has three."""

    @property
    def has_interest_ids(self):
        """Whether each query belongs to an interest of a dictionary, so :meth:`query_interest_ids` names
        it (serving reports which interest retrieved an item): GemiRec in its joint stage."""
        return False

    def query_interest_ids(self, interaction):
        """Interest ids aligned with :meth:`interest_vectors`' queries ``[B, K]`` (-1: a query of no
        interest), where :attr:`has_interest_ids`."""
        raise NotImplementedError(f"{type(self).__name__} has no interest ids")

    def query_interest_log_probs(self, interaction):
        """log p(interest) aligned with :meth:`query_interest_ids` ``[B, K]`` (0 for a query of no
        interest), from the state :meth:`query_interest_ids` left, where :attr:`has_interest_ids`."""
        raise NotImplementedError(f"{type(self).__name__} has no interest ids")

    def interest_vectors(self, interaction):
        """The K interest vectors of each user in the batch, ``[B, K, D]``."""
        raise NotImplementedError

    # --- the query side alone, for serving from a history (recbole_gemirec/serving/live.py) -----------
    # A model that can answer a request from a history without RecBole builds everything its queries
    # depend on in build_query_parts(architecture), from plain JSON values; its remaining parts (loss,
    # caches, RecBole's fields) are built by __init__ around it.
    QUERY_KEYS = ()
    architecture = None

    def architecture_from(self, config):
        """The description :meth:`build_query_parts` builds from: the data's sizes and ``QUERY_KEYS``."""
        arch = {"n_items": int(self.n_items), "max_seq_length": int(self.max_seq_length)}
        arch.update({key: self.setting(config, key) for key in self.QUERY_KEYS})
        return arch

    def build_query_parts(self, arch):
        """Create the modules the queries depend on (models that serve live implement it)."""
        raise NotImplementedError(f"{type(self).__name__} does not build its query side on its own")

    def serving_architecture(self):
        """What :meth:`for_serving` needs to rebuild the query side (``None``: no live serving)."""
        return None if self.architecture is None else dict(self.architecture)

    @classmethod
    def for_serving(cls, architecture):
        """A query-only instance: the parts :meth:`build_query_parts` makes and nothing RecBole sets up
        (no dataset, no fields, no loss), in eval mode. It answers :meth:`queries_from_history`; load
        the model's weights into it with ``load_state_dict`` (its keys are the model's own)."""
        model = cls.__new__(cls)
        torch.nn.Module.__init__(model)
        model.build_query_parts(dict(architecture))
        return model.eval()

    def freeze_for_serving(self):
        """Called once the weights of a query-only instance are loaded for good: precompute what depends
        on the weights alone (nothing by default; GemiRec keeps its fusion's per-interest part)."""

    def retrieval_partitions(self):
        """How an exact index may score each query over a part of the catalogue only (``None``: every query
        scores the whole catalogue; GemiRec under ``interest_masking`` declares its interests)."""
        return None

    # Whether queries_from_history takes item_seq_len=None for unpadded histories ([B, T], T <= L, every row of T
    # items), computing them without a length or mask: the serving side then serves each history as it is, with a
    # function for L items and one for any shorter length (serving/live.py), a few operations fewer per request.
    UNPADDED_WITHOUT_LENGTH = False

    def queries_from_history(self, item_seq, item_seq_len, user_features=None, interests=None):
        """``(queries [B, K, D], interest ids aligned with them [B, K] or None)`` from histories laid out
        as RecBole's (``item_seq [B, L]`` left-aligned, zero-padded). ``user_features [B, F]`` and
        ``interests`` (``(ids, log-probabilities)`` of a stored interest cache) for models that use them;
        ``item_seq_len=None`` where the model declares :attr:`UNPADDED_WITHOUT_LENGTH` and no row is padded (``T``
        may then be below ``L``: every row holds ``T`` items)."""
        raise NotImplementedError(f"{type(self).__name__} does not compute queries from a history alone")

    def user_features_of(self, interaction):
        """The user-feature ids ``[B, F]`` the queries read, or ``None`` (no user features)."""
        return None

    def item_embeddings(self):
        """The item embedding table ``[n_items, D]`` that interests are scored against."""
        return self.item_embedding.weight

    def predict(self, interaction):
        interests = self.interest_vectors(interaction)
        target = self.item_embeddings()[interaction[self.ITEM_ID]]
        return torch.einsum("bkd,bd->bk", interests, target).max(dim=1).values

    def full_sort_predict(self, interaction):
        return max_interest_scores(self.interest_vectors(interaction), self.item_embeddings())
