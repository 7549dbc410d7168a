"""The synthetic multi-interest generator (docs/design.md §6): determinism, sizes and format, categories and
features, planted interest evolution measured from the written files, and a RecBole run on the output."""

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO_DIR, RUN_SCRIPT, read_json

USERS, ITEMS, SEED = 600, 300, 7
MIN_LENGTH, MAX_LENGTH = 10, 200  # the generator's defaults, checked against truth.json below


def run_generator(args, cwd):
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "recbole_gemirec.data.synthetic"] + list(args), cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


def base_args(out, name="synth", seed=SEED):
    return ["--out", str(out), "--name", name, "--users", str(USERS), "--items", str(ITEMS), "--seed", str(seed)]


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One generated dataset: its directory, the three tables and the truth."""
    root = tmp_path_factory.mktemp("synthetic")
    result = run_generator(base_args(root / "data") + ["--quiet"], root)
    assert result.returncode == 0, result.stderr
    directory = root / "data" / "synth"

    def table(suffix):
        frame = pd.read_csv(directory / f"synth.{suffix}", sep="\t", dtype=str, keep_default_na=False)
        frame.columns = [c.split(":")[0] for c in frame.columns]
        return frame

    inter = table("inter")
    inter["timestamp"] = inter["timestamp"].astype(np.int64)
    return {"root": root, "dir": directory, "inter": inter, "item": table("item"), "user": table("user"),
            "truth": read_json(directory / "synth.truth.json")}


def sequences(generated):
    """user id -> list of leaf categories in time order."""
    inter = generated["inter"].merge(generated["item"], on="item_id", how="left")
    return {u: list(group["category"]) for u, group in inter.groupby("user_id", sort=False)}


# ------------------------------------------------------------------------------------------ determinism

def test_same_arguments_give_byte_identical_files(generated, tmp_path):
    again = run_generator(base_args(tmp_path / "data") + ["--quiet"], tmp_path)
    assert again.returncode == 0, again.stderr
    names = sorted(os.listdir(generated["dir"]))
    assert names == ["synth.inter", "synth.item", "synth.truth.json", "synth.user"]
    for name in names:
        assert (tmp_path / "data" / "synth" / name).read_bytes() == (generated["dir"] / name).read_bytes(), name

    other = run_generator(base_args(tmp_path / "other", seed=SEED + 1) + ["--quiet"], tmp_path)
    assert other.returncode == 0, other.stderr
    assert (tmp_path / "other" / "synth" / "synth.inter").read_bytes() != (generated["dir"] / "synth.inter").read_bytes()


# ---------------------------------------------------------------------------------------- sizes, format

def test_headers_sizes_and_ordering(generated):
    header = (generated["dir"] / "synth.inter").read_text(encoding="utf-8").split("\n", 1)[0]
    assert header == "user_id:token\titem_id:token\ttimestamp:float"
    inter, truth = generated["inter"], generated["truth"]
    assert truth["params"]["min_length"] == MIN_LENGTH and truth["params"]["max_length"] == MAX_LENGTH

    assert len(generated["user"]) == USERS and set(generated["user"]["user_id"]) == {str(u) for u in range(1, USERS + 1)}
    assert len(generated["item"]) == ITEMS and set(generated["item"]["item_id"]) == {str(i) for i in range(1, ITEMS + 1)}
    assert set(inter["user_id"]) == set(generated["user"]["user_id"])
    assert set(inter["item_id"]) <= set(generated["item"]["item_id"])

    lengths = inter.groupby("user_id", sort=False).size()
    assert lengths.to_dict() == {u: entry["length"] for u, entry in truth["users"].items()}
    assert lengths.min() >= MIN_LENGTH and lengths.max() <= MAX_LENGTH
    assert truth["stats"]["interactions"] == len(inter)

    # Users appear in id order, each once as a block; time strictly increases within a user.
    user_ids = inter["user_id"].astype(int).to_numpy()
    assert (np.diff(user_ids) >= 0).all()
    same_user = user_ids[1:] == user_ids[:-1]
    assert (np.diff(inter["timestamp"].to_numpy())[same_user] > 0).all()


def test_every_item_has_a_leaf_category_under_its_top_category(generated):
    items, hierarchy = generated["item"], generated["truth"]["hierarchy"]
    assert (items["category"] != "").all() and (items["top_category"] != "").all()
    leaf_to_top = {leaf: top for top, leaves in hierarchy.items() for leaf in leaves}
    assert len(leaf_to_top) == sum(len(leaves) for leaves in hierarchy.values())  # leaves are unique
    assert all(leaf_to_top[c] == t for c, t in zip(items["category"], items["top_category"]))
    assert len(hierarchy) >= 2 and all(len(leaves) >= 2 for leaves in hierarchy.values())


def test_popularity_is_skewed_within_categories(generated):
    counts = generated["inter"].merge(generated["item"], on="item_id").groupby(["category", "item_id"]).size()
    ratios = []
    for _, per_item in counts.groupby(level="category"):
        size = int((generated["item"]["category"] == per_item.index[0][0]).sum())
        if size >= 5:
            ratios.append(per_item.max() / per_item.sum() * size)  # top item share / uniform share
    assert len(ratios) >= 5
    assert np.median(ratios) > 2.0


def test_user_features_are_present_and_carry_signal(generated):
    users = generated["user"]
    features = [c for c in users.columns if c != "user_id"]
    assert len(features) >= 3
    for feature in features:
        assert (users[feature] != "").all() and users[feature].nunique() >= 2

    inter = generated["inter"].merge(generated["item"], on="item_id")
    rng = np.random.default_rng(0)
    for feature in features:
        real = mutual_information(inter.merge(users, on="user_id"), feature)
        shuffled = []
        for _ in range(5):
            permuted = users.assign(**{feature: rng.permutation(users[feature].to_numpy())})
            shuffled.append(mutual_information(inter.merge(permuted, on="user_id"), feature))
        assert real > 2 * max(shuffled), (feature, real, shuffled)


def mutual_information(frame, feature):
    """I(feature value; top category of the interacted item), in nats, over interactions."""
    table = pd.crosstab(frame[feature], frame["top_category"]).to_numpy().astype(float)
    p = table / table.sum()
    expected = p.sum(axis=1, keepdims=True) @ p.sum(axis=0, keepdims=True)
    nonzero = p > 0
    return float((p[nonzero] * np.log(p[nonzero] / expected[nonzero])).sum())


def test_users_move_between_a_few_interests(generated):
    truth, seqs = generated["truth"], sequences(generated)
    on_interest, total, multi = 0, 0, 0
    for user, entry in truth["users"].items():
        own = set(entry["interests"]) | ({entry["new_interest"]} if entry["new_interest"] else set())
        seq = seqs[user]
        on_interest += sum(c in own for c in seq)
        total += len(seq)
        multi += len(set(seq) & set(entry["interests"])) >= 2
        assert truth["params"]["min_interests"] <= len(entry["interests"]) <= truth["params"]["max_interests"]
    assert on_interest / total >= 1 - truth["params"]["noise"] - 0.02
    assert multi / len(truth["users"]) >= 0.8


# ------------------------------------------------------------------------------------ interest evolution

def test_planted_evolution_follows_the_successor_map(generated):
    truth, seqs = generated["truth"], sequences(generated)
    leaf_to_top = {leaf: top for top, leaves in truth["hierarchy"].items() for leaf in leaves}
    successors = truth["successors"]
    assert set(successors) == set(leaf_to_top)
    assert all(leaf_to_top[c] != leaf_to_top[s] for c, s in successors.items())  # elsewhere in the hierarchy

    planted = {u: e for u, e in truth["users"].items() if e["new_interest"]}
    assert len(planted) >= 0.3 * USERS
    for user, entry in planted.items():
        seq, start = seqs[user], entry["start_index"]
        assert entry["evolved_from"] in entry["interests"] and entry["new_interest"] not in entry["interests"]
        assert successors[entry["evolved_from"]] == entry["new_interest"]
        assert math.ceil(0.8 * len(seq)) <= start < len(seq)
        assert seq.index(entry["new_interest"]) == start  # absent before the start, present at it


def test_evolution_share_in_the_last_twenty_percent(generated):
    truth, seqs = generated["truth"], sequences(generated)
    unseen_users, explained = 0, 0
    for user, seq in seqs.items():
        cut = int(0.8 * len(seq))  # the ``user`` protocol's history / target split
        unseen = set(seq[cut:]) - set(seq[:cut])
        if unseen:
            unseen_users += 1
            explained += truth["users"][user]["new_interest"] in unseen
    assert unseen_users / len(seqs) >= 0.30
    assert explained / unseen_users > 0.5  # most of them are the planted, learnable successor
    assert truth["stats"]["users_with_unseen_tail_category"] == unseen_users
    assert truth["stats"]["unseen_tail_users_explained_by_planted"] == explained


# -------------------------------------------------------------------------------------- command line

def test_bad_arguments_and_existing_output_are_refused(generated, tmp_path):
    too_few = run_generator(["--out", str(tmp_path / "d"), "--items", "10", "--quiet"], tmp_path)
    assert too_few.returncode == 2
    assert too_few.stderr.startswith("error: --items must be >= the number of leaf categories")
    assert "Traceback" not in too_few.stderr
    assert not (tmp_path / "d").exists() or os.listdir(tmp_path / "d") == []

    for argument, message in (("--popularity-skew=inf", "--popularity-skew=inf is not allowed; allowed: a finite"),
                              ("--mean-length=nan", "--mean-length=nan is not allowed; allowed: a finite"),
                              ("--feature-strength=-1", "--feature-strength must be >= 0"),
                              # was numpy's ValueError traceback from default_rng
                              ("--seed=-1", "--seed=-1 is not allowed; allowed: an integer >= 0"),
                              # were numpy's MemoryError traceback ("Unable to allocate 745. GiB")
                              ("--users=100000000000", "--users=100000000000 with --mean-length=40"),
                              ("--mean-length=1e15", "--mean-length=1e+15 is not allowed; allowed: at most "
                                                     "--max-length=200"),
                              ("--items=10000000000", "--items=10000000000 is not allowed; allowed: an integer "
                                                      "up to 100,000,000")):
        refused = run_generator(["--out", str(tmp_path / "e"), argument, "--quiet"], tmp_path)
        assert refused.returncode == 2 and refused.stderr.startswith(f"error: {message}"), refused.stderr
        assert not (tmp_path / "e").exists()

    exists = run_generator(base_args(generated["root"] / "data") + ["--quiet"], tmp_path)
    assert exists.returncode == 2 and "already exists" in exists.stderr and "--force" in exists.stderr
    assert sorted(os.listdir(generated["root"] / "data")) == ["synth"]  # no temporary directory left


def test_progress_and_summary_are_printed(tmp_path):
    result = run_generator(["--out", str(tmp_path), "--users", "50", "--items", "100"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "inter" in result.stderr  # tqdm's bar, unit "inter"
    stats = read_json(tmp_path / "synthetic" / "synthetic.truth.json")["stats"]
    assert f"{stats['interactions']} interactions" in result.stdout


# ---------------------------------------------------------------------------------------------- RecBole

@pytest.mark.parametrize("protocol", ["loo", "user"])
def test_recbole_loads_and_trains_one_epoch(generated, tmp_path, protocol):
    config = os.path.join(REPO_DIR, "dataset_configs", "synthetic.yaml")
    command = [sys.executable, RUN_SCRIPT, "--model=SASRec", "--dataset=synth", f"--config_files={config}",
               f"--protocol={protocol}", f"--data_path={generated['root'] / 'data'}", "--epochs=1",
               "--train_batch_size=512", "--eval_batch_size=512", "--hidden_size=16", "--inner_size=32",
               "--show_progress=false", "--state=WARNING", "--result_file=r.json", "--no_save"]
    env = dict(os.environ, PYTHONPATH=REPO_DIR + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    test_result = read_json(tmp_path / "r.json")["test_result"]
    assert test_result and all(0.0 <= value <= 1.0 for value in test_result.values())


def test_recbole_dataset_holds_categories_and_user_features(generated, in_tmp):
    from recbole_gemirec.config import Config
    from recbole_gemirec.resources import protocol_config
    from recbole_gemirec.utils import create_dataset

    config = Config(model="SASRec", dataset="synth",
                    config_file_list=[str(protocol_config("loo")), os.path.join(REPO_DIR, "dataset_configs", "synthetic.yaml")],
                    config_dict={"data_path": str(generated["root"] / "data"), "state": "WARNING"})
    dataset = create_dataset(config)
    assert dataset.inter_num == len(generated["inter"])
    assert dataset.user_num - 1 == USERS and dataset.item_num - 1 == ITEMS  # the .item file lists every item
    category = dataset.item_feat[config["category_field"]][1:]
    assert (category > 0).all()  # every item has a (non-padding) category
    for feature in ("age", "gender", "occupation"):
        assert (dataset.user_feat[feature][1:] > 0).all()
