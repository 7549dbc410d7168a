"""Histories keep the real time order even where RecBole's float32 timestamps tie (docs/design.md §7)."""

import numpy as np
import pytest


def write_dataset(root, name, rows):
    folder = root / name
    folder.mkdir()
    with open(folder / f"{name}.inter", "w", encoding="utf-8") as f:
        f.write("user_id:token\titem_id:token\ttimestamp:float\n")
        for user, item, time in rows:
            f.write(f"{user}\t{item}\t{time!r}\n")


@pytest.mark.parametrize("protocol", ["loo", "user"])
def test_sub_second_events_keep_their_time_order(in_tmp, protocol):
    from recbole_gemirec.config import Config
    from recbole_gemirec.utils import create_dataset, data_preparation

    rng = np.random.default_rng(0)
    base = 1_600_000_000.0  # float32 spacing here is 128 s: every event of a user below ties
    rows = []
    for user in range(1, 31):
        times = base + 0.25 * np.arange(12)  # true order: item 100 + i at base + i/4 seconds
        events = [(user, 100 + i, float(t)) for i, t in enumerate(times)]
        rows += [events[i] for i in rng.permutation(len(events))]  # file order scrambled
    write_dataset(in_tmp, "ticks", rows)
    settings = {"data_path": str(in_tmp), "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id",
                "TIME_FIELD": "timestamp", "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
                "user_inter_num_interval": "[0,inf)", "item_inter_num_interval": "[0,inf)", "state": "ERROR",
                "eval_protocol": protocol, "MAX_ITEM_LIST_LENGTH": 20, "show_progress": False}
    if protocol == "user":
        settings.update({"user_split": [0.8, 0.1, 0.1], "eval_args": {"split": {"LS": "valid_and_test"},
                         "order": "TO", "group_by": "user", "mode": "full"}})
    config = Config(model="SASRec", dataset="ticks", config_dict=settings)
    dataset = create_dataset(config)
    train, _, _ = data_preparation(config, dataset)
    data = train._dataset
    field = data.field2id_token["item_id"]
    sequences = data.inter_feat["item_id_list"].numpy()
    lengths = data.inter_feat["item_length"].numpy()
    longest = int(np.argmax(lengths))
    tokens = [int(field[i]) for i in sequences[longest][: lengths[longest]]]
    assert tokens == sorted(tokens) and len(tokens) >= 9, tokens  # item 100 + i came i-th
