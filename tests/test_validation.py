"""Configuration validation: every invalid key costs one clear message and exit status 2.

Each case runs the command-line entry point (``run_recbole_gemirec.main``, in this process to keep the
suite fast; three cases also as a real child process) and checks the exit status, that stderr names the
key, the value and what is allowed, and that no traceback appears.
"""

import sys

import pytest

from conftest import REPO_DIR, TEST_DATA, TINY_YAML, run_cli

sys.path.insert(0, REPO_DIR)
import run_recbole_gemirec  # noqa: E402

# (CLI arguments, key, value as printed, words of the allowed values)
GEMIREC_CASES = [
    (["--gpt_heads=3"], "gpt_heads", "3", "a divisor of gpt_hidden=16 (1, 2, 4, 8, 16)"),
    (["--tower_heads=3"], "tower_heads", "3", "a divisor of embedding_size=64"),
    (["--interest_nums=3"], "interest_nums", "3", "did you mean interest_num?"),
    (["--interest_num=0"], "interest_num", "0", "an integer >= 1"),
    (["--interest_num=20000"], "interest_num", "20000", "an integer from 1 to 16384"),
    (["--interest_levels=5"], "interest_levels", "5", "~ or an integer from 1 to 4"),
    (["--interest_source=category", "--interest_category_field=category", "--interest_levels=2"],
     "interest_levels", "2", "~ or an integer from 1 to 1"),
    (["--interest_code_limit=0"], "interest_code_limit", "0", "an integer >= 1"),
    (["--interest_dictionary_sizes=[32,0,8]"], "interest_dictionary_sizes", "[32, 0, 8]", "each an integer >= 1"),
    (["--interest_dictionary_sizes=[32,1.5]"], "interest_dictionary_sizes", "[32, 1.5]", "each an integer >= 1"),
    (["--interest_dictionary_sizes=[4096,4096]"], "interest_dictionary_sizes", "[4096, 4096]", "product is at most"),
    (["--interest_dim=0"], "interest_dim", "0", "an integer >= 1"),
    (["--gpt_layers=0"], "gpt_layers", "0", "an integer >= 1"),
    (["--gpt_dropout=1.5"], "gpt_dropout", "1.5", ">= 0 and < 1"),
    (["--dropout_prob=-0.1"], "dropout_prob", "-0.1", ">= 0 and < 1"),
    (["--commitment_beta=-0.5"], "commitment_beta", "-0.5", "a finite number >= 0"),
    (["--hard_interest_negatives=-1"], "hard_interest_negatives", "-1", "an integer >= 0"),
    (["--stage_epochs={'retrieval':0,'dictionary':0,'joint':0}"], "stage_epochs",
     "{'retrieval': 0, 'dictionary': 0, 'joint': 0}", "with at least one positive"),
    (["--stage_epochs={'retrieval':-1,'joint':2}"], "stage_epochs", "{'retrieval': -1, 'joint': 2}",
     "non-negative integer epoch counts"),
    (["--stage_epochs={'retreival':2}"], "stage_epochs", "{'retreival': 2}", "did you mean retrieval?"),
    (["--loss_weights=[0.2,-1,1]"], "loss_weights", "[0.2, -1, 1]", "each a finite number >= 0"),
    (["--loss_weights=[0,0,0]"], "loss_weights", "[0, 0, 0]", "at least one positive"),
    (["--loss_weights=[1,1]"], "loss_weights", "[1, 1]", "exactly 3"),
    (["--kmeans_init=maybe"], "kmeans_init", "'maybe'", "true or false"),
    (["--interest_source=categories"], "interest_source", "'categories'", "one of 'learned', 'category'"),
    (["--interest_source=category"], "interest_source", "'category'", "together with interest_category_field"),
    (["--recipe=papr"], "recipe", "'papr'", "one of 'auto', 'paper', 'factorised'"),
    (["--interest_category_field=category", "--interest_levels=2"], "interest_levels", "2",
     "(interest_source set by recipe factorised; --recipe=paper starts from the paper's defaults)"),
    (["--recipe=factorised"], "recipe", "'factorised'", "together with interest_category_field"),
    (["--interest_predictor=gpt2"], "interest_predictor", "'gpt2'", "one of 'gpt', 'frequency'"),
    (["--interest_category_field=categry"], "interest_category_field", "'categry'", "did you mean category?"),
    (["--category_field=colour"], "category_field", "'colour'", "item_id, category, genre"),
    (["--user_feature_fields=['agee']"], "user_feature_fields", "['agee']", "did you mean age?"),
    (["--learning_rate=0"], "learning_rate", "0", "a finite number > 0"),
    (["--train_batch_size=0"], "train_batch_size", "0", "an integer >= 1"),
    (["--learnig_rate=0.01"], "learnig_rate", "0.01", "did you mean learning_rate?"),
]

BASELINE_CASES = [
    (["--model=SASRec", "--topk=-5"], "topk", "-5", "an integer >= 1"),
    (["--model=SASRec", "--topk=[10,0]"], "topk", "[10, 0]", "an integer >= 1"),
    (["--model=SASRec", "--metrics=['Recall','Foo']"], "metrics", "['Recall', 'Foo']", "metric names of RecBole"),
    (["--model=SASRec", "--metrics=['Recall','MAE']"], "metrics", "['Recall', 'MAE']", "only ranking metrics"),
    (["--model=SASRec", "--valid_metric=Recall@7"], "valid_metric", "'Recall@7'", "Recall@10, Recall@5"),
    (["--model=SASRec", "--valid_metric=Recall"], "valid_metric", "'Recall'", "Recall@10"),
    (["--model=SASRec", "--learner=adamx"], "learner", "'adamx'", "'adam'"),

    (["--model=SASRec", "--learning_rat=0.01"], "learning_rat", "0.01", "did you mean learning_rate?"),
    (["--model=GemiRec", "--stage_epochs=[1,-1,1]"], "stage_epochs", "[1, -1, 1]", "a list [retrieval, dictionary, joint]"),
    (["--model=GemiRec", "--retrieval_interests=all"], "retrieval_interests", "'all'", "one of 'target', 'predicted', 'both'"),
    (["--model=GemiRec", "--item_negatives=batch"], "item_negatives", "'batch'", "one of 'full', 'sampled', 'in_batch'"),
    (["--model=GemiRec", "--interest_prior_weight=-1"], "interest_prior_weight", "-1", "one of 'auto' or a finite number >= 0"),
    (["--model=GemiRec", "--interest_levels=0"], "interest_levels", "0", "~ (null) or an integer >= 1"),
    (["--model=MIND", "--label_aware_pow=-1"], "label_aware_pow", "-1", "a number >= 0 (or .inf)"),
    (["--model=MIND", "--dynamic_interest_num=2"], "dynamic_interest_num", "2", "true or false"),
    (["--model=ComiRecDR", "--routing_iterations=0"], "routing_iterations", "0", "an integer >= 1"),
    (["--model=ComiRecSA", "--attention_hidden_size=0"], "attention_hidden_size", "0", "an integer >= 1"),
    (["--model=ComiRecSA", "--neg_sample_num=0"], "neg_sample_num", "0", "an integer >= 1"),
    (["--model=ComiRecSA", "--interest_num=0"], "interest_num", "0", "an integer >= 1"),
    (["--model=ComiRecSA", "--interest_numm=3"], "interest_numm", "3", "did you mean interest_num?"),
    (["--model=REMI", "--hard_negative_beta=-1"], "hard_negative_beta", "-1", "a finite number >= 0"),
    (["--model=REMI", "--routing_reg_weight=-5"], "routing_reg_weight", "-5", "a finite number >= 0"),
    (["--model=REMI", "--loss_type=BPR"], "loss_type", "'BPR'", "one of 'CE'"),
    (["--model=SASRec", "--epochs=-1"], "epochs", "-1", "an integer >= 0"),
    (["--model=SASRec", "--user_inter_num_interval=[1,inf"], "user_inter_num_interval", "'[1,inf'", "'[5,inf)'"),
    (["--model=SASRec", "--item_inter_num_interval=[9,2]"], "item_inter_num_interval", "[9, 2]", "low <= high"),
    (["--model=SASRec", "--eval_args=[1,2]"], "eval_args", "[1, 2]", "a mapping with split, order"),
    (["--model=SASRec", "--val_interval={'timestamp': 'big'}"], "val_interval", "{'timestamp': 'big'}", "'[5,inf)'"),
    (["--model=SASRec", "--val_interval={'price': '[1,inf)'}"], "val_interval", "{'price': '[1,inf)'}", "timestamp"),
    (["--model=SASRec", "--eval_args={'split': {'RS': [0.8, 0.2]}, 'order': 'TO', 'mode': 'full'}"],
     "eval_args.split.RS", "[0.8, 0.2]", "a list of 3 numbers"),
    (["--model=SASRec", "--eval_args={'split': 'LS'}"], "eval_args.split", "'LS'", "one key: RS, LS or TS"),
    (["--model=SASRec", "--eval_args={'split': {'LS': 'valid_and_test'}, 'mode': 'full'}"],
     "eval_args.order", "'RO'", "'TO' for a sequential model"),
    (["--model=SASRec", "--eval_args={'split': {'LS': 'valid_and_test'}, 'order': 'TO', 'mode': 'all'}"],
     "eval_args.mode.valid", "'all'", "'full', 'labeled'"),
    # RecBole's own keys with a value of the wrong type: a TypeError deep in RecBole, pandas or torch, or silently
    # something else, without the check (RECBOLE_RULES)
    (["--model=SASRec", "--field_separator=1"], "field_separator", "1", "a non-empty string"),
    (["--model=SASRec", "--seq_separator=5"], "seq_separator", "5", "a non-empty string"),
    (["--model=SASRec", "--encoding=5"], "encoding", "5", "a text encoding name"),
    (["--model=SASRec", "--NEG_PREFIX=5"], "NEG_PREFIX", "5", "a field name (string)"),
    (["--model=SASRec", "--ITEM_LIST_LENGTH_FIELD=5"], "ITEM_LIST_LENGTH_FIELD", "5", "a field name (string)"),
    (["--model=SASRec", "--checkpoint_dir=5"], "checkpoint_dir", "5", "a directory path"),
    (["--model=SASRec", "--load_col=abc"], "load_col", "'abc'", "each value one of '*' or a list"),
    (["--model=SASRec", "--load_col={'inter':'user_id'}"], "load_col", "{'inter': 'user_id'}", "a list"),
    (["--model=SASRec", "--unload_col=abc"], "unload_col", "'abc'", "a mapping"),
    (["--model=SASRec", "--numerical_features=abc"], "numerical_features", "'abc'", "a list"),
    (["--model=SASRec", "--rm_dup_inter=abc"], "rm_dup_inter", "'abc'", "'first', 'last'"),
    (["--model=SASRec", "--state=LOUD"], "state", "'LOUD'", "'info', 'debug'"),
    (["--model=SASRec", "--show_progress=abc"], "show_progress", "'abc'", "true or false"),
    (["--model=SASRec", "--reproducibility=2"], "reproducibility", "2", "true or false"),
    (["--model=SASRec", "--worker=-1"], "worker", "-1", "an integer >= 0"),
    # anything but device indices hid every GPU and the run trained on the CPU without a word
    (["--model=SASRec", "--gpu_id=abc"], "gpu_id", "'abc'", "CUDA device indices"),
    (["--model=SASRec", "--gpu_id=0,x"], "gpu_id", "'0,x'", "CUDA device indices"),
    # the user protocol's keys are checked under loo too, where they were ignored whatever their value
    (["--model=SASRec", "--history_ratio=1.5"], "history_ratio", "1.5", "strictly between 0 and 1"),
    (["--model=SASRec", "--user_split=[0.8,0.2]"], "user_split", "[0.8, 0.2]", "three non-negative shares"),
    (["--model=SASRec", "--user_split_seed=-3"], "user_split_seed", "-3", "an integer >= 0"),
    (["--model=SASRec", "--metric_decimal_place=abc"], "metric_decimal_place", "'abc'", "an integer >= 0"),
    (["--model=SASRec", "--loss_decimal_place=-3"], "loss_decimal_place", "-3", "an integer >= 0"),
    (["--model=SASRec", "--clip_grad_norm=abc"], "clip_grad_norm", "'abc'", "a mapping with max_norm"),
    (["--model=SASRec", "--clip_grad_norm={'max_norm':-1}"], "clip_grad_norm", "{'max_norm': -1}",
     "max_norm (a finite number > 0)"),
    (["--model=GemiRec", "--clip_grad_norm={'max_norm':1,'p':2}"], "clip_grad_norm", "{'max_norm': 1, 'p': 2}",
     "optionally norm_type"),
    # keys RecBole reads while it merges the layers: a TypeError or AttributeError there
    (["--model=SASRec", "--metrics=5"], "metrics", "5", "a metric name or a list of them"),
    (["--model=SASRec", "--metrics=[1,2]"], "metrics", "[1, 2]", "a metric name or a list of them"),
    (["--model=SASRec", "--topk=abc"], "topk", "'abc'", "an integer >= 1"),
    (["--model=SASRec", "--valid_metric=5"], "valid_metric", "5", "a metric name such as Recall@10"),
    (["--model=SASRec", "--alias_of_item_id=abc"], "alias_of_item_id", "'abc'", "a list"),
    (["--model=SASRec", "--seq_len={'genre': 0}"], "seq_len", "{'genre': 0}", "an integer >= 1"),
    (["--model=SASRec", "--normalize_all=abc"], "normalize_all", "'abc'", "true or false"),
    # checked by RecBole for the mapping and the distribution only: numpy's 'negative dimensions' in the first batch
    (["--model=BPR", "--train_neg_sample_args={'distribution':'uniform','sample_num':-1}"], "train_neg_sample_args",
     "{'distribution': 'uniform', 'sample_num': -1", "sample_num (an integer >= 1)"),
    (["--model=BPR", "--train_neg_sample_args={'distribution':'uniform','sample_num':'x'}"], "train_neg_sample_args",
     "{'distribution': 'uniform', 'sample_num': 'x'", "sample_num (an integer >= 1)"),
    # columns a run cannot do without, checked against the .inter header (RecBole: KeyError / ValueError after
    # reading every file)
    (["--model=SASRec", "--TIME_FIELD=time"], "TIME_FIELD", "'time'", "a float column of"),
    (["--model=SASRec", "--TIME_FIELD=~"], "TIME_FIELD", "None", "a float column of"),
    (["--model=GemiRec", "--TIME_FIELD=user_id"], "TIME_FIELD", "'user_id'", "a float column of"),
    (["--model=SASRec", "--TIME_FIELD=rating"], "load_col", "{'inter': ['user_id', 'item_id', 'timestamp']",
     "'inter' list holds 'rating'"),
    (["--model=SASRec", "--load_col={'inter':['user_id','timestamp']}"], "load_col",
     "{'inter': ['user_id', 'timestamp']}", "'inter' list holds 'item_id'"),
    (["--model=SASRec", "--unload_col={'inter':['user_id']}"], "load_col", "{'inter': ['user_id', 'item_id'",
     "no unload_col['inter'] naming it"),
]


def run_main(args, tmp_path, monkeypatch, capsys):
    """The CLI's ``main`` on the tiny data: ``(exit status, stderr)``."""
    monkeypatch.chdir(tmp_path)
    argv = ["--dataset=tiny", f"--config_files={TINY_YAML}", f"--data_path={TEST_DATA}"]
    if not any(a.startswith("--model=") for a in args):
        argv.append("--model=GemiRec")
    status = run_recbole_gemirec.main(argv + list(args))
    return status, capsys.readouterr().err


def assert_clear_error(status, err, key, value, allowed):
    assert status == 2, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: "), err
    assert f"{key}={value}" in line, line
    assert "allowed:" in line and allowed in line, line


@pytest.mark.parametrize("args,key,value,allowed", GEMIREC_CASES + BASELINE_CASES,
                         ids=[" ".join(c[0]) for c in GEMIREC_CASES + BASELINE_CASES])
def test_invalid_key_is_one_clear_error(args, key, value, allowed, tmp_path, monkeypatch, capsys):
    status, err = run_main(args, tmp_path, monkeypatch, capsys)
    assert_clear_error(status, err, key, value, allowed)
    # refused before any data was read or any log/checkpoint written
    assert not (tmp_path / "saved").exists() and not (tmp_path / "log").exists()


def test_interest_num_above_the_category_count_is_refused_once_the_categories_are_known(tmp_path, monkeypatch, capsys):
    # tiny has 8 categories, so interest_source=category gives 9 interests (8 + 'unknown')
    status, err = run_main(["--interest_source=category", "--interest_category_field=category", "--interest_num=12"],
                           tmp_path, monkeypatch, capsys)
    assert_clear_error(status, err, "interest_num", "12", "an integer from 1 to 9")


@pytest.mark.parametrize("args,key,value,allowed", [
    (["--model=GemiRec", "--gpt_heads=3"], "gpt_heads", "3", "a divisor of gpt_hidden=16"),
    (["--model=GemiRec", "--interest_nums=3"], "interest_nums", "3", "did you mean interest_num?"),
    (["--model=MIND", "--routing_iterations=0"], "routing_iterations", "0", "an integer >= 1"),
], ids=["relation", "typo", "baseline"])
def test_invalid_key_in_a_child_process_exits_2_without_traceback(args, key, value, allowed, tmp_path):
    proc = run_cli(args, cwd=tmp_path)
    assert_clear_error(proc.returncode, proc.stderr, key, value, allowed)


def test_valid_configurations_pass_for_every_extension_model():
    from recbole_gemirec.config import Config

    for model in ("GemiRec", "ComiRecSA", "ComiRecDR", "MIND", "REMI", "SASRec"):
        config = Config(model=model, dataset="tiny", config_file_list=[TINY_YAML], config_dict={"data_path": TEST_DATA})
        assert config["model"] == model
    # the documented edge values are accepted
    Config(model="MIND", dataset="tiny", config_file_list=[TINY_YAML],
           config_dict={"data_path": TEST_DATA, "label_aware_pow": float("inf")})
    Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict={
        "data_path": TEST_DATA, "interest_category_field": "genre", "category_field": "category",
        "stage_epochs": {"joint": 1}, "loss_weights": [0, 0, 1], "interest_num": 1, "interest_code_limit": 1})


def test_validated_keys_cover_every_key_of_the_extension_model_files():
    import yaml

    from recbole_gemirec.resources import model_properties
    from recbole_gemirec.validation import COMMON_RULES, validated_keys

    checked = validated_keys()
    # Keys of the model files that are RecBole's own (metrics, evaluation) are RecBole's to check.
    recbole_owned = {"metrics", "topk", "valid_metric", "train_neg_sample_args"}
    for model in ("GemiRec", "ComiRecSA", "ComiRecDR", "MIND", "REMI"):
        with open(model_properties(model), encoding="utf-8") as f:
            keys = set(yaml.safe_load(f))
        unchecked = keys - set(checked[model]) - set(COMMON_RULES) - recbole_owned
        assert not unchecked, (model, unchecked)


def test_every_key_the_package_reads_is_declared_so_the_typo_check_knows_it():
    """The extension's known keys are what it declares (YAMLs, common rules, CONFIG_RULES); a key read in
    the source but declared nowhere would be refused as a near miss of another."""
    import re
    from pathlib import Path

    import recbole_gemirec
    from recbole_gemirec.validation import known_keys

    recbole_keys, extension_keys = known_keys()
    reads = re.compile(  # config["key"] that is not assigned to, config.get("key"), config_dict.get("key")
        r"""config\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\](?!\s*=[^=])|config(?:_dict)?\.get\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']""")
    read = set()
    for path in Path(recbole_gemirec.__file__).parent.rglob("*.py"):
        read.update(key for pair in reads.findall(path.read_text(encoding="utf-8")) for key in pair if key)
    assert len(read) > 50  # the pattern finds the reads
    assert not read - recbole_keys - extension_keys

@pytest.mark.slow
def test_stage_epochs_list_form_runs_the_three_stages(tmp_path):
    proc = run_cli(["--model=GemiRec", "--interest_category_field=category", "--interest_source=learned",
                    "--stage_epochs=[1,1,1]", "--gpt_layers=1",
                    "--result_file=g.json"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import json

    with open(tmp_path / "g.json", encoding="utf-8") as f:
        losses = json.load(f)["stage_losses"]
    assert {stage: len(values) for stage, values in losses.items()} == {"retrieval": 1, "dictionary": 1, "joint": 1}


def test_an_unknown_model_names_the_model_not_an_optional_library(capsys):
    assert run_recbole_gemirec.main(["--model=Foo", f"--config_files={TINY_YAML}"]) == 2
    err = capsys.readouterr().err
    assert "model='Foo'" in err and "lightgbm" not in err and "Traceback" not in err


@pytest.mark.parametrize("path,why", [("/nonexistent/x.yaml", "No such file"), ("/tmp", "Is a directory")])
def test_an_unreadable_config_file_is_named(path, why, capsys):
    assert run_recbole_gemirec.main(["--model=SASRec", f"--config_files={path}"]) == 2
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("error: config file " + path) and why in line and "allowed:" in line


@pytest.mark.parametrize("text,words", [
    ("epochs: 1\nlearning_rate: 0.01\nepochs: 2\n", ["found key 'epochs' a second time (first on line 1)", "line 3"]),
    ("load_col:\n  inter: [user_id]\n  inter: [item_id]\n", ["found key 'inter' a second time"]),
    ("1: 2\n", ["key 1 is not a string (int)", "allowed:"]),
    ("a: &x [*x]\n", ["a value that contains itself", "allowed:"]),
], ids=["repeated key", "repeated nested key", "integer key", "self-referencing alias"])
def test_a_config_file_yaml_would_misread_is_named(text, words, tmp_path, monkeypatch, capsys):
    # plain YAML keeps the last of two equal keys silently; a non-string key and a value that contains itself
    # ended in a TypeError (difflib) and a RecursionError
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    status, err = run_main([f"--config_files={TINY_YAML} {bad}"], tmp_path, monkeypatch, capsys)
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: config file {bad}"), err
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.mark.parametrize("args,key,value,allowed", [
    (["--train_batch_size=99999999999999999999999"], "train_batch_size", "99999999999999999999999",
     "an integer >= 1"),
    (["--model=SASRec", "--MAX_ITEM_LIST_LENGTH=99999999999999999999999"], "MAX_ITEM_LIST_LENGTH",
     "99999999999999999999999", "an integer >= 1"),
    (["--seed=-1"], "seed", "-1", "an integer >= 0 and <= 4294967295"),
    (["--seed=99999999999999"], "seed", "99999999999999", "<= 4294967295"),
], ids=["batch size beyond 64 bits", "optional key beyond 64 bits", "negative seed", "seed beyond numpy's"])
def test_integers_torch_or_numpy_cannot_take_are_refused(args, key, value, allowed, tmp_path, monkeypatch, capsys):
    # were a ValueError from itertools.islice in the first batch, a torch overflow, numpy's seed range
    status, err = run_main(args, tmp_path, monkeypatch, capsys)
    assert_clear_error(status, err, key, value, allowed)
    if "9999999999999999" in value and key != "seed":
        assert "does not fit in 64 bits" in err


@pytest.mark.parametrize("dataset", ["../tiny", "", ".hidden", "a/b"])
def test_a_dataset_name_that_is_a_path_is_refused(dataset, tmp_path, monkeypatch, capsys):
    # '../tiny' was a FileNotFoundError traceback from RecBole's log-file handler (and read
    # properties/dataset/../tiny.yaml); '' read '<data_path>/.inter'
    monkeypatch.chdir(tmp_path)
    status = run_recbole_gemirec.main(["--model=SASRec", f"--dataset={dataset}", f"--config_files={TINY_YAML}",
                                       f"--data_path={TEST_DATA}"])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: dataset={dataset!r} is not allowed"), err
    assert "allowed: a plain name" in lines[0]


def test_a_protocol_given_as_a_path_lists_the_shipped_protocols(capsys):
    # the list of allowed protocols was read next to the given path, so it came out empty
    status = run_recbole_gemirec.main(["--model=SASRec", "--protocol=../../etc/passwd", f"--config_files={TINY_YAML}"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.strip().splitlines() == ["error: --protocol='../../etc/passwd' is unknown; allowed: loo, user"], err


def test_a_data_path_of_the_wrong_type_is_one_error_line(tmp_path, monkeypatch, capsys):
    # RecBole joins data_path into a path while merging: TypeError traceback (config_dict, a config file)
    from recbole_gemirec.config import Config
    from recbole_gemirec.errors import ConfigError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^data_path=5 is not allowed; allowed: a directory path \(string\)$"):
        Config(model="SASRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict={"data_path": 5})


@pytest.mark.parametrize("args,key,value,allowed", [
    (["--model=SASRec", "--hidden_size=abc"], "hidden_size", "'abc'", "a finite number (RecBole's SASRec default is 64)"),
    (["--model=SASRec", "--n_layers={'a':1}"], "n_layers", "{'a': 1}", "a finite number"),
    (["--model=SASRec", "--hidden_act=[1]"], "hidden_act", "[1]", "a string, as RecBole's default 'gelu'"),
    (["--model=SASRec", "--hidden_dropout_prob=abc"], "hidden_dropout_prob", "'abc'", "a finite number"),
    (["--model=GRU4Rec", "--embedding_size=[64]"], "embedding_size", "[64]", "a finite number"),
])
def test_a_recbole_model_key_of_the_wrong_type_is_refused_before_the_data(args, key, value, allowed, tmp_path,
                                                                           monkeypatch, capsys):
    # was a TypeError traceback from torch.empty once the data was loaded (status 1)
    status, err = run_main(args, tmp_path, monkeypatch, capsys)
    assert_clear_error(status, err, key, value, allowed)
    assert not (tmp_path / "saved").exists()
