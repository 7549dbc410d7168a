"""What each budget runs: datasets, models, seeds, epochs, and the sizes of the speed measurements.

Three budgets:

* ``quick`` - the tiny test data (``tests/test_data/tiny``), one seed, one epoch, a few models; a few
  minutes. The test suite runs it (``tests/test_benchmarks.py``) to check that every file is produced.
* ``small`` - every table of ``docs/benchmarks.md``: ml-100k and a generated dataset of 2,000 users,
  three seeds, a few epochs; sized to finish in about 90 minutes on 2 shared CPU cores.
* ``full`` - paper-like epoch budgets with early stopping (documented, too slow for 2 cores).

Everything a table in the report depends on is here, so the report can print the settings it used.
"""

import copy

# Models of the accuracy table, in the order of the report. Single-vector models count as K = 1.
BASELINES = ["Pop", "SASRec", "GRU4Rec", "SINE", "ComiRecSA", "ComiRecDR", "MIND", "REMI"]
MULTI_INTEREST_BASELINES = ["SINE", "ComiRecSA", "ComiRecDR", "MIND", "REMI"]
MODELS = BASELINES + ["GemiRec"]

SEEDS = [2020, 2021, 2022]

# Every GemiRec run of the benchmark (its rows, their ablations, speed, scale and the variants tool) trains the
# paper's recipe, as all of them did before the recipe key existed; the factorised recipe, which recipe: auto
# picks wherever a category field is named, is measured into its own results with --gemirec-set
# recipe=factorised and shown with the report's --preset.
PAPER_RECIPE = {"recipe": "paper"}

# The five ablation switches of docs/design.md §2.6: (row name, what it removes, config, the paper's Recall@200 change in %).
ABLATIONS = [
    # GemiRec-I runs without the dictionary stage (nothing to learn; run.py sets its epochs to 0).
    ("GemiRec-I", "preset-category dictionary (no learned quantisation; no dictionary stage)",
     {"interest_source": "category"}, -19.6),
    # GemiRec-J and -K only mean something for a learned dictionary: they pin it (so that they keep their
    # meaning under interest_source: auto too)
    ("GemiRec-J", "no joint training (dictionary frozen after its stage)",
     {"joint_training": False, "interest_source": "learned"}, -10.4),
    ("GemiRec-U", "no user features", {"use_user_features": False}, -21.4),
    ("GemiRec-M", "frequency instead of the GPT", {"interest_predictor": "frequency"}, -25.0),
    ("GemiRec-K", "no k-means initialisation", {"kmeans_init": False, "interest_source": "learned"}, -9.4),
]

# Settings every accuracy run shares (docs/design.md §4-5): the user protocol, the same metrics, selection on valid.
METRICS = ["Recall", "NDCG", "Hit", "AMR", "CUR"]
TOPK = [20, 50]
VALID_METRIC = "Recall@50"
HISTORY_LENGTH = 20  # MAX_ITEM_LIST_LENGTH for every model (the paper family's L = 20)

# Datasets. ``config_files`` are relative to the repository root; "{work}" in a value is the budget's work
# directory (where the generated data lives). ``gemirec`` is added to GemiRec runs only.
DATASETS = {
    "ml-100k": {
        "dataset": "ml-100k",
        "config_files": [],
        "config": {},  # properties/dataset/ml-100k.yaml: genres (class) for CUR and GemiRec, user features
        "gemirec": {},  # interest_category_field: class comes from properties/dataset/ml-100k.yaml
        "category_note": "genre (`class`, first genre of an item) for CUR and for GemiRec's first level",
    },
    "synthetic": {
        "dataset": "synthetic",
        "config_files": ["dataset_configs/synthetic.yaml"],
        "config": {"data_path": "{work}/data"},
        "gemirec": {"interest_category_field": "category"},
        "generate": {"users": 2000, "items": 2000, "mean-length": 30, "seed": 2020},
        "category_note": "leaf category (`category`, 40 leaves) for CUR and for GemiRec's first level",
    },
    "synthetic2": {
        "dataset": "synthetic2",
        "config_files": ["dataset_configs/synthetic.yaml"],
        "config": {"data_path": "{work}/data"},
        "gemirec": {"interest_category_field": "category"},
        # a second world of another structure: more, broader interests per user, shorter runs, a larger
        # catalogue and steeper popularity
        "generate": {"users": 2000, "items": 3000, "mean-length": 30, "top-categories": 4, "leaves-per-top": 12,
                     "min-interests": 3, "max-interests": 6, "switch-prob": 0.3, "popularity-skew": 1.2, "seed": 7},
        "category_note": "leaf category (`category`, 48 leaves) for CUR and for GemiRec's first level",
    },
    "tiny": {
        "dataset": "tiny",
        "config_files": ["tests/test_data/tiny.yaml"],
        "config": {"data_path": "tests/test_data", "category_field": "category"},
        "gemirec": {"interest_category_field": "category"},
        "category_note": "`category` of the tiny test data",
    },
}

# Speed measurements of the small and converge budgets (one run, one machine, ratios).
SPEED_ML100K = {
    "dataset": "ml-100k",
    "train_models": ["SASRec", "ComiRecSA", "GemiRec"],
    "train_repeats": 2,
    "serving_k": 5,
    "serving_topn": 50,
    # GemiRec factorised: the recipe the default trains on ml-100k (its genres), served over interest partitions
    "serving_models": ["GemiRec", "GemiRec factorised", "ComiRecSA"],
    "serving_baseline": "ComiRecSA",  # each GemiRec recipe measured beside it alone (benchmarks.speed.serving_groups)
    "serving_catalogues": [10_000, 100_000, 1_000_000],
    "serving_requests": {10_000: 1000, 100_000: 400, 1_000_000: 100},  # per repeat, enough for a p99
    "serving_repeats": 5,  # figures and ratios: medians over the repeats (benchmarks.speed._over_repeats)
    "eval_models": ["SASRec", "ComiRecSA", "GemiRec"],
    "eval_catalogues": ["native", 100_000],
    "eval_users": 256,
    "eval_repeats": 5,
}

# Scale measurements (benchmarks/scale.py): generated worlds of growing size, the same generator settings
# but for users and items; about 50 interactions per user: 100k, 1M and 10M interactions.
SCALE_SIZES = {"scale10k": (2_000, 10_000), "scale100k": (20_000, 100_000), "scale1m": (210_000, 1_000_000)}
for _name, (_users, _items) in dict(SCALE_SIZES, scale_quick=(300, 3_000)).items():
    DATASETS[_name] = {
        "dataset": _name,
        "config_files": ["dataset_configs/synthetic.yaml"],
        "config": {"data_path": "{work}/data"},
        "gemirec": {"interest_category_field": "category"},
        "generate": {"users": _users, "items": _items, "mean-length": 50 if _name != "scale_quick" else 20,
                     "seed": 2020},
        "category_note": "leaf category (`category`)",
    }
SCALE = {
    "datasets": list(SCALE_SIZES),
    "models": ["SASRec", "ComiRecSA", "GemiRec"],
    "cap_batches": 20,  # batches timed per epoch (per GemiRec stage); the epoch is extrapolated
    "eval_batches": 4,
    "train_batch_size": 1024,
    "eval_batch_size": 64,
    # RecBole's SASRec with CE would hold [batch, items] logits: its own sampled loss instead, at every size
    "sasrec_config": {"loss_type": "BPR", "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}},
}

BUDGETS = {
    "quick": {
        "description": "tiny test data, 1 seed, 1 epoch per model / per GemiRec stage, 4 models, 2 ablations",
        "datasets": ["tiny"],
        "seeds": [2020],
        "models": ["Pop", "SASRec", "ComiRecSA", "GemiRec"],
        "baseline_epochs": 1,
        "stage_epochs": {"retrieval": 1, "dictionary": 1, "joint": 1},
        "stopping_step": 10,
        "train_batch_size": 256,
        "ablations": {"tiny": [2020]},
        "ablation_names": ["GemiRec-J", "GemiRec-M"],
        "dictionary_probe_epochs": 1,
        "jobs": 2,
        "speed": {
            "dataset": "tiny",
            "train_models": ["SASRec", "ComiRecSA", "GemiRec"],
            "train_repeats": 1,
            "serving_k": 5,
            "serving_topn": 50,
            "serving_models": ["GemiRec", "GemiRec factorised", "ComiRecSA"],
            "serving_baseline": "ComiRecSA",
            "serving_catalogues": [10_000],
            "serving_requests": {10_000: 20},
            "serving_repeats": 2,
            "serving_memory": False,  # no separate peak-memory process per model
            "eval_models": ["SASRec", "ComiRecSA", "GemiRec"],
            "eval_catalogues": ["native"],
            "eval_users": 64,
            "eval_repeats": 3,
        },
        "scale": dict(SCALE, datasets=["scale_quick"], cap_batches=3, eval_batches=1, train_batch_size=256),
    },
    "small": {
        "description": "ml-100k and a generated dataset (2,000 users), 3 seeds, baselines 4 epochs, GemiRec "
                       "stages 2/2/2 epochs; ablations: 3 seeds on the generated data, 1 seed on ml-100k",
        "datasets": ["ml-100k", "synthetic"],
        "seeds": SEEDS,
        "models": MODELS,
        "baseline_epochs": 4,
        "stage_epochs": {"retrieval": 2, "dictionary": 2, "joint": 2},
        "stopping_step": 10,
        "train_batch_size": 512,
        "ablations": {"synthetic": SEEDS, "ml-100k": [2020]},
        "ablation_names": [a[0] for a in ABLATIONS],
        "dictionary_probe_epochs": 2,
        "jobs": 2,
        "speed": SPEED_ML100K,
    },
    "converge": {
        "description": "ml-100k and two generated worlds, 3 seeds that vary the user split too, every model "
                       "trained to convergence (early stopping on valid, patience 3; baselines up to 60 epochs, "
                       "GemiRec 60/20/15), one item softmax for all (full catalogue)",
        "datasets": ["ml-100k", "synthetic", "synthetic2"],
        "seeds": SEEDS,
        "split_follows_seed": True,
        "to_convergence": True,
        "models": ["Pop", "SASRec", "ComiRecSA", "REMI", "GemiRec"],
        "baseline_epochs": 60,
        "baseline_config": {"item_negatives": "full"},
        "stage_epochs": {"retrieval": 60, "dictionary": 20, "joint": 15},
        "stopping_step": 3,
        "train_batch_size": 512,
        "ablations": {"synthetic": SEEDS, "synthetic2": SEEDS, "ml-100k": SEEDS},
        "ablation_names": [a[0] for a in ABLATIONS],
        "dictionary_probe_epochs": 5,
        "jobs": 2,
        "speed": SPEED_ML100K,
        "scale": SCALE,
    },
    "full": {
        "description": "ml-100k and a generated dataset (2,000 users), 3 seeds, paper-like epochs with early "
                       "stopping (baselines up to 100 epochs, GemiRec 30/10/10), ablations on both datasets",
        "datasets": ["ml-100k", "synthetic"],
        "seeds": SEEDS,
        "models": MODELS,
        "baseline_epochs": 100,
        "stage_epochs": {"retrieval": 30, "dictionary": 10, "joint": 10},
        "stopping_step": 5,
        "train_batch_size": 512,
        "ablations": {"synthetic": SEEDS, "ml-100k": SEEDS},
        "ablation_names": [a[0] for a in ABLATIONS],
        "dictionary_probe_epochs": 10,
        "jobs": 1,
        "speed": {
            "dataset": "ml-100k",
            "train_models": ["SASRec", "ComiRecSA", "GemiRec"],
            "train_repeats": 3,
            "serving_k": 5,
            "serving_topn": 50,
            "serving_baseline": "ComiRecSA",
            "serving_catalogues": [10_000, 100_000, 1_000_000],
            "serving_requests": {10_000: 500, 100_000: 300, 1_000_000: 100},
            "serving_repeats": 5,
            "eval_models": ["SASRec", "ComiRecSA", "GemiRec"],
            "eval_catalogues": ["native", 100_000],
            "eval_users": 256,
            "eval_repeats": 10,
        },
    },
}


def budget(name):
    """A deep copy of the named budget (``quick``, ``small`` or ``full``)."""
    if name not in BUDGETS:
        raise ValueError(f"budget {name!r} is unknown; allowed: {', '.join(BUDGETS)}")
    settings = copy.deepcopy(BUDGETS[name])
    settings["name"] = name
    return settings


def ablation(name):
    """``(row, meaning, config, paper change %)`` of an ablation row."""
    for row in ABLATIONS:
        if row[0] == name:
            return row
    raise ValueError(f"ablation {name!r} is unknown; allowed: {', '.join(a[0] for a in ABLATIONS)}")
