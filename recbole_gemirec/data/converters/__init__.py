"""Converters from the paper family's public raw files to RecBole atomic files (docs/design.md §6).

One module per dataset (``amazon_books``, ``amazon_clothing``, ``retailrocket``), each with
``RAW_FILES`` (the standard raw file names, for ``--raw DIR``) and ``convert(raw, meta, ...)``; the shared
readers, filtering and atomic writing are in ``common``. The command line is
``python -m recbole_gemirec.data.convert`` (see ``docs/data.md``).
"""

from recbole_gemirec.data.converters import amazon_books, amazon_clothing, retailrocket

CONVERTERS = {
    "amazon-books": amazon_books,
    "amazon-clothing": amazon_clothing,
    "retailrocket": retailrocket,
}
