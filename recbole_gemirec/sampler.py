"""Interest negatives for the retrieval loss (GemiRec paper §3.4; docs/design.md §2.3).

RecBole's samplers draw *items*; GemiRec's retrieval loss also needs *interests* that are wrong for the
target item. :class:`InterestNegativeSampler` draws them per training example:

* hard negatives (``hard_interest_negatives``): the interest generator's highest-probability interests
  other than the target's own, the ones most easily confused with it;
* easy negatives (``easy_interest_negatives``): the interests of uniformly drawn random items, so they
  are interests actually in use rather than empty cells of the 16,384-cell product.
"""

import torch


class InterestNegativeSampler:
    """Draws ``[B, hard + easy]`` negative interest ids.

    Args:
        hard_num: hard negatives per example (config ``hard_interest_negatives``).
        easy_num: easy negatives per example (config ``easy_interest_negatives``).
        n_items: number of item ids; easy negatives come from items 1..n_items-1.
    """

    def __init__(self, hard_num, easy_num, n_items):
        self.hard_num = int(hard_num)
        self.easy_num = int(easy_num)
        self.n_items = int(n_items)

    def hard(self, generator_logits, positive_ids):
        """Top generator interests excluding the positive: ``[B, hard_num]``."""
        if self.hard_num == 0:
            return positive_ids.new_empty((positive_ids.shape[0], 0))
        k = min(self.hard_num + 1, generator_logits.shape[1])
        top = generator_logits.detach().topk(k, dim=1).indices
        is_positive = top == positive_ids.unsqueeze(1)
        # Push the positive (if present) to the end, keep the order of the rest, take hard_num.
        order = torch.argsort(is_positive.to(torch.int8), dim=1, stable=True)
        return top.gather(1, order)[:, : min(self.hard_num, k - 1)]

    def easy(self, positive_ids, interest_ids_of_items):
        """Interests of random items: ``[B, easy_num]``; ``interest_ids_of_items`` maps item ids to ids.

        A random item often shares the target's interest (always, when interests are coarse); such a
        draw is no negative and comes back as ``-1``, which the loss leaves out.
        """
        if self.easy_num == 0:
            return positive_ids.new_empty((positive_ids.shape[0], 0))
        items = torch.randint(1, self.n_items, (positive_ids.shape[0], self.easy_num), device=positive_ids.device)
        ids = interest_ids_of_items(items)
        return ids.masked_fill(ids == positive_ids.unsqueeze(1), -1)

    def sample(self, generator_logits, positive_ids, interest_ids_of_items):
        """Hard then easy negatives, ``[B, hard + easy]``; none equals the positive (``-1`` = no negative
        drawn in that slot)."""
        return torch.cat([self.hard(generator_logits, positive_ids),
                          self.easy(positive_ids, interest_ids_of_items)], dim=1)
