"""Command line for serving: export a checkpoint, then recommend from the export.

    python -m recbole_gemirec.serving export --checkpoint PATH --out DIR [--index flat|ivf|hnsw]
           [--nlist N] [--nprobe N] [--M N] [--ef_construction N] [--ef_search N] [--history full|test]
    python -m recbole_gemirec.serving recommend --index DIR --user TOKEN [--user TOKEN ...] [-n 20]
           [--exclude ITEM ...] [--nprobe N | --ef_search N] [--json]
    python -m recbole_gemirec.serving recommend --index DIR --history ITEM [ITEM ...] [--user TOKEN]
           [--interests cache|generator] [--exclude-history] [-n 20] [--exclude ITEM ...] [--json]

``--user`` alone serves the queries stored at export time; ``--history`` computes them from the given
items now (oldest first), for a known user (``--user``: their features and interest cache) or a new one.

A wrong input (unknown user or item token, missing or damaged export, bad checkpoint, unknown index
type) ends with one ``error: ...`` line and exit status 2.
"""

import argparse
import json
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m recbole_gemirec.serving",
                                     description="Export a trained model to a faiss index and recommend from it.")
    commands = parser.add_subparsers(dest="command", required=True)

    export = commands.add_parser("export", help="write a serving export of a checkpoint")
    export.add_argument("--checkpoint", required=True, help="checkpoint written by recbole_gemirec "
                        "(GemiRec: the joint stage's file)")
    export.add_argument("--out", required=True, help="export directory (created; an earlier export is replaced)")
    export.add_argument("--index", default="flat", help="flat (exact, default), ivf or hnsw")
    export.add_argument("--nlist", type=int, default=None, help="IVF: number of cells (default 4 sqrt(items))")
    export.add_argument("--nprobe", type=int, default=None, help="IVF: cells searched per query (default nlist/4)")
    export.add_argument("--M", type=int, default=None, help="HNSW: graph degree (default 32)")
    export.add_argument("--ef_construction", type=int, default=None, help="HNSW: build-time beam (default 200)")
    export.add_argument("--ef_search", type=int, default=None, help="HNSW: search-time beam (default 128)")
    export.add_argument("--history", default="full", help="full (whole sequence, default) or test (the test rows)")
    export.add_argument("--data_path", default=None, help="where the dataset lives, if not where it was trained")
    export.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="setting to use instead of the checkpoint's (repeatable), e.g. "
                             "interest_dictionary_sizes=[32,16,8,4]")

    rec = commands.add_parser("recommend", help="recommend items for users from an export")
    rec.add_argument("--index", required=True, help="export directory")
    rec.add_argument("--user", action="append", default=[], help="user token (repeat for several users; "
                     "with --history at most one)")
    rec.add_argument("--history", nargs="+", default=None, metavar="ITEM",
                     help="serve from these item tokens, oldest first, instead of the stored queries")
    rec.add_argument("--interests", default=None, help="with --history (GemiRec): cache (the user's stored "
                     "interests; the generator for a new user, default) or generator (chosen from the history now)")
    rec.add_argument("--exclude-history", action="store_true", help="with --history: never recommend its items")
    rec.add_argument("-n", type=int, default=20, help="items per user (default 20)")
    rec.add_argument("--exclude", action="append", default=[], help="item token never to recommend (repeatable)")
    rec.add_argument("--nprobe", type=int, default=None, help="IVF: cells searched per query")
    rec.add_argument("--ef_search", type=int, default=None, help="HNSW: search-time beam")
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser.parse_args(argv)


def parse_overrides(pairs):
    """``KEY=VALUE`` strings as a dict, each value read as data, never evaluated
    (:func:`recbole_gemirec.config.parse_value`: a Python literal, a YAML flow list or mapping,
    ``true``/``false``, or else the string itself)."""
    from recbole_gemirec.config import parse_value
    from recbole_gemirec.errors import ConfigError

    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--override {pair!r}: expected KEY=VALUE")
        settings[key] = parse_value(value)
    return settings


def _index_params(args):
    """The index parameters given on the command line (checked against the index type by the export)."""
    return {name: getattr(args, name) for name in ("nlist", "nprobe", "M", "ef_construction", "ef_search")
            if getattr(args, name) is not None}


def run_export(args):
    from recbole_gemirec.serving.export import export_model

    config_dict = parse_overrides(args.override)
    if args.data_path:
        config_dict["data_path"] = args.data_path
    meta = export_model(args.checkpoint, args.out, index_type=args.index, index_params=_index_params(args),
                        history=args.history, config_dict=config_dict or None)
    print(f"exported {meta['model']} ({meta['kind']}) on {meta['dataset']}: {meta['n_users']} users x "
          f"{meta['interests']} queries, {meta['n_items']} items, {meta['index']['type']} index "
          f"{meta['index']['params']} -> {args.out}")
    return 0


def _code_text(code):
    """An interest's code tuple, or ``u`` for the query that is the user vector itself (codes -1)."""
    return "u" if code and all(c < 0 for c in code) else str(tuple(code))


def format_table(recommender, result):
    who = "new user" if result.user is None else f"user {result.user}"
    lines = [f"{who}: top {len(result.items)} of {recommender.meta['n_items']} items "
             f"({recommender.meta['model']}, {recommender.index_type} index, queries: {result.source})"]
    if recommender.interest_codes is not None and result.source in ("stored", "cache"):
        interests = recommender.user_interests(result.user)
        lines.append("  interests: " + "  ".join(f"#{e['slot']}={_code_text(e['code'])}" for e in interests))
    lines.append(f"  {'rank':>4}  {'item':<12} {'score':>9}  interest")
    for rank, (item, score, slot) in enumerate(zip(result.items, result.scores, result.interest_slots), 1):
        code = "" if result.interest_codes is None else " " + _code_text(result.interest_codes[rank - 1])
        lines.append(f"  {rank:>4}  {item:<12} {score:>9.4f}  #{slot}{code}")
    return "\n".join(lines)


def run_recommend(args):
    from recbole_gemirec.serving.recommender import Recommender

    from recbole_gemirec.errors import ConfigError

    if args.history is None and not args.user:
        raise ConfigError("recommend needs --user TOKEN (stored queries) or --history ITEM [ITEM ...]")
    if args.history is not None and len(args.user) > 1:
        raise ConfigError("--history serves one user: give --user at most once with it")
    if args.history is None and (args.interests is not None or args.exclude_history):
        raise ConfigError("--interests and --exclude-history apply to --history ITEM [ITEM ...] only")
    # one request per process: the query side runs eagerly (compiling it would cost about a second, once)
    recommender = Recommender.load(args.index, compile_live=False, nprobe=args.nprobe, ef_search=args.ef_search)
    if args.history is None:
        results = recommender.recommend(args.user, n=args.n, exclude=args.exclude)
    else:
        results = [recommender.recommend_history(args.history, n=args.n, user=args.user[0] if args.user else None,
                                                 interests=args.interests or "cache", exclude=args.exclude,
                                                 exclude_history=args.exclude_history)]
    if args.json:
        payload = [r.as_dict() for r in results]
        for entry in payload:
            if entry["source"] == "stored":
                entry["interests"] = recommender.user_interests(entry["user"])
        print(json.dumps(payload if len(payload) > 1 else payload[0], indent=1))
    else:
        print("\n".join(format_table(recommender, r) for r in results))
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gemirec.checkpoint import CheckpointError
    from recbole_gemirec.errors import ConfigError, DataError

    try:
        return run_export(args) if args.command == "export" else run_recommend(args)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
