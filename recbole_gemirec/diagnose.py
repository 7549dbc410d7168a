"""Why a multi-interest model ranks as it does: ``python -m recbole_gemirec.diagnose --checkpoint CK``.

Recall@N says how good a model is; these figures say where a multi-interest model wins or loses
(docs/gemirec.md, diagnostics). For every evaluated user of the split (valid or test) with targets T:

* **next-interest prediction** (GemiRec): the share of targets whose interest is among the top 1 / top 5
  interests of the generator, of the history's most frequent interests, and of the most popular
  interests, at each code level up to ``interest_levels`` (the generator's probabilities summed over
  the finer levels); and, for targets whose interest is absent from the history, the share the
  generator (or popularity) ranks in its top 5 among the absent interests;
* **cache coverage**: the share of targets whose interest is in the user's interest cache (the K
  interests actually scored);
* **Recall@N three ways**: with the model's own queries (what evaluation reports), with the best single
  query known in hindsight (the most hits of one query's own top-N), and, for GemiRec, with oracle
  interests (the K most frequent interests of the targets themselves, fused with the same user vector):
  oracle >> cache means the generator and cache are the bottleneck, best-single > merged means the
  merge of the K lists loses hits;
* **separation**: mean cosine between a user's queries, and (GemiRec) between each query and u;
* **novelty** (with a category field): CUR@N split by whether the cache holds the unseen-category
  target's interest (the generator proposed it) or not.

Rows that need GemiRec's parts are left out for other models; single-vector models count as K = 1.
"""

import argparse
import json
import sys

import torch
import torch.nn.functional as F

from recbole_gemirec.data.categories import first_category_tokens
from recbole_gemirec.model.interest_cache import interest_log_probs
from recbole_gemirec.model.interest_generator import InterestGenerator
from recbole_gemirec.model.multi_interest import MultiInterestRecommender, max_interest_scores

TOPN = (20, 50)


def _targets_of(positive_u, positive_i, batch):
    rows = [[] for _ in range(batch)]
    for row, item in zip(positive_u.tolist(), positive_i.tolist()):
        rows[row].append(item)
    return rows


def _hits_at(scores, targets, n):
    top = scores.topk(min(n, scores.shape[1]), dim=1).indices
    return [len(set(top[row].tolist()) & set(items)) for row, items in enumerate(targets)]


def _interest_hits(ranked_ids, target_ids, k):
    """Per user, how many of the targets' interests ``target_ids`` (list of lists) are in the top k."""
    top = ranked_ids[:, :k].tolist()
    return [sum(1 for t in targets if t in set(row)) for row, targets in zip(top, target_ids)]


def _level_ids(model, ids, level):
    """Interest ids (prefix of ``interest_levels``) -> ids of their first ``level`` levels."""
    codes = model.interest_codes(ids)[..., :level]
    return model.dictionary.interest_ids(codes)


def _marginal(model, probabilities, level):
    """Probabilities over ``interest_levels``-prefixes summed to ``level``-prefixes ``[B, n_level]``."""
    ids = _level_ids(model, torch.arange(probabilities.shape[1], device=probabilities.device), level)
    out = probabilities.new_zeros(probabilities.shape[0], model.dictionary.n_interests_at(level))
    return out.index_add_(1, ids, probabilities)


class _Sums:
    def __init__(self):
        self.values = {}

    def add(self, key, numerator, denominator):
        num, den = self.values.get(key, (0.0, 0.0))
        self.values[key] = (num + float(numerator), den + float(denominator))

    def result(self):
        return {key: round(num / den, 4) if den else None for key, (num, den) in sorted(self.values.items())}


@torch.no_grad()
def diagnose(model, eval_data, dataset, topn=TOPN):
    """The diagnostics of ``model`` on ``eval_data`` (a full-sort loader of the ``user`` or ``loo``
    protocol) as a flat ``{name: value}`` dict; see the module docstring."""
    model.eval()
    sums = _Sums()
    # the interest rows: a model that scores with identified interests (GemiRec in its joint stage)
    gemirec = isinstance(model, MultiInterestRecommender) and model.has_interest_ids
    category = _item_categories(dataset)
    popularity = None
    if gemirec:
        train_items = torch.as_tensor(dataset.inter_feat[dataset.iid_field]).long()
        counts = torch.bincount(train_items, minlength=model.n_items).float()
        interest_of_item = model.item_interest_ids(torch.arange(model.n_items))
        popularity = torch.zeros(model.n_interests).index_add_(0, interest_of_item[1:], counts[1:])
        for batched in eval_data:
            model.refresh_interest_cache(batched[0])
    for interaction, _, positive_u, positive_i in eval_data:
        batch = len(interaction)
        targets = _targets_of(positive_u, positive_i, batch)
        if not any(targets):
            continue
        n_targets = sum(len(t) for t in targets)
        scores = model.full_sort_predict(interaction).view(batch, -1)
        for n in topn:
            sums.add(f"recall@{n}/model", sum(h / len(t) for h, t in zip(_hits_at(scores, targets, n), targets) if t),
                     sum(1 for t in targets if t))
        if not isinstance(model, MultiInterestRecommender):
            continue
        queries, items = model.interest_vectors(interaction), model.item_embeddings()
        _best_single(sums, queries, items, targets, topn)
        _separation(sums, queries[..., : model.item_embedding.weight.shape[1]])  # without a bias column
        if gemirec:
            _gemirec_rows(sums, model, interaction, targets, n_targets, popularity, topn)
            if category is not None:
                _novelty(sums, model, interaction, targets, scores, category, topn)
    return sums.result()


def _best_single(sums, queries, items, targets, topn):
    """Recall@N of the best single query of each user, known in hindsight."""
    for n in topn:
        best = [0] * len(targets)
        for k in range(queries.shape[1]):
            hits = _hits_at(queries[:, k] @ items.t(), targets, n)
            best = [max(b, h) for b, h in zip(best, hits)]
        sums.add(f"recall@{n}/best_single_query", sum(b / len(t) for b, t in zip(best, targets) if t),
                 sum(1 for t in targets if t))


def _separation(sums, queries):
    """Mean cosine between the distinct queries of a user (1 = collapsed)."""
    k = queries.shape[1]
    if k < 2:
        return
    unit = F.normalize(queries, dim=-1)
    cosine = unit @ unit.transpose(1, 2)
    off = ~torch.eye(k, dtype=torch.bool, device=queries.device)
    sums.add("cosine/query_query", cosine[:, off].mean(dim=1).sum(), queries.shape[0])


def _gemirec_rows(sums, model, interaction, targets, n_targets, popularity, topn):
    users = interaction[model.USER_ID]
    target_ids = [model.item_interest_ids(torch.tensor(t)).tolist() if t else [] for t in targets]
    scores = model.interest_scores(interaction)
    probabilities = interest_log_probs(scores, model.interest_predictor).exp()
    item_seq = interaction[model.ITEM_SEQ]
    history = model.history_interest_ids(item_seq)
    frequency = InterestGenerator.history_counts(history, model.n_interests)
    for level in range(1, model.interest_levels + 1):
        level_targets = [_level_ids(model, torch.tensor(t), level).tolist() if t else [] for t in target_ids]
        rankings = {
            "generator": _marginal(model, probabilities, level),
            "frequency": _marginal(model, frequency, level),
            "popularity": _marginal(model, popularity.unsqueeze(0), level).expand(len(targets), -1),
        }
        for name, ranking in rankings.items():
            order = ranking.argsort(dim=1, descending=True)
            for k in (1, 5):
                sums.add(f"next_interest_hit@{k}/level{level}/{name}",
                         sum(_interest_hits(order, level_targets, k)), n_targets)
    _unseen_interest_rows(sums, target_ids, frequency > 0, probabilities, popularity)
    cached = model.interest_cache[users].tolist()
    sums.add("cache_holds_target_interest",
             sum(sum(1 for t in ts if t in set(row)) for ts, row in zip(target_ids, cached)), n_targets)
    # oracle: the K most frequent interests of the targets themselves
    oracle = []
    for ids, row in zip(target_ids, cached):
        ranked = [i for i, _ in sorted(((i, ids.count(i)) for i in set(ids)), key=lambda x: -x[1])]
        ranked = (ranked + row)[: model.interest_num] if ranked else row
        oracle.append(ranked)
    oracle = torch.tensor(oracle, dtype=torch.long)
    user = model.user_vector(interaction)
    # scored as the model scores its cache (u, bias, masking), the generator's probabilities of these interests
    oracle = oracle.to(user.device)
    oracle_log_prob = interest_log_probs(scores, model.interest_predictor).gather(1, oracle)
    oracle_queries = model.scoring_queries(oracle, oracle_log_prob, user, item_seq)
    oracle_scores = max_interest_scores(oracle_queries, model.item_embeddings())
    for n in topn:
        hits = _hits_at(oracle_scores, targets, n)
        sums.add(f"recall@{n}/oracle_interests", sum(h / len(t) for h, t in zip(hits, targets) if t),
                 sum(1 for t in targets if t))
    queries = model.fused_queries(model.interest_cache[users], user, interaction[model.ITEM_SEQ])
    cosine = F.cosine_similarity(queries, user.unsqueeze(1).expand_as(queries), dim=-1)
    sums.add("cosine/query_user", cosine.mean(dim=1).sum(), len(targets))


def _unseen_interest_rows(sums, target_ids, seen, probabilities, popularity, k=5):
    """Of the targets whose interest is absent from the history, the share whose interest the generator
    (or interest popularity) ranks in its top ``k`` among the interests absent from that history: how well
    each proposes a *new* interest, the generator's claim. ``seen [B, n_interests]``: the history's
    interests, at ``interest_levels``."""
    rankings = {"generator": probabilities, "popularity": popularity.unsqueeze(0).expand_as(probabilities)}
    for name, ranking in rankings.items():
        top = ranking.masked_fill(seen, float("-inf")).topk(min(k, ranking.shape[1]), dim=1).indices.tolist()
        hits = total = 0
        for row, (targets, proposed) in enumerate(zip(target_ids, map(set, top))):
            new = [t for t in targets if not bool(seen[row, t])]
            hits += sum(1 for t in new if t in proposed)
            total += len(new)
        sums.add(f"unseen_interest_hit@{k}/{name}", hits, total)


def _item_categories(dataset):
    field = dataset.config["category_field"] if hasattr(dataset, "config") else None
    return first_category_tokens(dataset, field)


def _novelty(sums, model, interaction, targets, scores, category, topn):
    """CUR@N over unseen-category targets, split by whether the cache holds the target's interest."""
    users = interaction[model.USER_ID]
    seen = [set(category[row[row > 0]].tolist()) for row in interaction[model.ITEM_SEQ]]
    cached = model.interest_cache[users].tolist()
    tops = {n: scores.topk(n, dim=1).indices.tolist() for n in topn}
    for row, items in enumerate(targets):
        unseen = [t for t in items if int(category[t]) > 0 and int(category[t]) not in seen[row]]
        if not unseen:
            continue
        ids = model.item_interest_ids(torch.tensor(unseen)).tolist()
        for item, interest in zip(unseen, ids):
            proposed = "proposed" if interest in set(cached[row]) else "not_proposed"
            sums.add("unseen_targets/interest_in_cache", proposed == "proposed", 1)
            for n in topn:
                sums.add(f"cur@{n}/{proposed}", item in set(tops[n][row]), 1)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_gemirec.diagnose", description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", required=True, help="a checkpoint written by the extension")
    parser.add_argument("--split", choices=("valid", "test"), default="valid")
    parser.add_argument("--json", help="write the diagnostics to this file as JSON")
    parser.add_argument("--data_path", default=None,
                        help="where the dataset lives, if not where it was trained (as serving export's)")
    args = parser.parse_args(argv)
    from recbole_gemirec.checkpoint import CheckpointError
    from recbole_gemirec.errors import ConfigError, DataError
    from recbole_gemirec.output_paths import check_result_file
    from recbole_gemirec.quick_start import load_data_and_model

    try:
        if args.json:
            check_result_file(args.json, "--json")  # before the model and the data are loaded
        overrides = {"data_path": args.data_path} if args.data_path else None
        _, model, dataset, train_data, valid_data, test_data = load_data_and_model(args.checkpoint, overrides)
    except (CheckpointError, ConfigError, DataError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    data = valid_data if args.split == "valid" else test_data
    result = diagnose(model, data, train_data._dataset)
    text = json.dumps(result, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
