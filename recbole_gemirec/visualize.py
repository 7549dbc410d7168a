"""Pictures of a trained model: one user's interests, and how the interest dictionary is used.

    python -m recbole_gemirec.visualize --checkpoint saved/GemiRec-...-joint.pth --user 196 --out pictures/

writes two PNG files into ``--out``:

* ``interests_<user>.png`` - the paper's case-study figure: a 2-D t-SNE map (cosine distance) of the
  user's K interest vectors (black stars, labelled with their slot and code tuple), the items each
  interest retrieves (circles, joined to their interest by a thin line) and the user's future items
  (diamonds with a black edge; a ring marks a future item that was retrieved), every item coloured by its
  category. The user's sequence is split into a history (all but the last ``--future`` items), from which
  the model computes the interests exactly as serving does (:mod:`recbole_gemirec.serving.export`), and
  the future (the last ``--future`` items), which the model does not see.
* ``dictionary_utilisation.png`` - GemiRec only: for every level of the interest dictionary, how many
  catalogue items fall on each codeword (sorted), with the share of codewords in use in the title; the
  first thing to look at when the dictionary collapses onto a few codes.

Matplotlib draws with its file-only ``Agg`` backend; t-SNE is scikit-learn's.
"""

import argparse
import os
import re
import sys

import numpy as np
import torch

from recbole_gemirec.config_specs import SEED_MAX
from recbole_gemirec.data.categories import first_category_tokens
from recbole_gemirec.errors import ConfigError, DataError
from recbole_gemirec.output_paths import check_writable_directory

INTERESTS_FILE = "interests_{user}.png"
UTILISATION_FILE = "dictionary_utilisation.png"
MAX_LEGEND_CATEGORIES = 12


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


# --- data for the interests picture ----------------------------------------------------------------
def user_row(dataset, config, user):
    """The user's whole-sequence model input (one row) and the items of that sequence, oldest first."""
    from recbole_gemirec.serving.export import user_histories

    uid_field = dataset.uid_field
    tokens = dataset.field2id_token[uid_field]
    matches = np.flatnonzero(tokens == str(user))
    if len(matches) == 0 or matches[0] == 0:
        shown = ", ".join(repr(str(t)) for t in tokens[1:6])  # '196', not numpy's np.str_('196')
        raise DataError(f"user token {str(user)!r} is not in dataset {config['dataset']} "
                        f"({len(tokens) - 1} users, e.g. {shown}, ...)")
    rows = user_histories(dataset, config, history="full")
    position = np.flatnonzero(rows[uid_field].numpy() == matches[0])
    if len(position) == 0:
        raise DataError(f"user {str(user)!r} has no history in dataset {config['dataset']}")
    row = rows[torch.from_numpy(position[:1])]
    length = int(row[config["ITEM_LIST_LENGTH_FIELD"]][0])
    items = row[dataset.iid_field + config["LIST_SUFFIX"]][0, :length].tolist()
    return row, items


def truncate_row(row, config, length):
    """The same input row with only the first ``length`` history positions (later ones zeroed)."""
    suffix = config["LIST_SUFFIX"]
    result = row[torch.arange(1)]
    for field in list(result.interaction):
        if field.endswith(suffix):
            values = result[field].clone()
            values[:, length:] = 0
            result.interaction[field] = values
    result.interaction[config["ITEM_LIST_LENGTH_FIELD"]] = torch.tensor([length])
    return result


def item_categories(dataset, config):
    """(category index per internal item id, category names); all ``-1`` when there is no category field."""
    field = config["category_field"] if "category_field" in config else None
    if not field and "interest_category_field" in config:
        field = config["interest_category_field"]
    tokens = first_category_tokens(dataset, field)
    if tokens is None:
        return np.full(dataset.item_num, -1), [], None
    names = [str(t) for t in dataset.field2id_token[field]]
    return tokens.numpy() - 1, names[1:], field


def interest_picture_data(model, dataset, config, user, n=10, future=5):
    """Everything the interests picture shows, as arrays (also used by the tests).

    Returns:
        dict: ``queries [K, D]``, ``codes`` (``[K, C]`` or ``None``), ``retrieved`` (item ids per
        interest, best first), ``future`` (item ids), ``history`` (item ids), ``items`` (the item table).
    """
    from recbole_gemirec.serving.export import compute_queries

    row, sequence = user_row(dataset, config, user)
    if len(sequence) < 2:
        raise DataError(f"user {str(user)!r} has {len(sequence)} interaction(s); the picture needs a history and a future")
    future = max(1, min(int(future), len(sequence) - 1))
    history_row = truncate_row(row, config, len(sequence) - future)
    exported = compute_queries(model, history_row, batch_size=1, device=config["device"])
    queries = exported["queries"][0]
    items = exported["items"]  # rows = internal ids 1..
    scores = queries @ items.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :n] + 1
    codes = exported["interest_codes"][0] if exported["interest_codes"] is not None else None
    return {"queries": queries, "codes": codes, "retrieved": top, "future": sequence[-future:],
            "history": sequence[:-future], "items": items}


def draw_interests(data, categories, category_names, category_field, user, path, seed=2020):
    """Draw the t-SNE map of :func:`interest_picture_data` into ``path``."""
    from sklearn.manifold import TSNE

    plt = _pyplot()
    k = len(data["queries"])
    retrieved_ids = sorted({int(i) for i in data["retrieved"].reshape(-1)})
    future_ids = [int(i) for i in data["future"]]
    item_ids = sorted(set(retrieved_ids) | set(future_ids))
    points = np.concatenate([data["queries"], data["items"][np.asarray(item_ids) - 1]])
    perplexity = max(2.0, min(30.0, (len(points) - 1) / 3.0))
    coords = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="random",
                  random_state=seed).fit_transform(points.astype(np.float64))
    interest_xy = coords[:k]
    item_xy = {item: coords[k + i] for i, item in enumerate(item_ids)}

    shown = [c for c in categories[item_ids] if c >= 0]
    ranked = [c for c, _ in sorted(((c, shown.count(c)) for c in set(shown)), key=lambda x: (-x[1], x[0]))]
    legend_categories = ranked[:MAX_LEGEND_CATEGORIES]
    palette = plt.get_cmap("tab20")
    colour = {c: palette(i % 20) for i, c in enumerate(legend_categories)}

    def colour_of(item):
        return colour.get(int(categories[item]), (0.6, 0.6, 0.6, 1.0))

    fig, ax = plt.subplots(figsize=(9, 7.5), dpi=110)
    for slot in range(k):
        for item in data["retrieved"][slot]:
            x0, y0 = interest_xy[slot]
            x1, y1 = item_xy[int(item)]
            ax.plot([x0, x1], [y0, y1], color="0.8", linewidth=0.6, zorder=1)
    for item in retrieved_ids:
        ax.scatter(*item_xy[item], s=42, color=colour_of(item), edgecolors="white", linewidths=0.5, zorder=2)
    for item in future_ids:
        ax.scatter(*item_xy[item], s=120, marker="D", color=colour_of(item), edgecolors="black", linewidths=1.4, zorder=3)
        if item in retrieved_ids:
            ax.scatter(*item_xy[item], s=330, facecolors="none", edgecolors="red", linewidths=1.4, zorder=3)
    for slot in range(k):
        ax.scatter(*interest_xy[slot], s=320, marker="*", color="black", zorder=4)
        label = f"#{slot}" + ("" if data["codes"] is None else " " + ",".join(str(int(c)) for c in data["codes"][slot]))
        ax.annotate(label, interest_xy[slot], textcoords="offset points", xytext=(8, 6), fontsize=9, zorder=5)

    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="*", color="black", linestyle="", markersize=14, label="interest (slot, code)"),
               Line2D([], [], marker="o", color="0.5", linestyle="", markersize=7, label="retrieved item"),
               Line2D([], [], marker="D", color="0.5", markeredgecolor="black", linestyle="", markersize=8,
                      label="future item"),
               Line2D([], [], marker="o", markerfacecolor="none", markeredgecolor="red", linestyle="", markersize=13,
                      label="future item retrieved")]
    handles += [Line2D([], [], marker="o", color=colour[c], linestyle="", markersize=7, label=category_names[c])
                for c in legend_categories]
    ax.legend(handles=handles, loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=8,
              title=f"category ({category_field})" if category_field else "no category field", title_fontsize=8)
    hits = len(set(future_ids) & set(retrieved_ids))
    ax.set_title(f"user {user}: {k} interests, top {data['retrieved'].shape[1]} items each; "
                 f"{hits}/{len(future_ids)} future items retrieved", fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("t-SNE 1 (cosine)")
    ax.set_ylabel("t-SNE 2")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


# --- dictionary utilisation ------------------------------------------------------------------------
@torch.no_grad()
def draw_utilisation(model, path):
    """Items per codeword at every dictionary level (GemiRec), sorted, into ``path``."""
    dictionary = getattr(model, "dictionary", None)
    if dictionary is None:
        raise ConfigError(f"model {type(model).__name__} has no interest dictionary; the utilisation picture is GemiRec's")
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    codes = dictionary.codes_for(torch.arange(1, model.n_items, device=model.item_embedding.weight.device),
                                 model.item_embedding.weight).cpu().numpy()
    sizes = list(dictionary.sizes)
    fig, axes = plt.subplots(1, len(sizes), figsize=(3.2 * len(sizes) + 1, 3.4), dpi=110, squeeze=False)
    for level, (ax, size) in enumerate(zip(axes[0], sizes)):
        counts = np.sort(np.bincount(codes[:, level], minlength=size))[::-1]
        used = int((counts > 0).sum())
        ax.bar(np.arange(size), counts, color="tab:blue" if used > size // 2 else "tab:orange", width=0.85)
        ax.set_title(f"level {level + 1}: {used}/{size} used ({100 * used / size:.0f}%)", fontsize=9)
        ax.set_xlabel("codeword (sorted by items)", fontsize=8)
        if level == 0:
            ax.set_ylabel("items", fontsize=8)
        ax.tick_params(labelsize=7)
        for axis in (ax.xaxis, ax.yaxis):  # codewords and item counts are whole numbers
            axis.set_major_locator(MaxNLocator(integer=True))
    distinct = len({tuple(row) for row in codes})
    fig.suptitle(f"{type(model).__name__} interest dictionary: {len(codes)} items on {distinct} distinct codes "
                 f"of {int(np.prod(sizes))}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def safe_name(token):
    """A file-name-safe form of a user token."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", str(token)) or "user"


def visualize(checkpoint, user, out_dir, n=10, future=5, seed=2020, config_dict=None):
    """Write both pictures for ``user`` (the dictionary picture only for GemiRec); return their paths."""
    from recbole_gemirec.serving.export import load_for_serving

    if n < 1 or future < 1:
        raise ConfigError(f"n={n}, future={future}: both must be positive")
    if not 0 <= seed <= SEED_MAX:  # t-SNE's random_state range; found only after loading, inside sklearn
        raise ConfigError(f"--seed={seed} is not allowed; allowed: an integer from 0 to {SEED_MAX}")
    check_writable_directory(out_dir, "--out")  # before the model and the data are loaded
    config, model, dataset, _, _ = load_for_serving(checkpoint, config_dict)
    data = interest_picture_data(model, dataset, config, user, n=n, future=future)
    categories, names, field = item_categories(dataset, config)
    os.makedirs(out_dir, exist_ok=True)
    paths = [draw_interests(data, categories, names, field, user,
                            os.path.join(out_dir, INTERESTS_FILE.format(user=safe_name(user))), seed)]
    if getattr(model, "dictionary", None) is not None:
        paths.append(draw_utilisation(model, os.path.join(out_dir, UTILISATION_FILE)))
    return paths


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_gemirec.visualize",
                                     description="Draw a user's interests (t-SNE) and the dictionary's utilisation.")
    parser.add_argument("--checkpoint", required=True, help="checkpoint written by recbole_gemirec")
    parser.add_argument("--user", required=True, help="user token (as in the dataset files)")
    parser.add_argument("--out", required=True, help="directory for the PNG files")
    parser.add_argument("-n", type=int, default=10, help="items retrieved per interest (default 10)")
    parser.add_argument("--future", type=int, default=5, help="last items of the sequence held out as future (default 5)")
    parser.add_argument("--seed", type=int, default=2020, help="t-SNE seed")
    parser.add_argument("--data_path", default=None, help="where the dataset lives, if not where it was trained")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="setting to use instead of the checkpoint's (repeatable)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gemirec.checkpoint import CheckpointError
    from recbole_gemirec.serving.__main__ import parse_overrides

    try:
        config_dict = parse_overrides(args.override)
        if args.data_path:
            config_dict["data_path"] = args.data_path
        paths = visualize(args.checkpoint, args.user, args.out, n=args.n, future=args.future, seed=args.seed,
                          config_dict=config_dict or None)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
