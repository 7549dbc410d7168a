"""Convert the paper family's public raw files to RecBole atomic files (docs/design.md §6).

    python -m recbole_gemirec.data.convert amazon-books --raw reviews_Books_5.json --meta meta_Books.json --out data
    python -m recbole_gemirec.data.convert amazon-clothing --raw Clothing_Shoes_and_Jewelry.csv \\
        --meta meta_Clothing_Shoes_and_Jewelry.json --out data
    python -m recbole_gemirec.data.convert retailrocket --raw events.csv \\
        --meta item_properties_part1.csv --meta item_properties_part2.csv --out data
    python -m recbole_gemirec.data.convert retailrocket --raw DOWNLOADS/ --out data   # standard names in a folder

``--raw`` is the interaction file, ``--meta`` (repeatable) the category metadata; or ``--raw DIR`` alone,
a folder holding the files under their standard names (``.gz`` accepted). The output is
``OUT/NAME/NAME.inter`` (``user_id``, ``item_id``, ``timestamp`` in seconds; sorted by user, then time) and
``NAME.item`` (``item_id``, ``category``; empty when the metadata has none), after the paper family's
one-pass filtering: items with >= 5 interactions, then users with >= 5. Use ``OUT`` as ``data_path`` with
``dataset_configs/NAME.yaml``. Malformed input stops with ``error: FILE, line N: problem`` and exit
status 2, leaving nothing behind.
"""

import argparse
import json
import os
import sys
import time

from recbole_gemirec.errors import ConfigError, DataError


def build_parser():
    from recbole_gemirec.data.converters import CONVERTERS

    parser = argparse.ArgumentParser(
        prog="python -m recbole_gemirec.data.convert",
        description="Convert a public dataset's raw files to RecBole atomic files in OUT/NAME/.",
    )
    parser.add_argument("dataset", choices=sorted(CONVERTERS), help="which raw format")
    parser.add_argument("--raw", required=True,
                        help="the interaction file, or a folder holding all raw files under their standard names")
    parser.add_argument("--meta", action="append", default=[],
                        help="a category metadata file (repeat for several, e.g. RetailRocket's two parts)")
    parser.add_argument("--out", required=True, help="output directory (RecBole data_path)")
    parser.add_argument("--name", default=None, help="dataset name (default: the dataset argument)")
    parser.add_argument("--min-item", type=int, default=5, help="keep items with at least this many interactions")
    parser.add_argument("--min-user", type=int, default=5,
                        help="then keep users with at least this many interactions on kept items")
    parser.add_argument("--force", action="store_true", help="replace OUT/NAME if it exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return parser


def resolve_inputs(module, raw, meta):
    """``(interaction file, [metadata files])`` from ``--raw``/``--meta`` (``--raw DIR``: standard names)."""
    from recbole_gemirec.data.converters import common

    if os.path.isdir(raw):
        if meta:
            raise ConfigError("give either --raw DIR alone or --raw FILE with --meta FILE, not --raw DIR with --meta")
        inter_name, *meta_names = module.RAW_FILES
        inter_path = common.find_raw_file(raw, inter_name)
        return inter_path, [common.find_raw_file(raw, name) for name in meta_names]
    if not meta:
        raise ConfigError(f"--meta is required with --raw FILE (expected: {', '.join(module.RAW_FILES[1:])})")
    for path in [raw, *meta]:
        if not os.path.isfile(path):
            raise DataError(f"{path}: file not found")
    return raw, list(meta)


def convert(dataset, raw, meta, out, name=None, min_item=5, min_user=5, force=False, show_progress=False):
    """Convert and write one dataset; return ``(target directory, Converted)``."""
    from recbole_gemirec.data.converters import CONVERTERS, common

    if min_item < 1 or min_user < 1:
        raise ConfigError("--min-item and --min-user must be >= 1")
    module = CONVERTERS[dataset]
    raw_path, meta_paths = resolve_inputs(module, raw, meta)
    converted = module.convert(raw_path, meta_paths, min_item, min_user, show_progress)
    target = common.write_atomic(converted, out, name or dataset, force)
    return target, converted


def main(argv=None):
    args = build_parser().parse_args(argv)
    began = time.perf_counter()
    try:
        target, converted = convert(args.dataset, args.raw, args.meta, args.out, args.name, args.min_item,
                                    args.min_user, args.force, show_progress=not args.quiet)
    except (ConfigError, DataError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        final = converted.counts["after_user_filter"]
        print(f"wrote {target} in {time.perf_counter() - began:.1f} s: {final['users']} users, {final['items']} "
              f"items, {final['interactions']} interactions; {converted.items_without_category} items without "
              f"category")
        print("filtering counts: " + json.dumps(converted.counts))
    return 0


if __name__ == "__main__":
    sys.exit(main())
