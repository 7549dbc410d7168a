"""Shared parts of the raw-file converters (docs/design.md §6): strict readers, the paper family's filtering,
time ordering and atomic writing of RecBole atomic files.

Every reader names the file, the line and the problem when the input is malformed (a missing column, a bad
timestamp, a truncated JSON line) by raising :class:`recbole_gemirec.errors.DataError`; nothing is written
before all input has been read and checked, and the output directory is written under a temporary name and
renamed into place, so a failed conversion leaves nothing half-written.

Ids are interned to dense integer codes in order of first appearance while reading, which keeps memory
proportional to the number of distinct users and items rather than to the number of string objects.
"""

import ast
import csv
import gzip
import json
import os
import re
import shutil
import sys
import tempfile
from array import array
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recbole_gemirec.errors import ConfigError, DataError

CSV_CHUNK_BYTES = 64 * 1024 * 1024  # bytes of raw lines per block
_WHITESPACE = re.compile(r"\s+")
# What a token of a RecBole atomic file cannot hold: its separators (tab-separated lines), or a leading double
# quote (pandas, RecBole's reader, reads such a value as quoted text running over the following lines).
_SEPARATORS = r"[\t\r\n]"
_QUOTE = '"'


# --------------------------------------------------------------------------------------------- opening

def open_binary(path):
    """Open ``path`` for reading bytes; ``.gz`` files are decompressed on the fly."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: file not found")
    return gzip.open(path, "rb") if str(path).endswith(".gz") else open(path, "rb")


def find_raw_file(directory, name):
    """``directory/name`` or ``directory/name.gz``, whichever exists."""
    for candidate in (name, name + ".gz"):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    raise DataError(f"{directory}: expected the raw file {name} (or {name}.gz) in this directory")


def progress(iterable, desc, enabled, unit=" lines"):
    """Wrap ``iterable`` in a tqdm bar on stderr when ``enabled``."""
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit=unit, file=sys.stderr, mininterval=1.0)


# ------------------------------------------------------------------------------------------ JSON lines

def parse_record(text):
    """One line as a dict: strict JSON first, then a Python literal (old Amazon metadata is written with
    Python's repr). ``ast.literal_eval`` only evaluates literals, never code. Returns (record, error)."""
    try:
        return json.loads(text), None
    except json.JSONDecodeError as err:
        json_error = f"{err.msg}, column {err.colno}"
    try:
        return ast.literal_eval(text), None
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        return None, json_error


def iter_json_lines(path, show_progress=False):
    """Yield ``(line_number, record)`` for every non-blank line of a JSON-lines file; raise
    :class:`DataError` for a line that is not UTF-8, not a JSON/Python-literal object, or truncated."""
    with open_binary(path) as f:
        for number, raw in enumerate(progress(f, os.path.basename(path), show_progress), start=1):
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {number}: not UTF-8 text ({err.reason})") from None
            if not text:
                continue
            record, error = parse_record(text)
            if error is not None:
                raise DataError(f"{path}, line {number}: truncated or malformed JSON ({error})")
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object, found {type(record).__name__}")
            yield number, record


def require_key(record, key, path, number):
    """``record[key]``, or a :class:`DataError` naming the missing key."""
    if key not in record or record[key] in (None, ""):
        raise DataError(f"{path}, line {number}: missing key '{key}'")
    return record[key]


def token_problem(text):
    """Why ``text`` cannot be written as one token of a RecBole atomic file, or None: the files are
    tab-separated lines, and pandas (RecBole's reader) reads a value that starts with a double quote as quoted
    text running over the following lines."""
    if re.search(_SEPARATORS, text):
        return "it holds a tab or a line break, the separators of RecBole's atomic files"
    if text.startswith(_QUOTE):
        return "it starts with a double quote, which RecBole's reader takes for quoted text"
    return None


def require_token(record, key, path, number):
    """``str(record[key])`` as an id token; :class:`DataError` for a missing key or a value that cannot be
    written to an atomic file (:func:`token_problem`)."""
    text = str(require_key(record, key, path, number))
    problem = token_problem(text)
    if problem:
        raise DataError(f"{path}, line {number}: {key}={text!r} cannot be an id: {problem}; allowed: text "
                        "without tabs or line breaks, not starting with a double quote")
    return text


def check_category(text, path, number):
    """``text`` (a cleaned category name) written as a token, or a :class:`DataError` naming file and line."""
    problem = token_problem(text)
    if problem:
        raise DataError(f"{path}, line {number}: category {text!r} cannot be written: {problem}; allowed: "
                        "a name not starting with a double quote")
    return text


def read_json_categories(path, items, leaf_of, show_progress=False):
    """Item code -> category from a JSON-lines metadata file, for the items of ``items`` (an
    :class:`Interner`). ``leaf_of(record, path, number)`` extracts a record's category; every line is
    checked, the first record of an item wins, items with an empty category are left out."""
    categories = {}
    for number, record in iter_json_lines(path, show_progress):
        code = items.codes.get(str(require_key(record, "asin", path, number)))
        leaf = leaf_of(record, path, number)
        if code is not None and code not in categories and leaf:
            categories[code] = check_category(leaf, path, number)
    return categories


def parse_int_time(value, key, path, number):
    """An integer timestamp from an int or a string of digits; :class:`DataError` otherwise."""
    if isinstance(value, bool):
        value = None
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    raise DataError(f"{path}, line {number}: bad timestamp {key}={value!r} (expected non-negative integer)")


def clean_category(name):
    """A category name as one token: whitespace runs collapsed, ends stripped."""
    return _WHITESPACE.sub(" ", str(name)).strip()


# -------------------------------------------------------------------------------------------------- CSV

def read_header(path):
    """The first line of a CSV file split on commas (stripped, byte-order mark removed)."""
    with open_binary(path) as f:
        first = f.readline()
    try:
        text = first.decode("utf-8").lstrip("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as err:
        raise DataError(f"{path}, line 1: not UTF-8 text ({err.reason})") from None
    return [column.strip() for column in text.split(",")]


def decode_lines(lines, path, first_line):
    """Byte lines -> str lines without line ends; :class:`DataError` naming a line that is not UTF-8."""
    try:
        text = b"".join(lines).decode("utf-8")
    except UnicodeDecodeError:
        for offset, raw in enumerate(lines):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}, line {first_line + offset}: not UTF-8 text ({err.reason})") from None
        raise
    return pd.Series(text.split("\n")[: len(lines)], dtype=object).str.rstrip("\r")


def iter_csv_chunks(path, columns, needed, header, free_last=False, show_progress=False):
    """Yield ``(first_line_number, DataFrame of str)`` chunks of a plain comma-separated file.

    ``header`` says whether line 1 is a header; it must hold every column of ``needed`` (any order, and its
    order is then the file's). Every row must have exactly the header's number of fields (or at least that
    many when ``free_last``: the last column may itself hold commas): a short row (a missing column, a
    truncated last line), a long row or a blank line raises :class:`DataError` naming file, line and
    problem. The files of these datasets use no quoting, so fields are split on every comma. Only the
    ``needed`` columns are returned, as stripped strings.
    """
    first_line = 1
    with open_binary(path) as f:
        if header:
            names = read_header(path)
            missing = [column for column in needed if column not in names]
            if missing:
                raise DataError(f"{path}, line 1: missing column {', '.join(repr(c) for c in missing)} "
                                f"in header '{','.join(names)}' (expected {','.join(columns)})")
            columns = names
            f.readline()
            first_line = 2
        blocks = iter(lambda: f.readlines(CSV_CHUNK_BYTES), [])
        for lines in progress(blocks, os.path.basename(str(path)), show_progress, unit=" blocks of 64 MB"):
            text = decode_lines(lines, path, first_line)
            check_field_counts(text, columns, path, first_line, free_last)
            parts = text.str.split(",", n=len(columns) - 1, expand=True)
            parts.columns = columns
            yield first_line, pd.DataFrame({c: parts[c].str.strip() for c in needed})
            first_line += len(lines)


def check_field_counts(text, columns, path, first_line, free_last):
    """Raise :class:`DataError` for the first blank line or line with the wrong number of fields."""
    fields = text.str.count(",").to_numpy() + 1
    expected = len(columns)
    bad = (text == "").to_numpy(dtype=bool) | (fields < expected)
    if not free_last:
        bad |= fields > expected
    if not bad.any():
        return
    row = int(np.flatnonzero(bad)[0])
    where = f"{path}, line {first_line + row}"
    if text.iloc[row] == "":
        raise DataError(f"{where}: empty line")
    found = int(fields[row])
    if found < expected:
        absent = ", ".join(repr(c) for c in columns[found:])
        raise DataError(f"{where}: missing column {absent} (expected {expected} fields: {','.join(columns)})")
    raise DataError(f"{where}: expected {expected} fields ({','.join(columns)}), found {found}")


def check_digits(values, what, path, first_line, unit):
    """Integer array from a Series of digit strings; :class:`DataError` naming the first bad line."""
    text = values.str.strip()
    bad = ~text.str.fullmatch(r"\d{1,18}").to_numpy(dtype=bool)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"{path}, line {first_line + row}: bad {what} {values.iloc[row]!r} (expected {unit})")
    return text.to_numpy().astype(np.int64)


def check_nonempty(values, what, path, first_line):
    """Raise :class:`DataError` for the first empty id, or the first that cannot be written as a token of
    an atomic file (a tab, or a leading double quote: :func:`token_problem`)."""
    empty = (values.str.strip() == "").to_numpy(dtype=bool)
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError(f"{path}, line {first_line + row}: empty {what}")
    check_tokens(values, what, path, first_line)


def check_tokens(values, what, path, first_line, rows=None):
    """Raise :class:`DataError` for the first value of ``values`` that cannot be written as a token of an atomic
    file (:func:`token_problem`, vectorised); ``rows`` are the values' row positions in the chunk (default: one
    value per row, in order), for the line number."""
    text = values.str.strip()
    bad = (text.str.contains(_SEPARATORS, regex=True) | text.str.startswith(_QUOTE)).to_numpy(dtype=bool)
    if bad.any():
        at = int(np.flatnonzero(bad)[0])
        row = at if rows is None else int(rows[at])
        raise DataError(f"{path}, line {first_line + row}: {what}={text.iloc[at]!r} cannot be written: "
                        f"{token_problem(text.iloc[at])}; allowed: text without tabs, not starting with a "
                        "double quote")


# ------------------------------------------------------------------------------------------ interning

class Interner:
    """Dense integer codes for id strings, in order of first appearance."""

    def __init__(self):
        self.codes = {}

    def code(self, name):
        """The code of one id (new ids get the next code)."""
        codes = self.codes
        found = codes.get(name)
        if found is None:
            found = codes[name] = len(codes)
        return found

    def encode(self, values):
        """Codes of a Series/array of ids (vectorised through ``pandas.factorize``)."""
        local, uniques = pd.factorize(np.asarray(values, dtype=object), sort=False)
        mapping = np.fromiter((self.code(u) for u in uniques), dtype=np.int64, count=len(uniques))
        return mapping[local]

    def names(self):
        """Id strings indexed by code."""
        return np.array(list(self.codes), dtype=object)


@dataclass
class Interactions:
    """Interactions in file order as integer codes and integer times (``time_unit`` seconds or ms)."""

    users: Interner = field(default_factory=Interner)
    items: Interner = field(default_factory=Interner)
    user_codes: list = field(default_factory=list)
    item_codes: list = field(default_factory=list)
    times: list = field(default_factory=list)
    time_unit: str = "s"

    def add_chunk(self, users, items, times):
        self.user_codes.append(self.users.encode(users))
        self.item_codes.append(self.items.encode(items))
        self.times.append(np.asarray(times, dtype=np.int64))

    def add_arrays(self, user_codes, item_codes, times):
        self.user_codes.append(np.frombuffer(user_codes, dtype=np.int64) if len(user_codes) else np.zeros(0, np.int64))
        self.item_codes.append(np.frombuffer(item_codes, dtype=np.int64) if len(item_codes) else np.zeros(0, np.int64))
        self.times.append(np.frombuffer(times, dtype=np.int64) if len(times) else np.zeros(0, np.int64))

    def arrays(self):
        """``(user, item, time)`` as int64 arrays."""
        def cat(parts):
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        return cat(self.user_codes), cat(self.item_codes), cat(self.times)


def new_code_buffers():
    """Three compact int64 buffers (user codes, item codes, times) for line-by-line readers."""
    return array("q"), array("q"), array("q")


# ---------------------------------------------------------------------------------- filtering and order

def filter_and_sort(user, item, time, min_item=5, min_user=5):
    """The paper family's filtering and ordering (docs/design.md §6).

    One pass, not an iterated k-core: keep items with ``>= min_item`` interactions, then users with
    ``>= min_user`` interactions on the kept items. Rows are then ordered by user (first appearance in the
    raw file) and time; rows with equal times keep their file order.

    Returns ``(order, counts)``: row indices to write, and a dict of counts for each stage.
    """
    counts = {"raw": count_stage(user, item, np.ones(len(user), dtype=bool))}
    item_ok = np.bincount(item, minlength=item.max() + 1 if len(item) else 0) >= min_item
    keep = item_ok[item] if len(item) else np.zeros(0, dtype=bool)
    counts["after_item_filter"] = count_stage(user, item, keep)
    user_count = np.bincount(user[keep], minlength=user.max() + 1 if len(user) else 0)
    keep &= user_count[user] >= min_user
    counts["after_user_filter"] = count_stage(user, item, keep)
    rows = np.flatnonzero(keep)
    order = rows[np.lexsort((rows, time[rows], user[rows]))]
    return order, counts


def count_stage(user, item, keep):
    """Interactions, users and items among the kept rows."""
    return {"interactions": int(keep.sum()), "users": int(len(np.unique(user[keep]))),
            "items": int(len(np.unique(item[keep])))}


def format_times(times, unit):
    """Timestamps in seconds as strings: integers for ``s``, three decimals for ``ms`` (exact)."""
    if unit == "s":
        return times.astype(str)
    if unit == "ms":
        seconds = (times // 1000).astype(str)
        millis = pd.Series(times % 1000).astype(str).str.zfill(3).to_numpy()
        return np.char.add(np.char.add(seconds, "."), millis.astype(str))
    raise ValueError(f"unknown time unit {unit!r}")


# ------------------------------------------------------------------------------------------------ output

@dataclass
class Converted:
    """A converted dataset ready to be written."""

    inter: pd.DataFrame
    item: pd.DataFrame
    counts: dict
    items_without_category: int


def build_tables(inter, categories, min_item=5, min_user=5):
    """Filter, order and tabulate ``inter`` (:class:`Interactions`); ``categories`` maps item code -> name
    for items whose metadata gives a category. Returns a :class:`Converted`."""
    user, item, time = inter.arrays()
    if len(user) == 0:
        raise DataError("the raw files hold no usable interactions")
    order, counts = filter_and_sort(user, item, time, min_item, min_user)
    if len(order) == 0:
        raise DataError(f"no interactions left after filtering (items >= {min_item}, then users >= {min_user} "
                        f"interactions); counts: {counts}")
    user_names, item_names = inter.users.names(), inter.items.names()
    inter_table = pd.DataFrame({
        "user_id:token": user_names[user[order]],
        "item_id:token": item_names[item[order]],
        "timestamp:float": format_times(time[order], inter.time_unit),
    })
    kept_items = np.unique(item[order])
    category = np.array([categories.get(int(code), "") for code in kept_items], dtype=object)
    item_table = pd.DataFrame({"item_id:token": item_names[kept_items], "category:token": category})
    return Converted(inter_table, item_table, counts, int((category == "").sum()))


def write_atomic(converted, out_dir, name, force=False):
    """Write ``out_dir/name/name.inter`` and ``name.item`` atomically; return the dataset directory."""
    def write(staging):
        for suffix, table in (("inter", converted.inter), ("item", converted.item)):
            # no quoting: every value was checked to hold no tab or line break and not to start with a double
            # quote, so it is written as it is (pandas would put a value holding a quote between quotes,
            # which RecBole's reader then refuses)
            table.to_csv(os.path.join(staging, f"{name}.{suffix}"), sep="\t", index=False, lineterminator="\n",
                         quoting=csv.QUOTE_NONE)

    return write_directory_atomic(out_dir, name, write, force)


def write_directory_atomic(out_dir, name, write, force=False):
    """Create ``out_dir/name`` holding what ``write(staging_dir)`` writes, all or nothing.

    The files are written to a temporary directory next to the target and renamed into place; on any
    failure the temporary directory is removed. An existing target is replaced only with ``force``.
    """
    if not name or os.sep in name or name.startswith(".") or (os.altsep and os.altsep in name):
        raise ConfigError(f"--name must be a plain file name, got {name!r}")
    target = os.path.join(out_dir, name)
    if os.path.exists(target) and not force:
        raise ConfigError(f"{target} already exists; pass --force to replace it")
    os.makedirs(out_dir, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=out_dir)
    try:
        write(staging)
        os.chmod(staging, 0o755)
        if os.path.exists(target):
            old = tempfile.mkdtemp(prefix=f".{name}.", suffix=".old", dir=out_dir)
            os.replace(target, os.path.join(old, name))
            os.replace(staging, target)
            shutil.rmtree(old)
        else:
            os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
