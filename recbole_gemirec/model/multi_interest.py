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

# Items scored per block in max_interest_scores: bounds the [B, K, block] temporary.
ITEM_BLOCK = 65536


def max_interest_scores(interests, items, block=ITEM_BLOCK):
    """Score every item for every user as the max over interests: ``[B, K, D] x [N, D] -> [B, N]``.

    Items are processed in blocks so memory is O(B * K * block), not O(B * K * N). Each block is one matrix
    product of the B * K queries with the block's items, reduced over K straight into the result (a
    catalogue of one block is returned as computed, without a copy).
    """
    batch, k, dim = interests.shape
    queries = interests.reshape(batch * k, dim)
    if items.shape[0] <= block:
        return (queries @ items.T).view(batch, k, -1).amax(dim=1)
    scores = interests.new_empty((batch, items.shape[0]))
    for start in range(0, items.shape[0], block):
        part = items[start:start + block]
        torch.amax((queries @ part.T).view(batch, k, -1), dim=1, out=scores[:, start:start + part.shape[0]])
    return scores


def catalogue_logsumexp(queries, items, block=ITEM_BLOCK):
    """``log sum_i exp(q . v_i)`` over the catalogue for every query ``[B, K, D] x [N, D] -> [B, K]``, in
    item blocks (memory O(B * K * block)): the normaliser of each query's softmax over items."""
    total = None
    for start in range(0, items.shape[0], block):
        part = torch.logsumexp(torch.einsum("bkd,nd->bkn", queries, items[start:start + block]), dim=-1)
        total = part if total is None else torch.logaddexp(total, part)
    return total


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
    :meth:`check_dataset`. Defaults stay in the model's YAML, as in RecBole; :meth:`setting` reads a key
    with that default, for a configuration that did not load the YAML (RecBole's own ``Config`` given the
    model class).
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

    def interest_vectors(self, interaction):
        """The K interest vectors of each user in the batch, ``[B, K, D]``."""
        raise NotImplementedError

    def item_embeddings(self):
        """The item embedding table ``[n_items, D]`` that interests are scored against."""
        return self.item_embedding.weight

    def predict(self, interaction):
        interests = self.interest_vectors(interaction)
        target = self.item_embeddings()[interaction[self.ITEM_ID]]
        return torch.einsum("bkd,bd->bk", interests, target).max(dim=1).values

    def full_sort_predict(self, interaction):
        return max_interest_scores(self.interest_vectors(interaction), self.item_embeddings())
