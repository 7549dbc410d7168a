"""Data: evaluation protocols, the synthetic generator and raw-file converters.

``dataset_class_for`` / ``data_preparation_for`` are the hooks through which
:func:`recbole_gemirec.utils.create_dataset` and :func:`recbole_gemirec.utils.data_preparation` pick an
extension-specific dataset or loader set; ``None`` means RecBole's own.
"""


def dataset_class_for(config):
    """The dataset class the configuration needs, or ``None`` for RecBole's default."""
    return None


def data_preparation_for(config):
    """The ``data_preparation`` function the configuration needs, or ``None`` for RecBole's default."""
    return None
