"""RetailRocket e-commerce events -> RecBole atomic files (docs/design.md §6).

Raw files: ``events.csv`` (header ``timestamp,visitorid,event,itemid,transactionid``; timestamp in
milliseconds; only ``event == "view"`` rows are kept, as in the paper family) and
``item_properties_part1.csv`` / ``item_properties_part2.csv`` (header ``timestamp,itemid,property,value``;
an item's category is its ``categoryid`` property, the latest value by timestamp when it changed).
Timestamps are written in seconds with three decimals, so no millisecond ordering is lost.
"""

import numpy as np
import pandas as pd

from recbole_gemirec.data.converters import common
from recbole_gemirec.errors import DataError

RAW_FILES = ("events.csv", "item_properties_part1.csv", "item_properties_part2.csv")
EVENT_COLUMNS = ["timestamp", "visitorid", "event", "itemid", "transactionid"]
PROPERTY_COLUMNS = ["timestamp", "itemid", "property", "value"]
TIME_UNIT = "ms"


def read_views(path, show_progress=False):
    """View events as :class:`common.Interactions` (file order); every row is checked."""
    inter = common.Interactions(time_unit=TIME_UNIT)
    needed = ["timestamp", "visitorid", "event", "itemid"]
    for first_line, chunk in common.iter_csv_chunks(path, EVENT_COLUMNS, needed, header=True,
                                                    show_progress=show_progress):
        times = common.check_digits(chunk["timestamp"], "timestamp", path, first_line, "integer milliseconds")
        common.check_nonempty(chunk["visitorid"], "visitorid", path, first_line)
        common.check_nonempty(chunk["itemid"], "itemid", path, first_line)
        view = (chunk["event"] == "view").to_numpy()
        inter.add_chunk(chunk["visitorid"][view], chunk["itemid"][view], times[view])
    return inter


def read_categories(paths, items, show_progress=False):
    """Item code -> latest ``categoryid`` over all property files (later file order wins a tie)."""
    frames = []
    for path in paths:
        for first_line, chunk in common.iter_csv_chunks(path, PROPERTY_COLUMNS, PROPERTY_COLUMNS, header=True,
                                                        free_last=True, show_progress=show_progress):
            times = common.check_digits(chunk["timestamp"], "timestamp", path, first_line, "integer milliseconds")
            common.check_nonempty(chunk["itemid"], "itemid", path, first_line)
            is_category = (chunk["property"] == "categoryid").to_numpy()
            rows = chunk[is_category]
            values = rows["value"].map(common.clean_category)  # only the categoryid rows, a share of the file
            common.check_tokens(values, "categoryid value", path, first_line, rows=np.flatnonzero(is_category))
            frames.append(pd.DataFrame({
                "item": rows["itemid"].to_numpy(),
                "time": times[is_category],
                "value": values.to_numpy(),
            }))
    if not frames:
        return {}
    table = pd.concat(frames, ignore_index=True)
    table = table[table["value"] != ""]
    latest = table.iloc[np.argsort(table["time"].to_numpy(), kind="stable")].drop_duplicates("item", keep="last")
    return {items.codes[i]: v for i, v in zip(latest["item"], latest["value"]) if i in items.codes}


def convert(raw, meta, min_item=5, min_user=5, show_progress=False):
    """Read, check, filter and tabulate; ``meta`` lists the item-property files."""
    if not meta:
        raise DataError("retailrocket needs the item property files (item_properties_part1.csv, _part2.csv)")
    inter = read_views(raw, show_progress)
    categories = read_categories(meta, inter.items, show_progress)
    return common.build_tables(inter, categories, min_item, min_user)
