"""Raw-file converters (docs/design.md §6): small files in each real raw format, written here, convert to the
expected atomic rows; the one-pass 5/5 filtering counts are right; malformed input stops with an error that
names file, line and problem, and leaves nothing behind."""

import calendar
import gzip
import json
import os
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from recbole_gemirec.data.convert import convert
from recbole_gemirec.errors import DataError

from conftest import REPO_DIR


# ------------------------------------------------------------------------------------ raw-file writers

def random_events(seed, n_users=40, n_items=25, n_rows=400):
    """(user, item, time) rows with skewed item popularity, so that some items and users get filtered."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1) ** 1.3
    users = rng.integers(0, n_users, size=n_rows)
    items = rng.choice(n_items, size=n_rows, p=weights / weights.sum())
    times = rng.integers(1_300_000_000, 1_300_000_000 + 50, size=n_rows)  # many ties on purpose
    return [(f"U{u:03d}", f"I{i:03d}", int(t)) for u, i, t in zip(users, items, times)]


def expected_rows(events, min_item=5, min_user=5):
    """Reference filtering and ordering, written independently of the converter: items >= min_item,
    then users >= min_user on kept items; users in order of first appearance, then by time, ties in file
    order."""
    item_count = Counter(item for _, item, _ in events)
    kept = [e for e in events if item_count[e[1]] >= min_item]
    user_count = Counter(user for user, _, _ in kept)
    kept = [e for e in kept if user_count[e[0]] >= min_user]
    first_seen = {}
    for user, _, _ in events:
        first_seen.setdefault(user, len(first_seen))
    indexed = sorted(enumerate(kept), key=lambda pair: (first_seen[pair[1][0]], pair[1][2], pair[0]))
    return [e for _, e in indexed]


def read_atomic(path):
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    assert lines[-1] == ""
    return lines[0].split("\t"), [line.split("\t") for line in lines[1:-1]]


def write_lines(path, lines, compress=False):
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return str(path)


def books_files(tmp_path, events, categories, compress=False):
    """reviews_Books_5.json (strict JSON) and meta_Books.json (Python repr lines, one strict JSON line)."""
    suffix = ".gz" if compress else ""
    reviews = [json.dumps({"reviewerID": u, "asin": i, "overall": 4.0, "unixReviewTime": t,
                           "reviewTime": "01 1, 2011", "summary": "ok"}) for u, i, t in events]
    meta = []
    for n, (item, paths) in enumerate(categories.items()):
        record = {"asin": item, "title": f"Book {item}", "categories": paths}
        meta.append(json.dumps(record) if n == 0 else repr(record))
    meta.append("")  # a blank line is tolerated
    return (write_lines(tmp_path / f"reviews_Books_5.json{suffix}", reviews, compress),
            write_lines(tmp_path / f"meta_Books.json{suffix}", meta, compress))


def clothing_files(tmp_path, events, categories):
    ratings = [f"{i},{u},5.0,{t}" for u, i, t in events]
    meta = [json.dumps({"asin": item, "title": "x", "category": cats}) for item, cats in categories.items()]
    return (write_lines(tmp_path / "Clothing_Shoes_and_Jewelry.csv", ratings),
            write_lines(tmp_path / "meta_Clothing_Shoes_and_Jewelry.json", meta))


def retailrocket_files(tmp_path, events, property_rows_1, property_rows_2, extra_events=()):
    lines = ["timestamp,visitorid,event,itemid,transactionid"]
    lines += [f"{t},{u},view,{i}," for u, i, t in events]
    lines += list(extra_events)
    props = ["timestamp,itemid,property,value"]
    return (write_lines(tmp_path / "events.csv", lines),
            write_lines(tmp_path / "item_properties_part1.csv", props + property_rows_1),
            write_lines(tmp_path / "item_properties_part2.csv", props + property_rows_2))


def assert_nothing_written(out):
    assert not os.path.exists(out) or os.listdir(out) == []


# ------------------------------------------------------------------------------------------ conversions

@pytest.mark.parametrize("compress", [False, True])
def test_amazon_books_rows_filtering_and_categories(tmp_path, compress):
    events = random_events(seed=1)
    items = sorted({i for _, i, _ in events})
    categories = {item: [["Books", "Fiction", f"Leaf {n % 3}"], ["Books", "Other"]] for n, item in enumerate(items)}
    categories[items[0]] = []  # no category for this one
    reviews, meta = books_files(tmp_path, events, categories, compress)

    target, converted = convert("amazon-books", reviews, [meta], str(tmp_path / "out"))

    expected = expected_rows(events)
    header, rows = read_atomic(os.path.join(target, "amazon-books.inter"))
    assert header == ["user_id:token", "item_id:token", "timestamp:float"]
    assert rows == [[u, i, str(t)] for u, i, t in expected]
    # Both filters really removed something here, and the counts say so.
    assert len(expected) < len(events)
    assert converted.counts["after_item_filter"]["items"] < converted.counts["raw"]["items"]
    assert converted.counts["after_user_filter"]["users"] < converted.counts["after_item_filter"]["users"]
    assert converted.counts["raw"]["interactions"] == len(events)
    assert converted.counts["after_user_filter"] == {
        "interactions": len(expected), "users": len({u for u, _, _ in expected}),
        "items": len({i for _, i, _ in expected})}
    item_count = Counter(i for _, i, _ in events)
    assert converted.counts["after_item_filter"]["interactions"] == sum(c for c in item_count.values() if c >= 5)

    header, item_rows = read_atomic(os.path.join(target, "amazon-books.item"))
    assert header == ["item_id:token", "category:token"]
    kept_items = {i for _, i, _ in expected}
    assert {row[0] for row in item_rows} == kept_items
    for item, category in item_rows:
        paths = categories[item]
        assert category == (paths[0][-1] if paths else "")  # finest element of the first path


def test_amazon_books_review_time_fallback_and_raw_dir(tmp_path):
    events = [(f"U{u}", f"I{i}", 0) for u in range(5) for i in range(5)]
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [json.dumps({"reviewerID": u, "asin": i, "reviewTime": f"09 {1 + k % 9}, 2013"})
             for k, (u, i, _) in enumerate(events)]
    write_lines(raw / "reviews_Books_5.json", lines)
    write_lines(raw / "meta_Books.json", [repr({"asin": f"I{i}", "categories": [["Books", f"C{i}"]]}) for i in range(5)])

    target, _ = convert("amazon-books", str(raw), [], str(tmp_path / "out"), name="books-small")

    _, rows = read_atomic(os.path.join(target, "books-small.inter"))
    days = {f"U{u}": sorted(calendar.timegm((2013, 9, 1 + (u * 5 + i) % 9, 0, 0, 0)) for i in range(5))
            for u in range(5)}
    assert [int(t) for u, _, t in rows if u == "U1"] == days["U1"]
    _, item_rows = read_atomic(os.path.join(target, "books-small.item"))
    assert dict(item_rows) == {f"I{i}": f"C{i}" for i in range(5)}


def test_amazon_clothing_rows_and_finest_category(tmp_path):
    events = random_events(seed=2)
    items = sorted({i for _, i, _ in events})
    categories = {item: ["Clothing, Shoes & Jewelry", "Women", f"Dress  Style {n % 4}"] for n, item in enumerate(items)}
    categories[items[1]] = []
    ratings, meta = clothing_files(tmp_path, events, categories)

    target, converted = convert("amazon-clothing", ratings, [meta], str(tmp_path / "out"))

    expected = expected_rows(events)
    _, rows = read_atomic(os.path.join(target, "amazon-clothing.inter"))
    assert rows == [[u, i, str(t)] for u, i, t in expected]
    _, item_rows = read_atomic(os.path.join(target, "amazon-clothing.item"))
    for item, category in item_rows:
        cats = categories[item]
        assert category == (" ".join(cats[-1].split()) if cats else "")
    assert converted.items_without_category == sum(1 for item, _ in item_rows if not categories[item])


def test_amazon_clothing_tolerates_a_header_line(tmp_path):
    events = [(f"U{u}", f"I{i}", 1_500_000_000 + u + i) for u in range(5) for i in range(5)]
    ratings, meta = clothing_files(tmp_path, events, {f"I{i}": ["C", f"L{i}"] for i in range(5)})
    with open(ratings, encoding="utf-8") as f:
        body = f.read()
    with open(ratings, "w", encoding="utf-8") as f:
        f.write("item,user,rating,timestamp\n" + body)

    target, converted = convert("amazon-clothing", ratings, [meta], str(tmp_path / "out"))

    assert converted.counts["raw"]["interactions"] == len(events)
    _, rows = read_atomic(os.path.join(target, "amazon-clothing.inter"))
    assert rows == [[u, i, str(t)] for u, i, t in expected_rows(events)]


def test_retailrocket_views_only_latest_category_and_millisecond_times(tmp_path):
    events = [(str(u), str(i), 1_433_221_332_117 + 1000 * k + u)
              for k, (u, i) in enumerate((u, i) for u in range(6) for i in range(6))]
    # Non-view events and a 7th item viewed only four times: both must disappear.
    extra = ([f"1433221399000,{u},addtocart,{u}," for u in range(3)]
             + [f"143322140{u}000,{u},view,99," for u in range(4)]
             + ["1433221410000,0,transaction,1,5"])
    part1 = ["1433000000000,0,categoryid,100", "1433000000000,0,available,1",
             "1435000000000,1,categoryid,201", "1433000000000,2,790,n500.000"]
    part2 = ["1434000000000,0,categoryid,101",  # later than part1's value for item 0
             "1434000000000,1,categoryid,200",  # earlier than part1's value for item 1
             "1433000000000,3,categoryid,300"]
    raw, props1, props2 = retailrocket_files(tmp_path, events, part1, part2, extra)

    target, converted = convert("retailrocket", raw, [props1, props2], str(tmp_path / "out"))

    assert converted.counts["raw"]["interactions"] == len(events) + 4  # views only
    _, rows = read_atomic(os.path.join(target, "retailrocket.inter"))
    assert rows == [[u, i, f"{t // 1000}.{t % 1000:03d}"] for u, i, t in expected_rows(events)]
    assert "99" not in {i for _, i, _ in rows}
    _, item_rows = read_atomic(os.path.join(target, "retailrocket.item"))
    assert dict(item_rows) == {"0": "101", "1": "201", "2": "", "3": "300", "4": "", "5": ""}


def test_one_pass_filtering_is_not_an_iterated_core(tmp_path):
    # Item J has 5 views, but one comes from user Z who has only 4 interactions: after the user filter J
    # has 4 left and is still kept (one pass), while an iterated 5-core would drop it.
    events = [(f"U{u}", f"I{i}", 10 * u + i) for u in range(5) for i in range(5)]
    events += [(f"U{u}", "J", 100 + u) for u in range(4)] + [("Z", "J", 200)]
    events += [("Z", f"I{i}", 201 + i) for i in range(3)]
    raw, props1, props2 = retailrocket_files(tmp_path, [(u, i, t * 1000) for u, i, t in events], [], [])

    _, converted = convert("retailrocket", raw, [props1, props2], str(tmp_path / "out"))

    final = converted.counts["after_user_filter"]
    assert final == {"interactions": 25 + 4, "users": 5, "items": 6}
    assert converted.counts["after_item_filter"]["interactions"] == len(events)


# ------------------------------------------------------------------------------------------ bad input

def books_with_line(tmp_path, bad_line, position=2):
    events = random_events(seed=3, n_rows=50)
    reviews, meta = books_files(tmp_path, events, {i: [["Books", "X"]] for _, i, _ in events})
    with open(reviews, encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines.insert(position, bad_line)
    write_lines(reviews, lines)
    return reviews, meta, position + 1


@pytest.mark.parametrize("bad_line, problem", [
    ('{"reviewerID": "A1", "asin": "B0", "unixReviewTi', "truncated or malformed JSON"),
    ('{"reviewerID": "A1", "unixReviewTime": 1300000000}', "missing key 'asin'"),
    ('{"reviewerID": "A1", "asin": "B0", "unixReviewTime": "yesterday"}', "bad timestamp unixReviewTime='yesterday'"),
    ('{"reviewerID": "A1", "asin": "B0", "reviewTime": "2013-09-02"}', "bad timestamp reviewTime='2013-09-02'"),
    ('["A1", "B0", 1300000000]', "expected a JSON object"),
])
def test_amazon_books_malformed_reviews(tmp_path, bad_line, problem):
    reviews, meta, line = books_with_line(tmp_path, bad_line)
    out = str(tmp_path / "out")
    with pytest.raises(DataError) as err:
        convert("amazon-books", reviews, [meta], out)
    message = str(err.value)
    assert reviews in message and f"line {line}:" in message and problem in message
    assert_nothing_written(out)


def test_amazon_books_malformed_metadata_line(tmp_path):
    events = random_events(seed=4, n_rows=60)
    reviews, meta = books_files(tmp_path, events, {i: [["Books", "X"]] for _, i, _ in events})
    with open(meta, "a", encoding="utf-8") as f:
        f.write("{'asin': 'I001', 'categories': [['Books', 'Myst\n")
    n_lines = sum(1 for _ in open(meta, encoding="utf-8"))
    out = str(tmp_path / "out")
    with pytest.raises(DataError, match=rf"meta_Books\.json, line {n_lines}: truncated or malformed JSON"):
        convert("amazon-books", reviews, [meta], out)
    assert_nothing_written(out)


def test_metadata_python_literal_is_not_evaluated_as_code(tmp_path):
    events = random_events(seed=5, n_rows=60)
    reviews, meta = books_files(tmp_path, events, {i: [["Books", "X"]] for _, i, _ in events})
    marker = tmp_path / "pwned"
    with open(meta, "a", encoding="utf-8") as f:
        f.write(f"__import__('pathlib').Path({str(marker)!r}).touch()\n")
    with pytest.raises(DataError, match="truncated or malformed JSON"):
        convert("amazon-books", reviews, [meta], str(tmp_path / "out"))
    assert not marker.exists()


@pytest.mark.parametrize("bad_row, problem", [
    ("B00X,A1,5.0", "missing column 'timestamp'"),
    ("B00X,A1,5.0,12:30", "bad timestamp '12:30'"),
    ("", "empty line"),
])
def test_amazon_clothing_malformed_ratings(tmp_path, bad_row, problem):
    events = random_events(seed=6, n_rows=60)
    ratings, meta = clothing_files(tmp_path, events, {i: ["C"] for _, i, _ in events})
    with open(ratings, encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines.insert(10, bad_row)
    write_lines(ratings, lines)
    out = str(tmp_path / "out")
    with pytest.raises(DataError) as err:
        convert("amazon-clothing", ratings, [meta], out)
    assert f"{ratings}, line 11: {problem}" in str(err.value)
    assert_nothing_written(out)


def test_amazon_clothing_truncated_last_line(tmp_path):
    events = random_events(seed=7, n_rows=60)
    ratings, meta = clothing_files(tmp_path, events, {i: ["C"] for _, i, _ in events})
    with open(ratings, "a", encoding="utf-8") as f:
        f.write("B00Y,A2")  # the download stopped here
    with pytest.raises(DataError, match=rf"line {len(events) + 1}: missing column 'rating', 'timestamp'"):
        convert("amazon-clothing", ratings, [meta], str(tmp_path / "out"))


def test_retailrocket_missing_column_in_header(tmp_path):
    raw, props1, props2 = retailrocket_files(tmp_path, [("1", "2", 1000)], [], [])
    write_lines(raw, ["timestamp,visitorid,itemid,transactionid", "1000,1,2,"])
    out = str(tmp_path / "out")
    with pytest.raises(DataError) as err:
        convert("retailrocket", raw, [props1, props2], out)
    assert f"{raw}, line 1: missing column 'event'" in str(err.value)
    assert_nothing_written(out)


@pytest.mark.parametrize("bad_row, problem", [
    ("1433221332117,5,view", "missing column 'itemid', 'transactionid'"),
    ("2015-06-02,5,view,3,", "bad timestamp '2015-06-02'"),
    ("1433221332117,5,view,3,,extra", "expected 5 fields (timestamp,visitorid,event,itemid,transactionid), found 6"),
])
def test_retailrocket_malformed_event_rows(tmp_path, bad_row, problem):
    events = [(str(u), str(i), 1_433_221_332_000 + u * 10 + i) for u in range(5) for i in range(5)]
    raw, props1, props2 = retailrocket_files(tmp_path, events, [], [])
    with open(raw, encoding="utf-8") as f:
        lines = f.read().splitlines()
    lines.insert(3, bad_row)
    write_lines(raw, lines)
    with pytest.raises(DataError) as err:
        convert("retailrocket", raw, [props1, props2], str(tmp_path / "out"))
    assert f"{raw}, line 4: {problem}" in str(err.value)


def test_retailrocket_bad_property_timestamp(tmp_path):
    events = [(str(u), str(i), 1_433_221_332_000 + u * 10 + i) for u in range(5) for i in range(5)]
    raw, props1, props2 = retailrocket_files(tmp_path, events, ["1433000000000,0,categoryid,1"],
                                             ["1433000000000,1,categoryid,2", "soon,2,categoryid,3"])
    with pytest.raises(DataError, match=r"item_properties_part2\.csv, line 3: bad timestamp 'soon'"):
        convert("retailrocket", raw, [props1, props2], str(tmp_path / "out"))


@pytest.mark.parametrize("bad_id, problem", [
    ('"257597"', "starts with a double quote"),
    ("35\t5908", "holds a tab"),
])
def test_retailrocket_id_that_cannot_be_an_atomic_token(tmp_path, bad_id, problem):
    """An id the atomic files cannot hold stops the conversion with file and line (it was written quoted,
    and RecBole's reader refused the converted file only at training time)."""
    events = [(str(u), str(i), 1_433_221_332_000 + u * 10 + i) for u in range(5) for i in range(5)]
    raw, props1, props2 = retailrocket_files(tmp_path, events, [], [], extra_events=[f"1433221332999,{bad_id},view,3,"])
    out = str(tmp_path / "out")
    with pytest.raises(DataError) as err:
        convert("retailrocket", raw, [props1, props2], out, min_item=1, min_user=1)
    message = str(err.value)
    assert f"{raw}, line {len(events) + 2}: visitorid=" in message and problem in message and "allowed:" in message
    assert_nothing_written(out)


def test_json_ids_and_categories_that_cannot_be_atomic_tokens(tmp_path):
    events = random_events(seed=8, n_rows=60)
    reviews, meta = books_files(tmp_path, events, {i: [["Books", "X"]] for _, i, _ in events})
    with open(reviews, "a", encoding="utf-8") as f:
        f.write(json.dumps({"reviewerID": "A\nB", "asin": "I001", "unixReviewTime": 1300000000}) + "\n")
    with pytest.raises(DataError, match=r"reviews_Books_5\.json, line 61: reviewerID='A\\nB' cannot be an id: "
                                        r"it holds a tab or a line break"):
        convert("amazon-books", reviews, [meta], str(tmp_path / "out"))
    reviews, meta = books_files(tmp_path, events, {i: [["Books", '"Quoted" tales']] for _, i, _ in events})
    with pytest.raises(DataError, match=r"meta_Books\.json, line 1: category '\"Quoted\" tales' cannot be written"):
        convert("amazon-books", reviews, [meta], str(tmp_path / "out"))


def test_a_double_quote_inside_a_value_is_written_unquoted(tmp_path):
    events = [("U1", "I1", 1300000000 + n) for n in range(5)]
    ratings, meta = clothing_files(tmp_path, events, {"I1": ["Dolls", '12" Dolls']})
    out = tmp_path / "out"
    convert("amazon-clothing", ratings, [meta], str(out), min_item=1, min_user=1)
    _, rows = read_atomic(out / "amazon-clothing" / "amazon-clothing.item")
    assert rows == [["I1", '12" Dolls']]


# ---------------------------------------------------------------------------------------- command line

def run_convert(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "recbole_gemirec.data.convert"] + args, cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_cli_converts_and_refuses_to_overwrite(tmp_path):
    events = random_events(seed=8)
    raw, props1, props2 = retailrocket_files(tmp_path, [(u, i, t * 1000) for u, i, t in events], [], [])
    args = ["retailrocket", "--raw", str(tmp_path), "--out", "data", "--quiet"]

    first = run_convert(args, tmp_path)
    assert first.returncode == 0, first.stderr
    inter_file = tmp_path / "data" / "retailrocket" / "retailrocket.inter"
    assert len(read_atomic(inter_file)[1]) == len(expected_rows(events))

    again = run_convert(args, tmp_path)
    assert again.returncode == 2 and again.stderr.startswith("error: ") and "--force" in again.stderr
    forced = run_convert(args + ["--force"], tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert sorted(os.listdir(tmp_path / "data")) == ["retailrocket"]


def test_cli_reports_malformed_input_without_traceback(tmp_path):
    reviews, meta, line = books_with_line(tmp_path, '{"reviewerID": "A1", "asin": "B0", "unixRev')
    result = run_convert(["amazon-books", "--raw", reviews, "--meta", meta, "--out", "data"], tmp_path)
    assert result.returncode == 2
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith(f"error: {reviews}, line {line}: truncated or malformed JSON")
    assert "Traceback" not in result.stderr
    assert_nothing_written(tmp_path / "data")


def test_cli_needs_meta_with_a_raw_file(tmp_path):
    reviews, _, _ = books_with_line(tmp_path, "")
    result = run_convert(["amazon-books", "--raw", reviews, "--out", "data"], tmp_path)
    assert result.returncode == 2 and "--meta is required" in result.stderr


# ------------------------------------------------------------------------------------ RecBole loads it

@pytest.mark.parametrize("dataset", ["amazon-books", "amazon-clothing", "retailrocket"])
def test_dataset_config_loads_converted_files_in_recbole(tmp_path, in_tmp, dataset):
    from recbole_gemirec.config import Config
    from recbole_gemirec.resources import protocol_config
    from recbole_gemirec.utils import create_dataset

    events = random_events(seed=9)
    items = sorted({i for _, i, _ in events})
    if dataset == "amazon-books":
        raw, meta = books_files(tmp_path, events, {item: [["Books", f"C{n % 3}"]] for n, item in enumerate(items[1:])})
        metas = [meta]
    elif dataset == "amazon-clothing":
        raw, meta = clothing_files(tmp_path, events, {item: ["Top", f"C{n % 3}"] for n, item in enumerate(items[1:])})
        metas = [meta]
    else:
        rows = [f"1433000000000,{item},categoryid,C{n % 3}" for n, item in enumerate(items[1:])]
        raw, props1, props2 = retailrocket_files(tmp_path, [(u, i, t * 1000) for u, i, t in events], rows, [])
        metas = [props1, props2]
    convert(dataset, raw, metas, str(tmp_path / "data"))

    config_file = os.path.join(REPO_DIR, "dataset_configs", f"{dataset}.yaml")
    config = Config(model="SASRec", dataset=dataset,
                    config_file_list=[str(protocol_config("loo")), config_file],
                    config_dict={"data_path": str(tmp_path / "data"), "state": "WARNING", "show_progress": False})
    assert config["MAX_ITEM_LIST_LENGTH"] == 20
    data = create_dataset(config)

    expected = expected_rows(events)
    assert data.inter_num == len(expected)
    assert data.user_num - 1 == len({u for u, _, _ in expected})
    category = data.item_feat[config["category_field"]]
    item_ids = data.field2id_token[config["ITEM_ID_FIELD"]]
    no_category = [tok for tok, cat in zip(item_ids[1:], category[1:].tolist()) if cat == 0]
    assert no_category == ([items[0]] if items[0] in {i for _, i, _ in expected} else [])
