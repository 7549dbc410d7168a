"""What a generated world allows: Recall@50 and CUR@50 of reference rankers that know how it was drawn.

    python -m benchmarks.world_bound --dataset synthetic2 --seeds 2020 2021 2022 --split test [--out F.jsonl]

A generated world (``recbole_gemirec.data.synthetic``) is drawn by a known process, and its ``NAME.truth.json``
records the generator's parameters, so the generator's draws (the catalogue, every user's interests, their
weights and the planted new interest) can be made again here from the same seed. For each evaluated user of
the ``user`` protocol (the same split as the benchmark's), the rest of the timeline after the cut is simulated
``--sims`` times by that process, and items are ranked by their expected share of the user's target set,
``E[1(i in T) / |T|]`` (what Recall@N counts), with ``1 - (1 - p(i | c))^n_c`` the chance that ``n_c`` draws of
category c include item i. Three states of knowledge:

* ``latent``: the user's own interests, weights and planted new interest with its start, as the generator drew
  them. No model can know them; this is an upper reference, not a target.
* ``window, true tables``: the interests and weights are the category counts of the last ``L`` items, the ones
  every model of the benchmark reads; whether and where a new interest starts is drawn from the generator's
  own prior (the evolution rate, one of the held interests, the start range), with the world's true successor
  map and within-category popularity.
* ``window, estimated tables``: the same, with the successor of each category estimated from the training
  users (the new category most often taken up after it, GemiRec's transition count) and the within-category
  popularity from the training interactions. This is what a model that reads the same ``L`` items could reach by
  modelling the process and estimating its tables from the data.

Every row knows the generator's process parameters and the number of items after the cut, and continues the run
in progress at the cut from the category of the last item the models read (it goes on until the process
switches); the user features are not used. The figures are references for the models' rows of ``docs/benchmarks.md``, a diagnostic of the
data; nothing is chosen with them.
"""

import argparse
import datetime
import json
import os
import sys

import numpy as np

from benchmarks.category_mixture import _parts, category_cut, category_transitions, recall_at, top_n
from benchmarks.run import machine, versions
from recbole_gemirec.data import synthetic

KNOWLEDGE = ("latent", "window, true tables", "window, estimated tables")


def world_draws(params):
    """The generator's draws of a world from its recorded ``params`` (the same calls in the same order as
    :func:`recbole_gemirec.data.synthetic.generate`): ``(item_leaf [items], within [items] = p(item | its leaf),
    users (the latent state of :func:`~recbole_gemirec.data.synthetic.make_users`), successor [leaves])``."""
    p = dict(synthetic.DEFAULTS)
    p.update(params)
    rng = np.random.default_rng(p["seed"])
    top_of_leaf, _, leaf_names, successor = synthetic.make_hierarchy(p, rng)
    item_leaf, items_by_leaf, cdf = synthetic.make_items(p, len(leaf_names), rng)
    users = synthetic.make_users(p, top_of_leaf, successor, rng)
    return item_leaf, within_leaf_shares(item_leaf, items_by_leaf, cdf), users, successor


def within_leaf_shares(item_leaf, items_by_leaf, cdf):
    """p(item | its leaf) ``[items]`` from the generator's sampling table (``cdf[j]`` = leaf + the cumulative
    share of the j-th item of ``items_by_leaf`` within its leaf)."""
    leaf = item_leaf[items_by_leaf]
    cumulative = cdf - leaf
    first = np.r_[True, leaf[1:] != leaf[:-1]]
    previous = np.where(first, 0.0, np.r_[0.0, cumulative[:-1]])
    shares = np.empty(len(item_leaf))
    shares[items_by_leaf] = cumulative - previous
    return shares


def simulate_tail(rng, params, positions, interests, cum_weights, n_leaves, planted=None, prior=None, sims=400,
                  first_leaf=None):
    """Category draws ``[sims, n_leaves]`` of the timeline positions ``positions`` (after the cut), by the
    generator's process: runs that switch with ``switch_prob`` and pick an interest by ``cum_weights``, a
    planted new interest adopted after its start, and noise on a random leaf.

    Args:
        interests, cum_weights: the interests (leaf ids) and their cumulative weights (last = 1).
        planted: ``(new interest, start position)`` known (the latent state), or ``None``.
        prior: without ``planted``, ``(candidate new interests [C], length of the timeline)``: each simulation
            evolves with the evolution rate into one candidate, from a start drawn as the generator draws it.
        first_leaf: the leaf of the run in progress at the cut (it goes on until a switch), or ``None``: the
            first position starts a run of its own.
    """
    p = params
    if planted is not None:
        new = np.full(sims, planted[0])
        start = np.full(sims, planted[1])
    elif prior is not None and len(prior[0]):
        candidates, length = prior
        evolves = rng.random(sims) < p["evolution_rate"]
        new = np.where(evolves, candidates[rng.integers(0, len(candidates), size=sims)], -1)
        earliest = (synthetic.TAIL_SHARE_NUM * length + synthetic.TAIL_SHARE_DEN - 1) // synthetic.TAIL_SHARE_DEN
        drawn = np.ceil(rng.uniform(p["evolution_start"], p["evolution_end"], size=sims) * length).astype(np.int64)
        start = np.where(evolves, np.clip(drawn, earliest, length - 1), -1)
    else:
        new, start = np.full(sims, -1), np.full(sims, -1)
    counts = np.zeros((sims, n_leaves))
    rows = np.arange(sims)
    leaf = None if first_leaf is None else np.full(sims, first_leaf)
    for pos in positions:
        at_start = pos == start
        picked = interests[np.minimum((rng.random(sims)[:, None] > cum_weights).sum(axis=1), len(interests) - 1)]
        adopt = (start >= 0) & (pos >= start) & ((rng.random(sims) < p["adoption"]) | at_start)
        picked = np.where(adopt, new, picked)
        switch = (rng.random(sims) < p["switch_prob"]) | at_start
        leaf = picked if leaf is None else np.where(switch, picked, leaf)
        noisy = (rng.random(sims) < p["noise"]) & ~at_start
        counts[rows, np.where(noisy, rng.integers(0, n_leaves, size=sims), leaf)] += 1
    return counts


def expected_target_share(counts, within, item_leaf):
    """``E[1(i in T) / |T|]`` of every item ``[items]`` over the simulations' category draws ``counts [sims,
    leaves]``: item i is in a simulation's target set with chance ``1 - (1 - p(i | c))^n_c``, and ``|T|`` is that
    simulation's expected number of distinct items (at least 1)."""
    included = 1.0 - np.power(1.0 - within[None, :], counts[:, item_leaf])
    return (included / np.maximum(included.sum(axis=1, keepdims=True), 1.0)).mean(axis=0)


def interests_of(leaves, n_leaves):
    """``(interests, cumulative weights)`` from the categories of a window of items (weights = counts)."""
    counts = np.bincount(leaves, minlength=n_leaves).astype(float)
    interests = np.flatnonzero(counts)
    cumulative = np.cumsum(counts[interests]) / counts[interests].sum()
    cumulative[-1] = 1.0
    return interests, cumulative


def evaluate(parts, split="test", sims=400, n=50, seed=2020, continue_run=True):
    """Mean Recall@n and CUR@n of the three reference rankers (:data:`KNOWLEDGE`) on ``split``; ``continue_run``
    False draws each simulation's first run afresh instead of continuing the last item's category."""
    dataset = parts["dataset"]
    with open(os.path.join(dataset.config["data_path"], f"{dataset.dataset_name}.truth.json"), encoding="utf-8") as f:
        params = json.load(f)["params"]
    item_leaf, within, latent, successor = world_draws(params)
    n_leaves = len(successor)
    # internal id -> the generator's index (token = index + 1; internal id 0 is RecBole's padding)
    item_of = np.array([-1] + [int(t) - 1 for t in dataset.field2id_token[dataset.iid_field][1:]])
    user_of = [None] + [int(t) - 1 for t in dataset.field2id_token[dataset.uid_field][1:]]
    leaf_of = item_leaf[np.maximum(item_of, 0)]  # internal id -> leaf (row 0 unused)
    # the estimated tables: successors by the training users' transitions, popularity by their interactions
    estimated_successor = category_transitions(category_cut(parts, leaf_of), n_leaves).argmax(axis=1)
    trained = parts["train_data"].dataset.inter_feat[dataset.iid_field].numpy()
    pop = np.bincount(item_of[trained], minlength=len(item_leaf)).astype(float)
    estimated_within = pop / np.maximum(np.bincount(item_leaf, weights=pop, minlength=n_leaves)[item_leaf], 1.0)
    part = parts[f"{split}_data"].dataset
    indptr, targets = (np.asarray(x) for x in part.target_index)
    seen_ptr, seen = (np.asarray(x) for x in part.eval_history)
    seqs = part.inter_feat[dataset.iid_field + "_list"].numpy()
    lengths = part.inter_feat["item_length"].numpy()
    rng = np.random.default_rng(seed)
    recalls, curs = {k: [] for k in KNOWLEDGE}, {k: [] for k in KNOWLEDGE}
    for row, user in enumerate(part.inter_feat[dataset.uid_field].numpy()):
        wanted = targets[indptr[user]:indptr[user + 1]]
        if len(wanted) == 0:
            continue
        g = user_of[user]
        length = int(latent["lengths"][g])
        positions = range((synthetic.TAIL_SHARE_NUM * length) // synthetic.TAIL_SHARE_DEN, length)
        history_leaves = leaf_of[seen[seen_ptr[user]:seen_ptr[user + 1]]]
        unseen = set(wanted[~np.isin(leaf_of[wanted], history_leaves)].tolist())
        k = int(latent["n_interests"][g])
        start = int(latent["start"][g])
        rankers = {"latent": (latent["interests"][g, :k], latent["cum_weights"][g, :k],
                              (int(latent["new_interest"][g]), start) if start >= 0 else None, None, within)}
        window, cumulative = interests_of(leaf_of[seqs[row, : lengths[row]]], n_leaves)
        for name, successors, shares in (("window, true tables", successor, within),
                                         ("window, estimated tables", estimated_successor, estimated_within)):
            candidates = np.array([successors[c] for c in window if successors[c] not in set(window.tolist())],
                                  dtype=np.int64)
            rankers[name] = (window, cumulative, None, (candidates, length), shares)
        first_leaf = leaf_of[seqs[row, lengths[row] - 1]] if continue_run else None
        for name, (interests, cum, planted, prior, shares) in rankers.items():
            counts = simulate_tail(rng, params, positions, interests, cum, n_leaves, planted, prior, sims, first_leaf)
            scores = np.zeros(len(item_of))
            scores[1:] = expected_target_share(counts, shares, item_leaf)[item_of[1:]]
            chosen = top_n(scores, n)
            recalls[name].append(recall_at(chosen, wanted))
            if unseen:
                curs[name].append(len(chosen & unseen) / len(unseen))
    return {name: {f"recall@{n}": round(float(np.mean(recalls[name])), 4),
                   f"cur@{n}": round(float(np.mean(curs[name])), 4) if curs[name] else None,
                   "users": len(recalls[name])} for name in KNOWLEDGE}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic2", choices=["synthetic", "synthetic2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--split", default="test", choices=["valid", "test"])
    parser.add_argument("--sims", type=int, default=400, help="simulations of each user's timeline after the cut")
    parser.add_argument("--work", default="/tmp/category_mixture", help="where the generated data goes")
    parser.add_argument("--out", default=None,
                        help="write the record (per seed and the mean) to this JSON file, e.g. "
                             "benchmarks/results/converge/world_bound/DATASET__SPLIT.json, which the report reads")
    args = parser.parse_args(argv)
    per_seed = {}
    for seed in args.seeds:
        per_seed[seed] = evaluate(_parts(args.dataset, seed, args.work), args.split, args.sims, seed=seed)
        print(json.dumps({"dataset": args.dataset, "seed": seed, "split": args.split, "rows": per_seed[seed]}),
              flush=True)
    record = {
        "kind": "world_bound", "dataset": args.dataset, "split": args.split, "seeds": args.seeds, "sims": args.sims,
        "command": "python -m benchmarks.world_bound " + " ".join(argv if argv is not None else sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(), "versions": versions(),
        "per_seed": {str(seed): rows for seed, rows in per_seed.items()},
        "mean": {name: {metric: round(float(np.mean([r[name][metric] for r in per_seed.values()])), 4)
                        for metric in ("recall@50", "cur@50")} for name in KNOWLEDGE},
    }
    print(json.dumps(record["mean"]), flush=True)
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
