"""A counting reference ranker for the ``user`` protocol: what the category field alone predicts.

    python -m benchmarks.category_mixture --dataset synthetic2 --seeds 2020 2021 2022 [--split valid]

No training: an item's score for a user is

    (1 - eps) * share_u(c(i)) * pop(i | c(i)) + eps * pop(i)

with ``share_u`` the category shares of the user's last ``--history`` items (plus one pseudo-count spread
evenly over the categories), only the ``--top`` most frequent kept, ``pop(i | c)`` the item's share of its
category's training interactions and ``pop(i)`` its share of all of them. It is the mixture
``sum_c p(c | u) p(i | c)`` of a user who keeps the interests of the history and picks items by popularity
within each, which is how the generated worlds are drawn (``recbole_gemirec.data.synthetic``). Recall@50
against the distinct targets, as RecBole computes it under this protocol, per seed (user split), for a few
``eps``; Pop (``eps = 1``) as the check that the figures match the benchmark's. The figures for GemiRec's
factorised category interests in docs/gemirec.md were read against this on the valid split; it is a
diagnostic of the data, not a model of the benchmark.
"""

import argparse
import json
import sys

import numpy as np

from benchmarks.budgets import budget

EPSILONS = (0.0, 0.1, 0.2)


def _parts(dataset, seed, work):
    from benchmarks import run as bench_run
    from benchmarks.build import build

    settings = budget("converge")
    where = bench_run.paths(settings, out=work)
    bench_run.prepare_data(settings, where, parts=("accuracy",))
    task = next(t for t in bench_run.accuracy_tasks(settings, where)
                if t["model"] == "Pop" and t["name"] == f"accuracy__{dataset}__Pop__seed{seed}")
    return build(task)[1]


def top_n(scores, n):
    """The set of the ``n`` best-scored items (item 0, the padding, excluded)."""
    scores = scores.copy()
    scores[0] = -np.inf
    return set(np.argpartition(-scores, n)[:n].tolist())


def recall_at(top, targets):
    """|``top`` ∩ targets| / |targets|."""
    return len(top & set(targets.tolist())) / len(targets)


def evaluate(parts, split="valid", history=20, top=5, epsilons=EPSILONS, n=50):
    """Mean Recall@n of Pop and of the mixture for each eps on ``split``."""
    dataset = parts["dataset"]
    category = dataset.item_feat[dataset.config["category_field"]]
    category = (category[:, 0] if category.dim() > 1 else category).numpy()
    n_categories = int(category.max()) + 1
    trained = parts["train_data"].dataset.inter_feat[dataset.iid_field].numpy()
    pop = np.bincount(trained, minlength=dataset.item_num).astype(float)
    pop[0] = 0.0
    within = pop / np.maximum(np.bincount(category, weights=pop, minlength=n_categories)[category], 1.0)
    overall = pop / pop.sum()
    part = parts[f"{split}_data"].dataset
    indptr, targets = (np.asarray(x) for x in part.target_index)
    seqs = part.inter_feat[dataset.iid_field + "_list"].numpy()
    lengths = part.inter_feat["item_length"].numpy()
    users = part.inter_feat[dataset.uid_field].numpy()
    popular = top_n(overall, n)  # the same list for every user
    recalls = {"Pop": [], **{f"mixture eps {eps}": [] for eps in epsilons}}
    for row, user in enumerate(users):
        wanted = targets[indptr[user]:indptr[user + 1]]
        if len(wanted) == 0:
            continue
        recent = seqs[row, : lengths[row]][-history:]
        share = np.bincount(category[recent], minlength=n_categories) + 1.0 / n_categories
        share[np.argsort(-share)[top:]] = 0.0
        share /= share.sum()
        recalls["Pop"].append(recall_at(popular, wanted))
        for eps in epsilons:
            mixture = (1 - eps) * share[category] * within + eps * overall
            recalls[f"mixture eps {eps}"].append(recall_at(top_n(mixture, n), wanted))
    return {name: round(float(np.mean(values)), 4) for name, values in recalls.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic2", choices=["ml-100k", "synthetic", "synthetic2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--history", type=int, default=20, help="last items of the history read (the models' L)")
    parser.add_argument("--top", type=int, default=5, help="categories kept per user (the models' K)")
    parser.add_argument("--work", default="/tmp/category_mixture", help="where the generated data goes")
    args = parser.parse_args(argv)
    rows = {}
    for seed in args.seeds:
        rows[seed] = evaluate(_parts(args.dataset, seed, args.work), args.split, args.history, args.top)
        print(json.dumps({"dataset": args.dataset, "seed": seed, "split": args.split, "recall@50": rows[seed]}), flush=True)
    names = next(iter(rows.values()))
    print(json.dumps({"dataset": args.dataset, "split": args.split, "mean": {
        name: round(float(np.mean([r[name] for r in rows.values()])), 4) for name in names}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
