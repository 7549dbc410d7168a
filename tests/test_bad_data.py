"""Bad input data: each case is handled in the documented way or stopped with one clear error,
and no run reports a NaN metric (docs/reliability.md, recbole_gemirec/data/checks.py)."""

import logging
import math
import os
import sys

import pytest
import torch

from conftest import REPO_DIR, TEST_DATA, TINY_YAML

sys.path.insert(0, REPO_DIR)
import run_recbole_gemirec  # noqa: E402

TINY = os.path.join(TEST_DATA, "tiny", "tiny")


def tiny_lines(suffix):
    with open(f"{TINY}.{suffix}", encoding="utf-8") as f:
        return f.read().splitlines()


def write_dataset(root, name="bad", inter=None, item=None, user=None):
    """Write ``<root>/<name>/<name>.{inter,item,user}``: the tiny files, or the given lists of lines."""
    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    for suffix, lines in (("inter", inter), ("item", item), ("user", user)):
        lines = tiny_lines(suffix) if lines is None else lines
        if lines is not False:
            (directory / f"{name}.{suffix}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def cli(args, tmp_path, monkeypatch, capsys, data_path, dataset="bad"):
    """The command line's ``main`` on a dataset under ``data_path``: ``(exit status, stderr)``."""
    monkeypatch.chdir(tmp_path)
    argv = [f"--dataset={dataset}", f"--config_files={TINY_YAML}", f"--data_path={data_path}"] + list(args)
    if not any(a.startswith("--model=") for a in argv):
        argv.append("--model=SASRec")
    status = run_recbole_gemirec.main(argv)
    return status, capsys.readouterr().err


def assert_data_error(status, err, *words):
    assert status == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: "), err
    for word in words:
        assert word in line, (word, line)


def by_user(lines):
    users = {}
    for line in lines[1:]:
        users.setdefault(line.split("\t")[0], []).append(line)
    return users


# --- stopped with a clear error ----------------------------------------------------------------------------
def test_an_empty_interaction_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    data = write_dataset(tmp_path / "data", inter=tiny_lines("inter")[:1])
    status, err = cli([], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "dataset 'bad' is empty", "bad.inter has no rows")


def _inter(replace_line=None, append=(), header=None):
    lines = tiny_lines("inter")
    if header is not None:
        lines[0] = header
    if replace_line is not None:
        lines[replace_line[0]] = replace_line[1]
    return lines + list(append)


# (id, files to write, extra arguments, words the one error line must hold). Each is a kind of format defect
# RecBole's reader would turn into a traceback or into silent garbage (recbole_gemirec/data/atomic_files.py).
FORMAT_DEFECTS = [
    ("comma-separated", {"inter": [l.replace("\t", ",") for l in tiny_lines("inter")]}, [],
     ["bad.inter", "line 1", "tab-separated"]),
    ("byte-order mark", {"inter": ["\ufeff" + tiny_lines("inter")[0]] + tiny_lines("inter")[1:]}, [],
     ["bad.inter", "byte-order mark"]),
    ("unknown type", {"inter": _inter(header="user_id:token\titem_id:token\trating:int\ttimestamp:float")}, [],
     ["bad.inter", "line 1", "'rating:int'", "token_seq"]),
    ("column twice", {"inter": _inter(header="user_id:token\titem_id:token\titem_id:float\ttimestamp:float")}, [],
     ["bad.inter", "'item_id' appears twice"]),
    ("non-numeric float", {"inter": _inter(replace_line=(3, "1\t6\t4\tyesterday"))}, [],
     ["bad.inter", "line 4", "'timestamp'", "'yesterday'", "a finite number"]),
    # inf and nan parse as floats and were trained on (a NaN rating, an infinite timestamp)
    ("infinite float", {"inter": _inter(replace_line=(3, "1\t6\tinf\t1001010"))}, [],
     ["bad.inter", "line 4", "'rating'", "'inf'", "a finite number"]),
    ("nan float", {"inter": _inter(replace_line=(2, "1\t6\t4\t-NaN"))}, [],
     ["bad.inter", "line 3", "'timestamp'", "'-NaN'", "a finite number"]),
    # pandas reads NA, null, None ... as a missing value, and RecBole dropped such rows without a word
    ("user id NA", {"inter": _inter(replace_line=(3, "NA\t6\t4\t1001010"))}, [],
     ["bad.inter", "line 4", "'user_id'", "'NA'", "missing id", "allowed:"]),
    ("item id null in the item file", {"item": tiny_lines("item") + ["null\tc0\tg0"]}, [],
     ["bad.item", f"line {len(tiny_lines('item')) + 1}", "'item_id'", "'null'", "missing id"]),
    # two different rows of one item: RecBole kept the first and dropped the other without a word
    ("item listed twice", {"item": tiny_lines("item") + [tiny_lines("item")[2].replace("c1", "c0")]}, [],
     ["bad.item", f"line {len(tiny_lines('item')) + 1}", "'item_id'", "'2' again", "than on line 3",
      "one row per id"]),
    # a value opening with a double quote was read by pandas as quoted text running over the next rows
    ("quoted value", {"item": tiny_lines("item")[:2] + ['2\t"c1\tg1'] + tiny_lines("item")[3:]}, [],
     ["bad.item", "line 3", "'category'", "double quote", "allowed:"]),
    ("user listed twice", {"user": tiny_lines("user") + [tiny_lines("user")[1].replace("job3", "job1")]}, [],
     ["bad.user", f"line {len(tiny_lines('user')) + 1}", "'user_id'", "'1' again", "than on line 2"]),
    ("repeated header", {"inter": _inter(append=[tiny_lines("inter")[0]])}, [],
     ["bad.inter", f"line {len(tiny_lines('inter')) + 1}", "header line is repeated"]),
    ("too many fields", {"inter": _inter(replace_line=(2, "1\t6\t4\t1001010\textra"))}, [],
     ["bad.inter", "line 3", "5 fields", "header has 4"]),
    ("over-long token", {"item": tiny_lines("item") + ["999\t" + "c" * 200_000 + "\tg1"]}, [],
     ["bad.item", f"line {len(tiny_lines('item')) + 1}", "'category'", "200,000 characters"]),
    ("missing user column", {"inter": [l.split("\t", 1)[1] for l in tiny_lines("inter")]}, [],
     ["bad.inter", "no column 'user_id'", "USER_ID_FIELD"]),
    ("item file without item id", {"item": [l.split("\t", 1)[1] for l in tiny_lines("item")]},
     ["--load_col={'inter': ['user_id', 'item_id', 'timestamp'], 'item': ['category', 'genre']}"],
     ["bad.item", "no column 'item_id'", "ITEM_ID_FIELD"]),
    ("load_col names a missing column", {}, ["--load_col={'inter': ['user_id', 'item_id', 'timestamp', 'price']}"],
     ["bad.inter", "load_col['inter']", "'price'"]),
    ("zero-byte file", {"inter": []}, [], ["bad.inter", "the file is empty"]),
    # a header-only .item with a token_seq column was ValueError: max() arg is an empty sequence, inside RecBole
    ("header-only item file", {"item": tiny_lines("item")[:1]}, [], ["bad.item has no rows", "allowed:"]),
    ("header-only user file", {"user": tiny_lines("user")[:1]}, [], ["bad.user has no rows", "load_col"]),
]


@pytest.mark.parametrize("files, args, words", [c[1:] for c in FORMAT_DEFECTS], ids=[c[0] for c in FORMAT_DEFECTS])
def test_a_malformed_atomic_file_is_one_error_line_naming_file_line_and_field(
        tmp_path, monkeypatch, capsys, files, args, words):
    directory = tmp_path / "data" / "bad"
    write_dataset(tmp_path / "data")
    for suffix, lines in files.items():
        (directory / f"bad.{suffix}").write_text("\n".join(lines) + ("\n" if lines else ""), encoding="utf-8")
    status, err = cli(args, tmp_path, monkeypatch, capsys, tmp_path / "data")
    assert_data_error(status, err, *words)


def test_an_exact_repeat_of_a_row_passes_the_format_check(tmp_path):
    # RecBole keeps the first row of an id; a repeat that says the same is harmless (only a differing one is refused)
    from recbole_gemirec.data.atomic_files import check_atomic_files

    write_dataset(tmp_path, item=tiny_lines("item") + [tiny_lines("item")[2]], user=tiny_lines("user") + [tiny_lines("user")[1]])
    config = {"data_path": str(tmp_path / "bad"), "dataset": "bad", "benchmark_filename": None, "load_col": None,
              "USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "field_separator": "\t", "seq_separator": " ",
              "encoding": "utf-8"}
    check_atomic_files(config)  # raises DataError on a defect
    differing = tiny_lines("item") + [tiny_lines("item")[2].replace("c1", "c0")]
    write_dataset(tmp_path, item=differing)
    with pytest.raises(Exception, match="'2' again"):
        check_atomic_files(config)


def test_a_byte_that_is_not_utf8_is_one_error_line_naming_the_line(tmp_path, monkeypatch, capsys):
    data = write_dataset(tmp_path / "data")
    path = data / "bad" / "bad.item"
    path.write_bytes(path.read_bytes() + b"998\tcaf\xe9\tg1\n")
    status, err = cli([], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "bad.item", f"line {len(tiny_lines('item')) + 1}", "not valid utf-8")


def test_a_dataset_emptied_by_its_filters_names_the_filter_settings(tmp_path, monkeypatch, capsys):
    status, err = cli(["--user_inter_num_interval=[1000,inf)"], tmp_path, monkeypatch, capsys, TEST_DATA, "tiny")
    assert_data_error(status, err, "dataset 'tiny' is empty", "no interaction is left after filtering",
                      "user_inter_num_interval='[1000,inf)'")


def test_a_missing_interaction_file_is_a_clear_error(tmp_path, monkeypatch, capsys):
    data = write_dataset(tmp_path / "data", inter=False)
    status, err = cli([], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "dataset 'bad' cannot be read", "bad.inter")


@pytest.mark.parametrize("dataset", ["ml-1m", "ml-100k"])
def test_a_missing_data_folder_is_refused_even_for_a_dataset_recbole_knows(tmp_path, monkeypatch, capsys, dataset):
    # RecBole would download ml-1m (a traceback offline) and read its own ml-100k instead of the folder named
    status, err = cli(["--model=Pop"], tmp_path, monkeypatch, capsys, tmp_path / "none", dataset)
    assert_data_error(status, err, f"dataset {dataset!r} cannot be read", str(tmp_path / "none" / dataset), "does not exist")


def test_ml100k_is_read_from_the_users_data_path_where_one_is_set_and_from_recboles_copy_otherwise(tmp_path):
    from recbole_gemirec.config import Config

    mine = Config(model="Pop", dataset="ml-100k", config_dict={"data_path": str(tmp_path)})
    assert mine["data_path"] == str(tmp_path / "ml-100k")
    shipped = Config(model="Pop", dataset="ml-100k")
    assert os.path.isfile(os.path.join(shipped["data_path"], "ml-100k.inter"))


def test_every_user_with_a_single_interaction_is_a_clear_error(tmp_path, monkeypatch, capsys):
    lines = tiny_lines("inter")
    data = write_dataset(tmp_path / "data", inter=lines[:1] + [rows[0] for rows in by_user(lines).values()])
    status, err = cli([], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "every one of its 120 users has a single interaction")


def test_an_empty_validation_split_is_a_clear_error(tmp_path, monkeypatch, capsys):
    # two interactions per user: one training sample each, nothing left for validation under loo
    lines = tiny_lines("inter")
    data = write_dataset(tmp_path / "data", inter=lines[:1] + [r for rows in by_user(lines).values() for r in rows[:2]])
    status, err = cli([], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "dataset 'bad' has an empty validation split")


def test_a_float_column_without_any_value_is_a_clear_error(tmp_path, monkeypatch, capsys):
    lines = tiny_lines("inter")
    cleared = [lines[0]] + ["\t".join(line.split("\t")[:2] + ["", line.split("\t")[3]]) for line in lines[1:]]
    data = write_dataset(tmp_path / "data", inter=cleared)
    status, err = cli(["--load_col={'inter':['user_id','item_id','rating','timestamp']}"],
                      tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "float field 'rating'", "has missing values")


def test_no_category_at_all_is_a_clear_error_when_cur_needs_it(tmp_path, monkeypatch, capsys):
    items = tiny_lines("item")
    data = write_dataset(tmp_path / "data", item=[items[0]] + [f"{line.split(chr(9))[0]}\t\t" for line in items[1:]])
    status, err = cli(["--metrics=['Recall','CUR']", "--category_field=category"], tmp_path, monkeypatch, capsys, data)
    assert_data_error(status, err, "no item has a value in the category field 'category'")


# --- handled in the documented way -----------------------------------------------------------------------------
SINGLE_USERS = ("1", "2", "3", "4", "5")
NO_CATEGORY_ITEMS = ("1", "2", "3")
NO_AGE_USERS = ("6", "7", "8")


@pytest.fixture(scope="module")
def messy_run(tmp_path_factory):
    """One short GemiRec run on tiny data with five single-interaction users, three items without any
    category and three users without an age, evaluated with CUR; returns (result, warnings, parts)."""
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    root = tmp_path_factory.mktemp("messy")
    inter = tiny_lines("inter")
    users = by_user(inter)
    rows = [r for u, rs in users.items() for r in (rs[:1] if u in SINGLE_USERS else rs)]
    items = [line if line.split("\t")[0] not in NO_CATEGORY_ITEMS else f"{line.split(chr(9))[0]}\t\t"
             for line in tiny_lines("item")]
    people = [line if line.split("\t")[0] not in NO_AGE_USERS else "\t".join([line.split("\t")[0], ""] + line.split("\t")[2:])
              for line in tiny_lines("user")]
    write_dataset(root, inter=inter[:1] + rows, item=items, user=people)
    handler_records = []

    class Collect(logging.Handler):
        def emit(self, record):
            handler_records.append(record.getMessage())

    handler = Collect(level=logging.WARNING)
    logging.getLogger().addHandler(handler)
    cwd = os.getcwd()
    os.chdir(root)
    try:
        config = Config(model="GemiRec", dataset="bad", config_file_list=[TINY_YAML], config_dict={
            "data_path": str(root), "checkpoint_dir": str(root / "saved"), "interest_category_field": "category", "recipe": "paper",
            "category_field": "category", "metrics": ["Recall", "NDCG", "CUR"], "gpt_layers": 1,
            "stage_epochs": {"retrieval": 1, "dictionary": 1, "joint": 1}})
        parts = build_run(config)
        logging.getLogger().addHandler(handler)  # build_run's init_logger replaces the handlers
        trainer = parts["trainer"]
        _, valid = trainer.fit(parts["train_data"], parts["valid_data"])
        test = trainer.evaluate(parts["test_data"])
    finally:
        os.chdir(cwd)
        logging.getLogger().removeHandler(handler)
    return {"valid": dict(valid), "test": dict(test)}, handler_records, parts


def test_users_with_a_single_interaction_are_ignored_with_one_warning(messy_run):
    result, warnings, parts = messy_run
    single = [w for w in warnings if "single interaction" in w]
    assert len(single) == 1 and "5 of 120 users have a single interaction" in single[0], warnings
    dataset = parts["dataset"]
    internal = [dataset.token2id(dataset.uid_field, u) for u in SINGLE_USERS]
    for split in ("train_data", "valid_data", "test_data"):
        users = parts[split]._dataset.inter_feat[dataset.uid_field]
        assert not any(bool((users == u).any()) for u in internal), split
    assert all(math.isfinite(v) for v in result["test"].values())


def test_items_without_a_category_are_no_category_for_gemirec_and_cur(messy_run):
    result, warnings, parts = messy_run
    missing = [w for w in warnings if "have no 'category' value" in w]
    assert len(missing) == 1 and "3 of 80 items" in missing[0], warnings
    dataset, model = parts["dataset"], parts["model"]
    ids = [dataset.token2id(dataset.iid_field, i) for i in NO_CATEGORY_ITEMS]
    assert all(int(model.item_category[i]) == -1 for i in ids)  # ignored by the first-level init
    others = torch.ones(len(model.item_category), dtype=torch.bool)
    others[[0] + ids] = False
    assert bool((model.item_category[others] >= 0).all())
    for phase in ("valid", "test"):
        assert {"cur@5", "cur@10"} <= set(result[phase])
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in result[phase].values()), result


def test_missing_user_feature_values_become_the_padding_token(messy_run):
    _, _, parts = messy_run
    dataset, model = parts["dataset"], parts["model"]
    column = model.feature_fields.index("age")
    for user in NO_AGE_USERS:
        assert int(model.user_feature_table[dataset.token2id(dataset.uid_field, user), column]) == 0
    assert int(model.user_feature_table[dataset.token2id(dataset.uid_field, "9"), column]) > 0
