"""Building blocks shared by the multi-interest baselines (ComiRec-SA, ComiRec-DR, MIND, REMI).

This is a sub-package, not a model module: :func:`recbole_gemirec.utils.get_model` looks models up as
``recbole_gemirec.model.<name>``, and no model is called ``layers``.

- :mod:`.extractors` -- the self-attentive extractor (ComiRec §3.2.2), ``squash`` and capsule dynamic
  routing (ComiRec §3.2.1, MIND §3.3);
- :mod:`.readout` -- training-time selection of the interest that meets the target (ComiRec §3.3,
  MIND's label-aware attention §3.4);
- :mod:`.losses` -- softmax over the catalogue or over negatives shared by the batch, with REMI's
  interest-aware hard-negative weighting, and REMI's routing regulariser.
"""

from recbole_gemirec.model.layers.extractors import ROUTING_RULES, SelfAttentiveExtractor, dynamic_routing, squash
from recbole_gemirec.model.layers.losses import SharedNegativeSoftmaxLoss, routing_variance_penalty
from recbole_gemirec.model.layers.readout import interest_readout
from recbole_gemirec.model.layers.common import MultiInterestBaseline

__all__ = [
    "MultiInterestBaseline",
    "ROUTING_RULES",
    "SelfAttentiveExtractor",
    "SharedNegativeSoftmaxLoss",
    "dynamic_routing",
    "interest_readout",
    "routing_variance_penalty",
    "squash",
]
