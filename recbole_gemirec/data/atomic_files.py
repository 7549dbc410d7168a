"""The format of RecBole's atomic files, checked before RecBole reads them (docs/reliability.md).

RecBole reads ``<data_path>/<dataset>/<dataset>.{inter,user,item}`` with pandas and trusts the format: a
comma-separated file, a UTF-8 byte-order mark, a header column without ``:type``, a non-numeric value in a
``float`` column or a token longer than Python's csv field limit end in a traceback from deep inside pandas,
and a header line repeated inside an all-token file silently becomes one more user. :func:`check_atomic_files`
streams every file the run will load once (one pass, no DataFrame) and raises :class:`DataError` with the file,
the line, the field, the value and what is allowed at the first defect:

* the file must decode with ``encoding`` (RecBole's key, default ``utf-8``) and must not start with a
  byte-order mark;
* the header must be ``name:type`` columns separated by ``field_separator`` (a tab by default), with a type
  RecBole knows (token, token_seq, float, float_seq), no name twice;
* every file must have a row (a header-only ``.item`` with a ``token_seq`` column was a traceback);
* the ``.inter`` file must hold ``USER_ID_FIELD`` and ``ITEM_ID_FIELD``; ``.user`` holds
  ``USER_ID_FIELD``, ``.item`` holds ``ITEM_ID_FIELD``;
* every column ``load_col`` asks for must exist in that file;
* every row must have at most as many fields as the header (RecBole's reader rejects more; fewer are empty
  values) and must not repeat the header;
* ``float`` values must be finite numbers (empty is allowed: RecBole fills the column mean; ``inf`` and
  ``nan`` are not: they would train on infinities or NaN), ``float_seq`` elements too; no field may exceed
  :data:`FIELD_LIMIT` characters;
* no value may start with a double quote: pandas reads it as quoted text, which may span lines (rows vanish
  into one field without a word) or end in a parser traceback;
* an id (``USER_ID_FIELD``, ``ITEM_ID_FIELD``) must not be one of pandas' missing-value markers
  (:data:`MISSING_MARKERS`, such as ``NA`` or ``null``): RecBole's reader would take it for a missing id and drop
  the row without a word. An empty id stays what RecBole makes of it (the row is dropped);
* ``.item`` holds one row per item and ``.user`` one row per user. RecBole keeps the first row of an id and
  drops the others without a word, so a repeated id whose row differs from its first is refused (which
  features hold would be an accident of the file's order); an exact repeat of the row is harmless and passes.
"""

import csv
import math
import os

from recbole_gemirec.errors import DataError

#: RecBole's feature types (``recbole.utils.FeatureType`` values).
FEATURE_TYPES = ("token", "token_seq", "float", "float_seq")

#: Longest field pandas' python engine (which RecBole uses) accepts: the csv module's limit.
FIELD_LIMIT = csv.field_size_limit()

#: The id columns each file must have (RecBole joins the files on them).
ID_FIELDS = {"inter": ("USER_ID_FIELD", "ITEM_ID_FIELD"), "user": ("USER_ID_FIELD",), "item": ("ITEM_ID_FIELD",)}

#: Longest value quoted back in a message.
SHOWN = 40

#: The strings pandas' ``read_csv`` (RecBole's reader) turns into a missing value by default, besides the empty
#: string (its ``STR_NA_VALUES``, written out: that name is private to pandas).
MISSING_MARKERS = frozenset((
    "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A", "NA",
    "NULL", "NaN", "None", "n/a", "nan", "null",
))


def _shown(value):
    return repr(value if len(value) <= SHOWN else value[:SHOWN] + "...")


def dataset_files(config):
    """``[(source, path)]`` of the atomic files RecBole will read for this run (those that exist)."""
    directory = str(config["data_path"])
    name = config["dataset"]
    split_names = config["benchmark_filename"] or []
    inter = [f"{name}.{part}.inter" for part in split_names] or [f"{name}.inter"]
    files = [("inter", os.path.join(directory, f)) for f in inter]
    files += [(source, os.path.join(directory, f"{name}.{source}")) for source in ("user", "item")]
    wanted = config["load_col"]
    return [(source, path) for source, path in files
            if os.path.isfile(path) and (wanted is None or source in wanted or source == "inter")]


def check_atomic_files(config):
    """Raise :class:`DataError` at the first format defect of any file the run loads (see module doc)."""
    for source, path in dataset_files(config):
        ids = {key: config[key] for key in ID_FIELDS[source] if config[key]}
        header = _check_file(path, config, ids, unique=None if source == "inter" else ids.get(ID_FIELDS[source][0]))
        for key, field in ids.items():
            if field not in header:
                raise DataError(f"{path}: line 1: no column {field!r} ({key}); the header has "
                                f"{sorted(header)}. Name the column {field!r} or set {key}")
        _check_load_col(config, source, path, header)


def _check_load_col(config, source, path, header):
    wanted = config["load_col"]
    if not wanted or source not in wanted or wanted[source] == "*":
        return
    for field in wanted[source]:
        if field not in header:
            raise DataError(f"{path}: line 1: load_col[{source!r}] names column {field!r}, which the file does "
                            f"not have; its columns: {sorted(header)}")


def _decoded_lines(path, encoding):
    """Lines of ``path`` (without their end) decoded with ``encoding``, or a :class:`DataError` naming the
    line and byte offset of the first undecodable byte."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                yield number, raw.decode(encoding).rstrip("\r\n")
            except UnicodeDecodeError as err:
                raise DataError(f"{path}: line {number}: byte {raw[err.start:err.start + 1]!r} at column "
                                f"{err.start + 1} is not valid {encoding}; save the file as {encoding} "
                                "(or set encoding)") from None
            except LookupError:
                raise DataError(f"encoding={encoding!r} is not a text encoding Python knows (e.g. utf-8)") from None


def parse_header(path, line, separator):
    """``{name: type}`` of a header line, or a :class:`DataError` naming the defect."""
    if line.startswith("\ufeff"):
        raise DataError(f"{path}: line 1: the file starts with a UTF-8 byte-order mark; RecBole would read it as "
                        "part of the first column name. Save the file as UTF-8 without BOM")
    header = {}
    for column in line.split(separator):
        name, colon, ftype = column.partition(":")
        if not colon or ftype not in FEATURE_TYPES or not name:
            hint = ""
            if separator not in line and ("," in line or ";" in line):
                hint = f" The header has no field_separator {separator!r}: atomic files are tab-separated."
            raise DataError(f"{path}: line 1: header column {_shown(column)} is not name:type with type one of "
                            f"{', '.join(FEATURE_TYPES)}.{hint}")
        if name in header:
            raise DataError(f"{path}: line 1: column {name!r} appears twice in the header")
        header[name] = ftype
    return header


def _check_file(path, config, ids=None, unique=None):
    """Stream one atomic file; return its header ``{field: type}``. ``ids`` ``{key: field}`` are its id
    columns (no missing-value marker allowed), ``unique`` the one whose values must not repeat (``.user``,
    ``.item``)."""
    separator = config["field_separator"] or "\t"
    seq_separator = config["seq_separator"] or " "
    lines = _decoded_lines(path, config["encoding"] or "utf-8")
    first = next(lines, None)
    if first is None or not first[1].strip():
        raise DataError(f"{path}: the file is empty; line 1 must be the header (name:type columns)")
    header_line = first[1]
    header = parse_header(path, header_line, separator)
    names, types = list(header), list(header.values())
    id_columns = [(names.index(field), key) for key, field in (ids or {}).items() if field in header]
    unique_column = names.index(unique) if unique in header else None
    seen = {}  # id -> (line number, hash of the row): the first row of each id
    rows = 0
    for number, line in lines:
        if not line.strip():
            continue
        if line == header_line:
            raise DataError(f"{path}: line {number}: the header line is repeated; a data row was expected")
        values = line.split(separator)
        if len(values) > len(names):
            raise DataError(f"{path}: line {number}: {len(values)} fields, the header has {len(names)} "
                            f"(field_separator {separator!r})")
        for name, ftype, value in zip(names, types, values):
            _check_value(path, number, name, ftype, value, seq_separator)
        for column, key in id_columns:
            if column < len(values) and values[column] in MISSING_MARKERS:
                raise DataError(f"{path}: line {number}: field {names[column]!r} ({key}) has value "
                                f"{values[column]!r}, which RecBole's reader (pandas) takes for a missing id and "
                                "would drop the row; allowed: any other token (rename the id)")
        if unique_column is not None and unique_column < len(values):
            value, row = values[unique_column], hash(line)
            first = seen.setdefault(value, (number, row))
            if first[1] != row:
                raise DataError(f"{path}: line {number}: field {names[unique_column]!r} has value {_shown(value)} "
                                f"again, with other features than on line {first[0]} (RecBole would keep that first "
                                "row and drop this one silently); allowed: one row per id, or exact repeats")
        rows += 1
    if not rows and path.endswith(".inter"):
        raise DataError(f"dataset {config['dataset']!r} is empty: {path} has no rows (a header only); at least "
                        "one interaction is needed")
    if not rows:  # RecBole refuses an empty feature table, or fails on max() of no token_seq lengths
        raise DataError(f"{path} has no rows (a header only); allowed: a file with rows, or no such file (or "
                        "leave it out of load_col)")
    return header


def _check_value(path, number, name, ftype, value, seq_separator):
    if len(value) > FIELD_LIMIT:
        raise DataError(f"{path}: line {number}: field {name!r} holds {len(value):,} characters; at most "
                        f"{FIELD_LIMIT:,} are allowed")
    if value.startswith('"'):
        raise DataError(f"{path}: line {number}: field {name!r} has value {_shown(value)}, which starts with a double "
                        "quote: RecBole's reader (pandas) takes it for quoted text, which can run over the next lines "
                        "and swallow their rows; allowed: a value that does not start with '\"' (remove the quotes)")
    if ftype == "float":
        parts = [value.strip()]
    elif ftype == "float_seq":
        parts = value.split(seq_separator)
    else:
        return
    for part in parts:
        if part.strip() and not _is_finite_number(part):
            raise DataError(f"{path}: line {number}: field {name!r} ({ftype}) has value {_shown(part)}; "
                            "allowed: a finite number, or empty")


def _is_finite_number(text):
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
