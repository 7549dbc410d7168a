"""Data: evaluation protocols, the synthetic generator and raw-file converters.

``dataset_class_for`` / ``data_preparation_for`` are the hooks through which
:func:`recbole_gemirec.utils.create_dataset` and :func:`recbole_gemirec.utils.data_preparation` pick an
extension-specific dataset or loader set; ``None`` means RecBole's own.

``eval_protocol`` (docs/design.md §4) selects the evaluation protocol: ``loo`` (or unset) is RecBole's native
leave-one-out, ``user`` the ComiRec/REMI user split of :mod:`recbole_gemirec.data.user_protocol`.
"""

from recbole_gemirec.errors import ConfigError

PROTOCOLS = ("loo", "user")


def _protocol(config):
    protocol = config["eval_protocol"]
    if protocol is None:
        return "loo"
    if protocol not in PROTOCOLS:
        raise ConfigError(f"eval_protocol={protocol!r} is not allowed; allowed: {', '.join(PROTOCOLS)}")
    return protocol


def ensure_category_loaded(config):
    """Add ``category_field`` to ``load_col['item']`` so the item categories that CUR reads are loaded.

    RecBole loads only the columns listed in ``load_col`` (ml-100k's default loads no item column). When
    ``load_col`` lists no item columns at all, the item id and the category field are loaded; when it
    lists some, the category field is appended. ``load_col: ~`` (load everything) is left alone.
    """
    field = config["category_field"]
    load_col = config["load_col"]
    if not field or not isinstance(load_col, dict):
        return
    columns = list(load_col.get("item") or [])
    if not columns:
        columns = [config["ITEM_ID_FIELD"]]
    if field not in columns:
        columns.append(field)
    load_col = dict(load_col)
    load_col["item"] = columns
    config["load_col"] = load_col


def dataset_class_for(config):
    """The dataset class the configuration needs, or ``None`` for RecBole's default.

    Also makes sure the configured ``category_field`` is loaded (:func:`ensure_category_loaded`).
    """
    protocol = _protocol(config)
    ensure_category_loaded(config)
    if protocol == "user":
        from recbole_gemirec.data.user_protocol import UserProtocolDataset

        return UserProtocolDataset
    return None


def data_preparation_for(config):
    """The ``data_preparation`` function the configuration needs, or ``None`` for RecBole's default."""
    if _protocol(config) == "user":
        from recbole_gemirec.data.user_protocol import user_protocol_data_preparation

        return user_protocol_data_preparation
    return None
