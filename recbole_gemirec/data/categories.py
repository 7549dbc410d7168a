"""An item's category: the one convention every part of the extension reads (docs/design.md §5).

A ``token`` field gives its value, a ``token_seq`` field (ml-100k's genres) its first value; an item without
one (an empty cell, an empty sequence) gets token 0, RecBole's padding token, which means "no category". The
GemiRec model, the AMR/CUR collector, the diagnostics, the pictures and the data checks all call
:func:`first_category_tokens`; those that count categories from 0 subtract one (-1 = none).
"""

import numpy as np
import torch


def first_category_tokens(dataset, field):
    """Category token per internal item id, ``LongTensor [n_items]`` (0 = none; row 0 is padding), or ``None``
    when ``field`` is not a loaded item field. Works on the item table before and after RecBole turns it
    from a DataFrame into tensors."""
    item_feat = dataset.item_feat
    if not field or item_feat is None or field not in item_feat.columns:
        return None
    values = item_feat[field]
    if isinstance(values, torch.Tensor):
        if values.dim() > 1:
            values = values[:, 0] if values.shape[1] > 0 else values.new_zeros(values.shape[0])
        return values.long()
    first = [(cell[0] if len(cell) else 0) if isinstance(cell, (np.ndarray, list)) else cell for cell in values]
    return torch.as_tensor(np.asarray(first, dtype=np.int64))
