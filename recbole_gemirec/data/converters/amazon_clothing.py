"""Amazon Clothing, Shoes and Jewelry (Ni et al. 2018 dump) -> RecBole atomic files (docs/design.md §6).

Raw files: the ratings-only CSV ``Clothing_Shoes_and_Jewelry.csv`` (no header; ``item,user,rating,timestamp``,
timestamp in seconds) and ``meta_Clothing_Shoes_and_Jewelry.json`` (strict JSON lines; ``asin`` and
``category``, a flat list from coarse to fine: the category is its last element). A header line
``item,user,rating,timestamp`` is tolerated. ``.gz`` versions are read directly.
"""

from recbole_gemirec.data.converters import common
from recbole_gemirec.errors import DataError

RAW_FILES = ("Clothing_Shoes_and_Jewelry.csv", "meta_Clothing_Shoes_and_Jewelry.json")
COLUMNS = ["item", "user", "rating", "timestamp"]
TIME_UNIT = "s"


def has_header(path):
    """Whether line 1 is the (optional) header ``item,user,rating,timestamp``."""
    return common.read_header(path) == COLUMNS


def read_ratings(path, show_progress=False):
    """All ratings as :class:`common.Interactions` (file order)."""
    inter = common.Interactions(time_unit=TIME_UNIT)
    chunks = common.iter_csv_chunks(path, COLUMNS, ["item", "user", "timestamp"], header=has_header(path),
                                    show_progress=show_progress)
    for first_line, chunk in chunks:
        common.check_nonempty(chunk["item"], "item id", path, first_line)
        common.check_nonempty(chunk["user"], "user id", path, first_line)
        times = common.check_digits(chunk["timestamp"], "timestamp", path, first_line, "integer seconds")
        inter.add_chunk(chunk["user"], chunk["item"], times)
    return inter


def finest_category(record, path, number):
    """The last element of the flat ``category`` list, or '' when there is none."""
    value = record.get("category")
    if value in (None, "", []):
        return ""
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise DataError(f"{path}, line {number}: 'category' is not a list of category names")
    return common.clean_category(value[-1])


def convert(raw, meta, min_item=5, min_user=5, show_progress=False):
    """Read, check, filter and tabulate; ``meta`` is a list with the one metadata file."""
    if len(meta) != 1:
        raise DataError(f"amazon-clothing takes one metadata file (meta_Clothing_Shoes_and_Jewelry.json), got {len(meta)}")
    inter = read_ratings(raw, show_progress)
    categories = common.read_json_categories(meta[0], inter.items, finest_category, show_progress)
    return common.build_tables(inter, categories, min_item, min_user)
