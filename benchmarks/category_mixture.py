"""A counting reference ranker for the ``user`` protocol: what the category field alone predicts.

    python -m benchmarks.category_mixture --dataset synthetic2 --seeds 2020 2021 2022 [--split valid]

No training: an item's score for a user is

    (1 - eps) * p_u(c(i)) * pop(i | c(i)) + eps * pop(i),   p_u = (1 - beta) share_u + beta novel_u

with ``share_u`` the category shares of the user's last ``--history`` items (plus one pseudo-count spread
evenly over the categories), only the ``--top`` most frequent kept, ``pop(i | c)`` the item's share of its
category's training interactions and ``pop(i)`` its share of all of them. It is the mixture
``sum_c p(c | u) p(i | c)`` of a user who keeps the interests of the history and picks items by popularity
within each, which is how the generated worlds are drawn (``recbole_gemirec.data.synthetic``). ``novel_u``
adds the categories the history lacks, by the population's transitions from the ones it holds, counted over
the training sequences exactly as GemiRec's transition predictor counts them
(:mod:`recbole_gemirec.model.interest_transitions`; its ``--top`` largest kept, normalised), with weight
``beta``. Recall@50 and CUR@50 against the distinct targets, as RecBole and this project compute them under
this protocol, per seed (user split), for a few ``eps`` and ``beta``; Pop (``eps = 1``) as the check that the
figures match the benchmark's. The figures for GemiRec's category interests in docs/gemirec.md were read
against this on the valid split; it is a diagnostic of the data, not a model of the benchmark.
"""

import argparse
import json
import sys

import numpy as np
import torch

from benchmarks.budgets import budget

EPSILONS = (0.0, 0.1, 0.2)
NOVEL_SHARES = (0.0, 0.1, 0.2, 0.3)


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


def category_cut(parts, category):
    """The cut of every training sequence as GemiRec's transition predictor makes it
    (:func:`recbole_gemirec.model.interest_transitions.cut_samples`), in categories: ``(source categories
    [U, L] (-1 = padding), future categories [F], owner row of each [F])``."""
    from recbole_gemirec.model.interest_transitions import training_cut

    dataset = parts["dataset"]
    sources, future, owner = training_cut(parts["train_data"].dataset, dataset.iid_field, dataset.iid_field + "_list")
    table = torch.as_tensor(category)
    return table[sources].masked_fill(sources == 0, -1), table[future], owner


def category_transitions(cut, n_categories):
    """The population's category transitions (GemiRec's transition count, the categories as the interests)."""
    from recbole_gemirec.model.interest_transitions import count_transitions

    return count_transitions(*cut, n_categories).numpy()


def novel_target_share(cut):
    """Of the training users' items after their cut, the share whose category none of the L items before the
    cut has: how much of a target set lies in interests the history lacks."""
    sources, future, owner = cut
    held = (sources[owner] == future.unsqueeze(1)).any(dim=1)
    return float((~held).double().mean()) if len(held) else 0.0


def keep_top(weights, top):
    """``weights`` with all but the ``top`` largest set to 0, normalised (all zeros stay zeros)."""
    weights = weights.copy()
    weights[np.argsort(-weights)[top:]] = 0.0
    total = weights.sum()
    return weights / total if total > 0 else weights


def evaluate(parts, split="valid", history=20, top=5, epsilons=EPSILONS, n=50, novel_shares=NOVEL_SHARES,
             interests=None):
    """Mean Recall@n (and CUR@n) of Pop and of the mixture for each eps and beta on ``split``; ``interests``
    keeps only that many categories of p_u (GemiRec's K), else up to ``top`` of each kind."""
    dataset = parts["dataset"]
    category = dataset.item_feat[dataset.config["category_field"]]
    category = (category[:, 0] if category.dim() > 1 else category).numpy()
    n_categories = int(category.max()) + 1
    trained = parts["train_data"].dataset.inter_feat[dataset.iid_field].numpy()
    pop = np.bincount(trained, minlength=dataset.item_num).astype(float)
    pop[0] = 0.0
    within = pop / np.maximum(np.bincount(category, weights=pop, minlength=n_categories)[category], 1.0)
    overall = pop / pop.sum()
    cut = category_cut(parts, category)
    transitions = category_transitions(cut, n_categories)
    part = parts[f"{split}_data"].dataset
    indptr, targets = (np.asarray(x) for x in part.target_index)
    seen_ptr, seen = (np.asarray(x) for x in part.eval_history)
    seqs = part.inter_feat[dataset.iid_field + "_list"].numpy()
    lengths = part.inter_feat["item_length"].numpy()
    users = part.inter_feat[dataset.uid_field].numpy()
    popular = top_n(overall, n)  # the same list for every user
    names = ["Pop"] + [mixture_name(eps, beta) for beta in novel_shares for eps in epsilons]
    recalls, curs = {name: [] for name in names}, {name: [] for name in names}
    for row, user in enumerate(users):
        wanted = targets[indptr[user]:indptr[user + 1]]
        if len(wanted) == 0:
            continue
        unseen = set(wanted[~np.isin(category[wanted], category[seen[seen_ptr[user]:seen_ptr[user + 1]]])].tolist())
        recent = seqs[row, : lengths[row]][-history:]
        share = keep_top(np.bincount(category[recent], minlength=n_categories) + 1.0 / n_categories, top)
        present = np.bincount(category[recent], minlength=n_categories) > 0
        novel = keep_top(np.where(present, 0.0, transitions[present].sum(axis=0)), top)
        lists = {"Pop": popular}
        for beta in novel_shares:
            p_c = (1 - beta) * share + beta * novel if novel.sum() > 0 else share
            p_c = keep_top(p_c, interests) if interests else p_c
            for eps in epsilons:
                lists[mixture_name(eps, beta)] = top_n((1 - eps) * p_c[category] * within + eps * overall, n)
        for name, chosen in lists.items():
            recalls[name].append(recall_at(chosen, wanted))
            if unseen:
                curs[name].append(len(chosen & unseen) / len(unseen))
    out = {name: round(float(np.mean(values)), 4) for name, values in recalls.items()}
    out["train target share in categories the window lacks"] = round(novel_target_share(cut), 4)
    out.update({f"CUR {name}": round(float(np.mean(values)), 4) for name, values in curs.items() if values})
    return out


def mixture_name(eps, beta):
    """The row name of the mixture with these ``eps`` and ``beta`` (beta 0: the history's categories alone)."""
    return f"mixture eps {eps}" + (f" novel {beta}" if beta else "")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic2", choices=["ml-100k", "synthetic", "synthetic2"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[2020, 2021, 2022])
    parser.add_argument("--split", default="valid", choices=["valid", "test"])
    parser.add_argument("--history", type=int, default=20, help="last items of the history read (the models' L)")
    parser.add_argument("--top", type=int, default=5, help="categories kept per user (the models' K)")
    parser.add_argument("--interests", type=int, default=None,
                        help="categories kept of p_u in all (GemiRec's K); default: up to --top of each kind")
    parser.add_argument("--work", default="/tmp/category_mixture", help="where the generated data goes")
    args = parser.parse_args(argv)
    rows = {}
    for seed in args.seeds:
        rows[seed] = evaluate(_parts(args.dataset, seed, args.work), args.split, args.history, args.top,
                              interests=args.interests)
        print(json.dumps({"dataset": args.dataset, "seed": seed, "split": args.split, "recall@50 and CUR@50": rows[seed]}),
              flush=True)
    names = next(iter(rows.values()))
    print(json.dumps({"dataset": args.dataset, "split": args.split, "interests": args.interests, "mean": {
        name: round(float(np.mean([r[name] for r in rows.values()])), 4) for name in names}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
