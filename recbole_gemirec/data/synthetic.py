"""Synthetic multi-interest data with a known ground truth and planted interest evolution (docs/design.md §6).

No public dataset can be downloaded where this project is built and tested, and none of them says which
interests a user really has. This generator writes a RecBole dataset whose structure is known, so that the
multi-interest metrics (AMR, CUR, docs/design.md §5) have something real to find:

* **Catalogue.** Items belong to leaf categories under top categories (``category`` / ``top_category`` in
  ``NAME.item``). Within a category, popularity is Zipf-like (``--popularity-skew``).
* **Users.** Three categorical features (``age``, ``gender``, ``occupation`` in ``NAME.user``). Each feature
  value carries an affinity for every top category, so the features shift which few leaf categories a user
  starts with: they carry real signal (the paper's user-feature token, docs/design.md §2.2).
* **Behaviour.** A user's timeline is a chain of runs; each run picks one of the user's interests (by the
  user's interest weights) and draws items from that category. A share of interactions (``--noise``) is
  on a random category.
* **Interest evolution.** A fixed, population-level successor map sends every leaf category to a leaf under
  a *different* top category. For a share of users (``--evolution-rate``) one of their interests is chosen
  and, from a start position in the last part of the timeline (``--evolution-start``/``--evolution-end``,
  never before ``ceil(0.8 n)``), its successor becomes an interest too: the run at the start position is the
  successor, later runs pick it with probability ``--adoption``. Before the start the successor never occurs
  in that user's history (noise avoids it), so under the ``user`` protocol (history = first 80%) it is an
  unseen category of the target set, and the pattern is learnable from other users.

Output (``--out DIR --name NAME``, usable as RecBole's ``data_path=DIR``): ``DIR/NAME/NAME.inter``
(``user_id``, ``item_id``, ``timestamp``; sorted by user, then time; timestamps strictly increase within a
user), ``NAME.item``, ``NAME.user`` and ``NAME.truth.json`` (parameters, category hierarchy, successor map,
each user's interests, planted new interest and its start, and summary statistics). The directory is
written under a temporary name and renamed into place, so a failed run leaves nothing half-written.

Everything is drawn from one ``numpy.random.Generator`` seeded by ``--seed`` in a fixed order and written
with fixed formatting: the same arguments give byte-identical files. The sequence step is vectorised
over chunks of users (about a second per million interactions).

    python -m recbole_gemirec.data.synthetic --out data --name synthetic --users 5000 --items 2000 --seed 2020
"""

import argparse
import json
import math
import os
import sys
import time

import numpy as np
import pandas as pd

from recbole_gemirec.errors import ConfigError

# Fixed by the format, not by the user.
AGE_GROUPS = ("under18", "18-24", "25-34", "35-44", "45-54", "55-64", "65plus")
GENDERS = ("F", "M")
N_OCCUPATIONS = 12
FEATURES = ("age", "gender", "occupation")
BASE_TIME = 1_577_836_800  # 2020-01-01T00:00:00Z
START_SPREAD_S = 365 * 24 * 3600  # users start within one year
WITHIN_RUN_GAP_S = 600.0  # mean seconds between two interactions of one run
BETWEEN_RUN_GAP_S = 2 * 24 * 3600.0  # mean seconds between runs
LENGTH_SIGMA = 0.8  # spread of the log-normal sequence length
INTEREST_WEIGHT_SHAPE = 2.0  # Dirichlet concentration of a user's interest weights
CHUNK_USERS = 4096  # users per vectorised chunk; part of the format (changing it changes the random stream)
TAIL_SHARE_NUM, TAIL_SHARE_DEN = 4, 5  # history = first floor(4n/5) items (the ``user`` protocol's 80%)

# The largest dataset the generator is asked for: it holds every interaction in memory (several int64
# arrays of them) at about a second per million, so more would end in numpy's MemoryError hours later.
MAX_INTERACTIONS = 10 ** 8  # expected interactions, users x min(mean length, max length)
MAX_ITEMS = 10 ** 8

DEFAULTS = dict(
    name="synthetic", users=5000, items=2000, seed=2020, top_categories=8, leaves_per_top=5,
    min_interests=2, max_interests=4, mean_length=40.0, min_length=10, max_length=200,
    switch_prob=0.15, noise=0.05, evolution_rate=0.5, adoption=0.6, evolution_start=0.8,
    evolution_end=0.95, popularity_skew=1.0, feature_strength=1.5,
)


# ----------------------------------------------------------------------------------------------- params

def check_params(p):
    """Raise :class:`ConfigError` for a parameter combination the generator cannot honour."""
    for key, value in p.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--{key.replace('_', '-')}={value} is not allowed; allowed: a finite number")
    n_leaves = p["top_categories"] * p["leaves_per_top"]
    expected = p["users"] * min(p["mean_length"], p["max_length"])  # the mean is clipped at the maximum
    rules = [
        (p["users"] >= 1, "--users must be >= 1"),
        (p["seed"] >= 0, f"--seed={p['seed']} is not allowed; allowed: an integer >= 0 (numpy's generators take "
                         "non-negative seeds)"),
        (p["top_categories"] >= 2, "--top-categories must be >= 2 (successors live under another top category)"),
        (p["leaves_per_top"] >= 1, "--leaves-per-top must be >= 1"),
        (p["items"] >= n_leaves, f"--items must be >= the number of leaf categories ({n_leaves})"),
        (1 <= p["min_interests"] <= p["max_interests"], "need 1 <= --min-interests <= --max-interests"),
        (p["max_interests"] < n_leaves, f"--max-interests must be < the number of leaf categories ({n_leaves})"),
        (p["min_length"] >= 5, "--min-length must be >= 5 (a history and a tail are needed)"),
        (p["min_length"] <= p["max_length"], "need --min-length <= --max-length"),
        (p["mean_length"] > p["min_length"], "--mean-length must be > --min-length"),
        (p["mean_length"] <= p["max_length"], f"--mean-length={p['mean_length']:g} is not allowed; allowed: at most "
                                              f"--max-length={p['max_length']} (every sequence is clipped to it)"),
        (0 < p["switch_prob"] <= 1, "--switch-prob must be in (0, 1]"),
        (0 <= p["noise"] < 1, "--noise must be in [0, 1)"),
        (0 <= p["evolution_rate"] <= 1, "--evolution-rate must be in [0, 1]"),
        (0 <= p["adoption"] <= 1, "--adoption must be in [0, 1]"),
        (0.8 <= p["evolution_start"] <= p["evolution_end"] < 1,
         "need 0.8 <= --evolution-start <= --evolution-end < 1"),
        (p["popularity_skew"] >= 0, "--popularity-skew must be >= 0"),
        (p["items"] <= MAX_ITEMS, f"--items={p['items']} is not allowed; allowed: an integer up to {MAX_ITEMS:,} "
                                  "(the catalogue is held in memory)"),
        (expected <= MAX_INTERACTIONS,
         f"--users={p['users']} with --mean-length={p['mean_length']:g} (--max-length={p['max_length']}) is not "
         f"allowed: about {expected:,.0f} interactions; allowed: users x min(mean length, max length) up to "
         f"{MAX_INTERACTIONS:,} (every interaction is held in memory)"),
        (p["feature_strength"] >= 0, "--feature-strength must be >= 0"),
        (bool(p["name"]) and os.sep not in p["name"] and not p["name"].startswith("."),
         "--name must be a plain file name"),
    ]
    for ok, message in rules:
        if not ok:
            raise ConfigError(message)


# ------------------------------------------------------------------------------------------- catalogue

def make_hierarchy(p, rng):
    """Leaf -> top index, leaf and top names, and the successor map (leaf -> leaf under another top)."""
    n_top, per_top = p["top_categories"], p["leaves_per_top"]
    n_leaves = n_top * per_top
    top_of_leaf = np.repeat(np.arange(n_top), per_top)
    top_width, leaf_width = len(str(n_top - 1)), len(str(per_top - 1))
    top_names = [f"t{t:0{top_width}d}" for t in range(n_top)]
    leaf_names = [f"{top_names[top_of_leaf[c]]}.c{c % per_top:0{leaf_width}d}" for c in range(n_leaves)]
    # A successor is any leaf outside the leaf's own top block: draw among the n_leaves - per_top others.
    draw = rng.integers(0, n_leaves - per_top, size=n_leaves)
    block_start = top_of_leaf * per_top
    successor = np.where(draw >= block_start, draw + per_top, draw)
    return top_of_leaf, top_names, leaf_names, successor


def make_items(p, n_leaves, rng):
    """Each item's leaf category and a per-leaf cumulative popularity table for vectorised sampling.

    Returns ``item_leaf`` (index = item id - 1), ``items_by_leaf`` (item indices grouped by leaf, in
    popularity order) and ``cdf`` where ``cdf[j] = leaf(j) + cumulative share of j within its leaf``, so
    that ``searchsorted(cdf, leaf + u, 'right')`` draws an item of ``leaf`` by popularity.
    """
    shares = rng.dirichlet(np.full(n_leaves, 2.0))
    sizes = 1 + rng.multinomial(p["items"] - n_leaves, shares)
    item_leaf = rng.permutation(np.repeat(np.arange(n_leaves), sizes))
    items_by_leaf = np.argsort(item_leaf, kind="stable")
    leaf_sorted = np.repeat(np.arange(n_leaves), sizes)
    ends = np.cumsum(sizes)  # one past each leaf's last position in items_by_leaf
    rank = np.arange(p["items"]) - np.repeat(ends - sizes, sizes)
    weight = 1.0 / np.power(rank + 1.0, p["popularity_skew"])
    cum = np.cumsum(weight)
    before = np.repeat(np.concatenate([[0.0], cum[ends[:-1] - 1]]), sizes)
    within = (cum - before) / (np.repeat(cum[ends - 1], sizes) - before)
    within[ends - 1] = 1.0  # exact upper edge of every leaf's segment
    return item_leaf, items_by_leaf, leaf_sorted + within


def sample_items(leaves, items_by_leaf, cdf, rng):
    """Draw one item (0-based index) of each given leaf, by within-leaf popularity."""
    position = np.searchsorted(cdf, leaves + rng.random(len(leaves)), side="right")
    return items_by_leaf[position]


# ----------------------------------------------------------------------------------------------- users

def make_users(p, top_of_leaf, successor, rng):
    """Features, interests (padded with -1), interest weights, lengths and the planted evolution."""
    n_users, n_leaves, n_top = p["users"], len(top_of_leaf), p["top_categories"]
    cards = (len(AGE_GROUPS), len(GENDERS), N_OCCUPATIONS)
    features = np.stack([rng.choice(k, size=n_users, p=rng.dirichlet(np.full(k, 3.0))) for k in cards], axis=1)

    # Interests: Gumbel-top-k over leaf logits shaped by the features' top-category affinities.
    logits = np.tile(rng.normal(0.0, 0.5, size=n_leaves), (n_users, 1))
    for f, k in enumerate(cards):
        affinity = rng.normal(0.0, p["feature_strength"], size=(k, n_top))
        logits += affinity[features[:, f]][:, top_of_leaf]
    ranked = np.argsort(-(logits + rng.gumbel(size=logits.shape)), axis=1, kind="stable")
    max_k = p["max_interests"]
    n_interests = rng.integers(p["min_interests"], max_k + 1, size=n_users)
    slot_used = np.arange(max_k)[None, :] < n_interests[:, None]
    interests = np.where(slot_used, ranked[:, :max_k], -1)
    weights = np.where(slot_used, rng.gamma(INTEREST_WEIGHT_SHAPE, size=(n_users, max_k)), 0.0)
    cum_weights = np.cumsum(weights, axis=1) / weights.sum(axis=1, keepdims=True)
    cum_weights[np.arange(n_users), n_interests - 1] = 1.0

    # Sequence lengths: log-normal around the requested mean, clipped.
    mu = math.log(p["mean_length"] - p["min_length"]) - LENGTH_SIGMA ** 2 / 2
    extra = np.rint(np.exp(rng.normal(mu, LENGTH_SIGMA, size=n_users))).astype(np.int64)
    lengths = np.clip(p["min_length"] + extra, p["min_length"], p["max_length"])

    # Planted evolution: an interest whose successor is not already an interest of the user.
    succ_of_slot = np.where(slot_used, successor[np.maximum(interests, 0)], -1)
    already = (succ_of_slot[:, :, None] == interests[:, None, :]).any(axis=2)
    candidate = slot_used & ~already
    pick_score = np.where(candidate, rng.random((n_users, max_k)), -1.0)
    from_slot = pick_score.argmax(axis=1)
    evolves = candidate.any(axis=1) & (rng.random(n_users) < p["evolution_rate"])
    evolved_from = np.where(evolves, interests[np.arange(n_users), from_slot], -1)
    new_interest = np.where(evolves, successor[np.maximum(evolved_from, 0)], -1)
    earliest = (TAIL_SHARE_NUM * lengths + TAIL_SHARE_DEN - 1) // TAIL_SHARE_DEN  # ceil(0.8 n)
    fraction = rng.uniform(p["evolution_start"], p["evolution_end"], size=n_users)
    start = np.clip(np.ceil(fraction * lengths).astype(np.int64), earliest, lengths - 1)
    start = np.where(evolves, start, -1)
    return dict(features=features, interests=interests, n_interests=n_interests, cum_weights=cum_weights,
                lengths=lengths, evolved_from=evolved_from, new_interest=new_interest, start=start)


# -------------------------------------------------------------------------------------------- sequences

def segment_positions(lengths):
    """For concatenated sequences of the given lengths: owner index and position within the owner."""
    owner = np.repeat(np.arange(len(lengths)), lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    return owner, np.arange(int(lengths.sum())) - offsets[owner], offsets


def make_chunk(p, users, lo, hi, n_leaves, rng):
    """Leaf category and timestamp of every interaction of users ``lo..hi-1`` (vectorised)."""
    lengths = users["lengths"][lo:hi]
    owner, pos, offsets = segment_positions(lengths)
    uid = owner + lo
    start, new_interest = users["start"][uid], users["new_interest"][uid]
    planted_start = pos == start  # start is -1 for users without evolution
    after_start = (start >= 0) & (pos >= start)

    # Runs: a new run at every user's first interaction, at random switches and at the planted start.
    switch = (rng.random(len(pos)) < p["switch_prob"]) | (pos == 0) | planted_start
    run_of = np.cumsum(switch) - 1
    run_user = uid[switch]
    slot = (rng.random(len(run_user))[:, None] > users["cum_weights"][run_user]).sum(axis=1)
    run_leaf = users["interests"][run_user, slot]
    run_after = after_start[switch]
    adopt = run_after & ((rng.random(len(run_user)) < p["adoption"]) | planted_start[switch])
    run_leaf = np.where(adopt, users["new_interest"][run_user], run_leaf)
    leaf = run_leaf[run_of]

    # Noise: a random leaf; before a planted start it avoids the successor, at the start there is none.
    noisy = (rng.random(len(pos)) < p["noise"]) & ~planted_start
    avoid = noisy & (start >= 0) & ~after_start
    draw = np.floor(rng.random(len(pos)) * np.where(avoid, n_leaves - 1, n_leaves)).astype(np.int64)
    draw = np.where(avoid & (draw >= new_interest), draw + 1, draw)
    leaf = np.where(noisy, draw, leaf)

    # Time: short gaps inside a run, long ones between runs; strictly increasing within a user.
    mean_gap = np.where(switch, BETWEEN_RUN_GAP_S, WITHIN_RUN_GAP_S)
    gap = 1 + np.floor(rng.exponential(1.0, size=len(pos)) * mean_gap).astype(np.int64)
    first_time = BASE_TIME + rng.integers(0, START_SPREAD_S, size=hi - lo)
    gap[offsets] = first_time
    total = np.cumsum(gap)
    timestamp = total - np.repeat(np.concatenate([[0], total[offsets[1:] - 1]]), lengths)
    return uid, leaf, timestamp


def generate(params, progress=True):
    """Generate the dataset in memory; return a dict of DataFrames (``inter``, ``item``, ``user``) and ``truth``."""
    from tqdm import tqdm

    p = dict(DEFAULTS)
    p.update(params)
    check_params(p)
    rng = np.random.default_rng(p["seed"])
    top_of_leaf, top_names, leaf_names, successor = make_hierarchy(p, rng)
    n_leaves = len(leaf_names)
    item_leaf, items_by_leaf, cdf = make_items(p, n_leaves, rng)
    users = make_users(p, top_of_leaf, successor, rng)
    total = int(users["lengths"].sum())

    parts = []
    with tqdm(total=total, unit="inter", desc=f"generating {p['name']}", disable=not progress,
              file=sys.stderr, mininterval=0.5) as bar:
        for lo in range(0, p["users"], CHUNK_USERS):
            hi = min(lo + CHUNK_USERS, p["users"])
            uid, leaf, timestamp = make_chunk(p, users, lo, hi, n_leaves, rng)
            item = sample_items(leaf, items_by_leaf, cdf, rng)
            parts.append((uid, item, leaf, timestamp))
            bar.update(len(uid))
    uid, item, leaf, timestamp = (np.concatenate(column) for column in zip(*parts))

    frames = make_frames(p, uid, item, timestamp, item_leaf, top_of_leaf, top_names, leaf_names, users)
    stats = evolution_stats(uid, leaf, users, n_leaves)
    stats.update(users=p["users"], items=p["items"], interactions=total,
                 items_interacted=int(len(np.unique(item))))
    frames["truth"] = make_truth(p, top_names, leaf_names, top_of_leaf, successor, users, stats)
    return frames


def make_frames(p, uid, item, timestamp, item_leaf, top_of_leaf, top_names, leaf_names, users):
    """The three atomic tables as DataFrames with RecBole's ``name:type`` headers."""
    leaf_names, top_names = np.asarray(leaf_names), np.asarray(top_names)
    inter = pd.DataFrame({"user_id:token": uid + 1, "item_id:token": item + 1, "timestamp:float": timestamp})
    item_table = pd.DataFrame({
        "item_id:token": np.arange(1, p["items"] + 1),
        "category:token": leaf_names[item_leaf],
        "top_category:token": top_names[top_of_leaf[item_leaf]],
    })
    occupations = np.asarray([f"occ{k:02d}" for k in range(N_OCCUPATIONS)])
    feats = users["features"]
    user_table = pd.DataFrame({
        "user_id:token": np.arange(1, p["users"] + 1),
        "age:token": np.asarray(AGE_GROUPS)[feats[:, 0]],
        "gender:token": np.asarray(GENDERS)[feats[:, 1]],
        "occupation:token": occupations[feats[:, 2]],
    })
    return {"inter": inter, "item": item_table, "user": user_table}


def evolution_stats(uid, leaf, users, n_leaves):
    """Share of users with a category in their last 20% that is absent from their first 80%, and how
    many of those users have their planted successor among such categories."""
    lengths = users["lengths"]
    _, pos, _ = segment_positions(lengths)
    history = pos < (TAIL_SHARE_NUM * lengths[uid]) // TAIL_SHARE_DEN
    key = uid.astype(np.int64) * n_leaves + leaf
    unseen = ~history & ~np.isin(key, np.unique(key[history]))
    unseen_keys = np.unique(key[unseen])
    has_unseen = np.zeros(len(lengths), dtype=bool)
    has_unseen[unseen_keys // n_leaves] = True
    planted = users["new_interest"] >= 0
    planted_key = np.arange(len(lengths)) * n_leaves + users["new_interest"]
    explained = planted & np.isin(planted_key, unseen_keys)
    n_unseen = int(has_unseen.sum())
    return {
        "users_with_planted_evolution": int(planted.sum()),
        "users_with_unseen_tail_category": n_unseen,
        "unseen_tail_share": n_unseen / len(lengths),
        "unseen_tail_users_explained_by_planted": int(explained.sum()),
        "planted_share_of_unseen_tail_users": float(explained.sum() / n_unseen) if n_unseen else 0.0,
    }


def make_truth(p, top_names, leaf_names, top_of_leaf, successor, users, stats):
    """The ground truth as plain JSON-serialisable data (user ids as in ``NAME.inter``)."""
    hierarchy = {top: [leaf_names[c] for c in np.flatnonzero(top_of_leaf == t)] for t, top in enumerate(top_names)}
    per_user = {}
    for u in range(p["users"]):
        k = int(users["n_interests"][u])
        entry = {"interests": [leaf_names[c] for c in users["interests"][u, :k]]}
        if users["new_interest"][u] >= 0:
            entry.update(new_interest=leaf_names[users["new_interest"][u]],
                         evolved_from=leaf_names[users["evolved_from"][u]],
                         start_index=int(users["start"][u]), length=int(users["lengths"][u]))
        else:
            entry.update(new_interest=None, length=int(users["lengths"][u]))
        per_user[str(u + 1)] = entry
    return {
        "format": "recbole-gemirec synthetic v1",
        "params": {key: p[key] for key in sorted(p)},
        "notes": {
            "start_index": "0-based position in the user's time-ordered sequence of the first interaction "
                           "with new_interest; the interest never occurs before it",
            "unseen_tail_share": "users with a category in positions >= floor(0.8 n) that is absent from "
                                 "positions < floor(0.8 n)",
        },
        "hierarchy": hierarchy,
        "successors": {leaf_names[c]: leaf_names[s] for c, s in enumerate(successor)},
        "stats": stats,
        "users": per_user,
    }


# ---------------------------------------------------------------------------------------------- writing

def write_dataset(frames, out_dir, name, force=False):
    """Write ``out_dir/name/name.{inter,item,user,truth.json}`` atomically; return the dataset directory."""
    from recbole_gemirec.data.converters.common import write_directory_atomic

    def write(staging):
        for suffix in ("inter", "item", "user"):
            frames[suffix].to_csv(os.path.join(staging, f"{name}.{suffix}"), sep="\t", index=False,
                                  lineterminator="\n")
        with open(os.path.join(staging, f"{name}.truth.json"), "w", encoding="utf-8", newline="\n") as f:
            json.dump(frames["truth"], f, indent=1)
            f.write("\n")

    return write_directory_atomic(out_dir, name, write, force)


# -------------------------------------------------------------------------------------------------- CLI

def build_parser():
    d = DEFAULTS
    parser = argparse.ArgumentParser(
        prog="python -m recbole_gemirec.data.synthetic",
        description="Write a synthetic multi-interest RecBole dataset with planted interest evolution "
                    "to OUT/NAME/ (use OUT as RecBole's data_path).",
    )
    add = parser.add_argument
    add("--out", required=True, help="output directory (RecBole data_path); files go to OUT/NAME/")
    add("--name", default=d["name"], help=f"dataset name (default {d['name']})")
    add("--users", type=int, default=d["users"], help=f"number of users (default {d['users']})")
    add("--items", type=int, default=d["items"], help=f"number of items (default {d['items']})")
    add("--seed", type=int, default=d["seed"], help=f"random seed (default {d['seed']})")
    add("--top-categories", type=int, default=d["top_categories"], help="top categories (default %(default)s)")
    add("--leaves-per-top", type=int, default=d["leaves_per_top"], help="leaf categories per top (default %(default)s)")
    add("--min-interests", type=int, default=d["min_interests"], help="fewest interests per user (default %(default)s)")
    add("--max-interests", type=int, default=d["max_interests"], help="most interests per user (default %(default)s)")
    add("--mean-length", type=float, default=d["mean_length"], help="mean sequence length (default %(default)s)")
    add("--min-length", type=int, default=d["min_length"], help="shortest sequence (default %(default)s)")
    add("--max-length", type=int, default=d["max_length"], help="longest sequence (default %(default)s)")
    add("--switch-prob", type=float, default=d["switch_prob"],
        help="probability that an interaction starts a new run (default %(default)s)")
    add("--noise", type=float, default=d["noise"], help="share of random-category interactions (default %(default)s)")
    add("--evolution-rate", type=float, default=d["evolution_rate"],
        help="share of users given a planted successor interest (default %(default)s)")
    add("--adoption", type=float, default=d["adoption"],
        help="probability that a run after the start is the new interest (default %(default)s)")
    add("--evolution-start", type=float, default=d["evolution_start"],
        help="earliest start of the new interest, as a fraction of the sequence (>= 0.8; default %(default)s)")
    add("--evolution-end", type=float, default=d["evolution_end"],
        help="latest start of the new interest, as a fraction of the sequence (default %(default)s)")
    add("--popularity-skew", type=float, default=d["popularity_skew"],
        help="Zipf exponent of popularity within a category (default %(default)s)")
    add("--feature-strength", type=float, default=d["feature_strength"],
        help="how strongly user features shape initial interests (default %(default)s)")
    add("--force", action="store_true", help="replace OUT/NAME if it exists")
    add("--quiet", action="store_true", help="no progress bar or summary")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    params = {key: getattr(args, key) for key in DEFAULTS}
    try:
        began = time.perf_counter()
        frames = generate(params, progress=not args.quiet)
        target = write_dataset(frames, args.out, args.name, force=args.force)
        elapsed = time.perf_counter() - began
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: cannot write {args.out}: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        s = frames["truth"]["stats"]
        print(f"wrote {target}: {s['users']} users, {s['items']} items, {s['interactions']} interactions "
              f"in {elapsed:.1f} s; unseen tail category for {s['unseen_tail_share']:.1%} of users "
              f"({s['planted_share_of_unseen_tail_users']:.1%} of them the planted successor)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
