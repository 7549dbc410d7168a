"""Amazon Books (McAuley et al. 2014 dump) -> RecBole atomic files (docs/design.md §6).

Raw files: ``reviews_Books_5.json`` (one JSON object per line: ``reviewerID``, ``asin``, ``unixReviewTime``
in seconds, or else ``reviewTime`` as ``"MM D, YYYY"``) and ``meta_Books.json`` (one object per line,
historically Python repr rather than JSON; ``categories`` is a list of category paths). As in ComiRec's
preprocessing, an item's category is the finest element (last) of its first category path. ``.gz``
versions are read directly.
"""

import datetime

from recbole_gemirec.data.converters import common
from recbole_gemirec.errors import DataError

RAW_FILES = ("reviews_Books_5.json", "meta_Books.json")
TIME_UNIT = "s"


def review_time(record, path, number):
    """Seconds since the epoch from ``unixReviewTime``, or from ``reviewTime`` when that is absent."""
    if record.get("unixReviewTime") not in (None, ""):
        return common.parse_int_time(record["unixReviewTime"], "unixReviewTime", path, number)
    text = record.get("reviewTime")
    if text in (None, ""):
        raise DataError(f"{path}, line {number}: missing key 'unixReviewTime' (and no 'reviewTime')")
    try:
        day = datetime.datetime.strptime(str(text).strip(), "%m %d, %Y")
    except ValueError:
        raise DataError(f"{path}, line {number}: bad timestamp reviewTime={text!r} (expected 'MM D, YYYY')") from None
    return int(day.replace(tzinfo=datetime.timezone.utc).timestamp())


def read_reviews(path, show_progress=False):
    """All reviews as :class:`common.Interactions` (file order)."""
    inter = common.Interactions(time_unit=TIME_UNIT)
    users, items, times = common.new_code_buffers()
    for number, record in common.iter_json_lines(path, show_progress):
        users.append(inter.users.code(common.require_token(record, "reviewerID", path, number)))
        items.append(inter.items.code(common.require_token(record, "asin", path, number)))
        times.append(review_time(record, path, number))
    inter.add_arrays(users, items, times)
    return inter


def first_path_leaf(record, path, number):
    """The finest element of the first category path, or '' when the item has none."""
    paths = record.get("categories")
    if paths in (None, "", []):
        return ""
    if not isinstance(paths, list) or not all(isinstance(p, list) for p in paths):
        raise DataError(f"{path}, line {number}: 'categories' is not a list of category paths")
    first = paths[0]
    return common.clean_category(first[-1]) if first else ""


def convert(raw, meta, min_item=5, min_user=5, show_progress=False):
    """Read, check, filter and tabulate; ``meta`` is a list with the one metadata file."""
    if len(meta) != 1:
        raise DataError(f"amazon-books takes one metadata file (meta_Books.json), got {len(meta)}")
    inter = read_reviews(raw, show_progress)
    categories = common.read_json_categories(meta[0], inter.items, first_path_leaf, show_progress)
    return common.build_tables(inter, categories, min_item, min_user)
