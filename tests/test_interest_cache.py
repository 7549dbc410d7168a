"""Interest selection under the code limit and the interest cache (docs/design.md §2.4)."""

import torch

from recbole_gemirec.model.interest_cache import fill_missing, history_frequency_scores, select_interests
from recbole_gemirec.model.interest_dictionary import InterestDictionary

SIZES = [4, 3, 2]


def codes_of_factory():
    dictionary = InterestDictionary(8, SIZES, 4, 0.25)
    return dictionary.codes_of, dictionary.interest_ids, dictionary.n_interests


def test_never_more_than_k_and_never_a_codeword_more_than_epsilon_times():
    codes_of, _, n = codes_of_factory()
    g = torch.Generator().manual_seed(0)
    for k, eps in ((5, 1), (5, 2), (3, 3), (8, 2)):
        scores = torch.randn(64, n, generator=g)
        chosen = select_interests(scores, codes_of, k, eps)
        assert chosen.shape == (64, k)
        for row in chosen:
            kept = row[row >= 0]
            assert len(set(kept.tolist())) == len(kept)
            codes = codes_of(kept)
            for level in range(len(SIZES)):
                assert torch.bincount(codes[:, level]).max().item() <= eps


def test_walks_the_ranking_in_order_skipping_what_breaks_the_limit():
    codes_of, interest_ids, n = codes_of_factory()
    ranking = [interest_ids(torch.tensor(c)).item() for c in ([0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 2, 1], [2, 0, 0])]
    scores = torch.full((1, n), -5.0)
    for rank, interest in enumerate(ranking):
        scores[0, interest] = 10.0 - rank
    chosen = select_interests(scores, codes_of, k=3, code_limit=2)[0].tolist()
    # [0,0,1] would be a second use of level-1 code 0 (fine) and of level-2 code 0 (fine) -> kept;
    # [0,1,0] would be a third use of level-1 code 0 -> skipped.
    assert chosen == [ranking[0], ranking[1], ranking[3]]


def _walked_by_hand(scores, codes_of, k, code_limit, n_candidates):
    """The rule, one row at a time: down the ranking, keep an interest that may be taken if no codeword of it has
    been used code_limit times by the kept ones, until K are kept."""
    chosen = []
    for row in scores:
        top_scores, top_ids = row.topk(n_candidates)
        kept, uses = [], {}
        for score, interest, code in zip(top_scores.tolist(), top_ids.tolist(), codes_of(top_ids).tolist()):
            if len(kept) < k and score > float("-inf") and all(uses.get((l, c), 0) < code_limit for l, c in enumerate(code)):
                kept.append(interest)
                for level, c in enumerate(code):
                    uses[(level, c)] = uses.get((level, c), 0) + 1
        chosen.append(kept + [-1] * (k - len(kept)))
    return torch.tensor(chosen)


def test_every_row_keeps_what_the_rule_walked_by_hand_keeps_whether_or_not_the_limit_binds():
    """Rows whose first K candidates already keep the limit are taken at once, the others walked: both must keep
    what the rule keeps, in a batch that mixes them, with interests never to take, rows with none, and fewer
    candidates than K."""
    codes_of, _, n = codes_of_factory()
    g = torch.Generator().manual_seed(5)
    for k, eps, candidates in ((3, 1, None), (5, 2, None), (4, 3, None), (8, 2, None), (6, 2, 4), (2, 1, 20)):
        scores = torch.randn(40, n, generator=g)
        scores[:10] += 4.0 * (codes_of(torch.arange(n))[:, 0] == 0)  # top interests sharing a codeword: it binds
        scores[torch.rand(40, n, generator=g) < 0.3] = float("-inf")
        scores[7] = float("-inf")
        chosen = select_interests(scores, codes_of, k, eps, candidates)
        want = _walked_by_hand(scores, codes_of, k, eps, min(candidates or k * 32, n))
        assert torch.equal(chosen, want), (k, eps, candidates)
        assert (chosen[7] == -1).all()


def test_rows_that_cannot_be_filled_are_marked_and_filled_from_the_first():
    codes_of, _, n = codes_of_factory()
    scores = torch.full((1, n), float("-inf"))
    scores[0, 5] = 1.0
    chosen = select_interests(scores, codes_of, k=3, code_limit=3)
    assert chosen.tolist() == [[5, -1, -1]]
    assert fill_missing(chosen).tolist() == [[5, 5, 5]]


def test_one_level_interests_are_the_k_best_that_may_be_taken_as_the_walk_would_keep_them():
    """One-level interests (categories) are their own codewords, so the limit never binds: the shortcut must
    keep what the walk keeps, here the walk over a second level that never binds either."""
    g = torch.Generator().manual_seed(3)
    one_level = lambda ids: ids.unsqueeze(-1)  # noqa: E731
    with_free_level = lambda ids: torch.stack([ids, torch.zeros_like(ids)], dim=-1)  # noqa: E731
    for n, k in ((19, 10), (6, 10), (40, 5)):  # fewer interests than K too
        scores = torch.randn(32, n, generator=g)
        scores[torch.rand(32, n, generator=g) < 0.4] = float("-inf")  # interests never to take
        fast = select_interests(scores, one_level, k, code_limit=1)
        walked = select_interests(scores, with_free_level, k, code_limit=k)
        assert fast.shape == (32, k)
        assert torch.equal(fast, walked)


def test_one_level_ties_go_to_the_lower_interest_id():
    """Equal scores (two interests with as many items of a history) are ordered by interest id, so every runtime
    that serves the model (torch, ONNX Runtime) chooses the same K."""
    scores = torch.tensor([[0.5, 2.0, 1.0, 2.0, 1.0, 1.0, float("-inf")]])
    chosen = select_interests(scores, lambda ids: ids.unsqueeze(-1), 4, code_limit=1)
    assert chosen.tolist() == [[1, 3, 2, 4]]
    reversed_ids = select_interests(scores.flip(1), lambda ids: ids.unsqueeze(-1), 4, code_limit=1)
    assert reversed_ids.tolist() == [[3, 5, 1, 2]]  # the same scores read backwards: still the lower ids first


def test_history_frequency_ranks_by_count_then_recency():
    history = torch.tensor([[3, 1, 3, 2, 1, -1]])
    scores = history_frequency_scores(history, 6)
    order = scores[0].argsort(descending=True).tolist()
    assert order[:3] == [1, 3, 2]  # 1 and 3 twice, 1 more recently; then 2
    assert torch.isinf(scores[0, 0]) and torch.isinf(scores[0, 5])
