"""GemiRec's joint-stage variants from one shared checkpoint: how the defaults in docs/gemirec.md were chosen.

    # once per dataset and seed: the retrieval and dictionary stages, saved as the shared base
    python -m benchmarks.variants --dataset synthetic --base
    # then any number of joint-stage variants from that base (valid split only; add --test at the end)
    python -m benchmarks.variants --dataset synthetic --name both --set retrieval_interests=both

Every variant trains only the joint stage, from the same retrieval + dictionary weights, so two variants
differ by their joint-stage settings alone (the issue with comparing whole runs on 2 cores: the first
two stages cost most of the time and add their own noise). Each run appends one JSON line to
``--out`` (default ``benchmarks/results/variants.jsonl``): the valid result of every joint epoch, the
best one, and the diagnostics of :mod:`recbole_gemirec.diagnose` on the valid split. Parameters whose
shape a variant changes (e.g. the generator's output layer under another ``interest_levels``) start
fresh; the run lists them under ``not_loaded``.

Datasets: ``ml-100k`` (RecBole's), ``synthetic`` and ``synthetic2`` (generated into ``--work`` with the
benchmark's settings, :data:`benchmarks.budgets.DATASETS`). Protocol ``user``; the seed sets the
initialisation and the user split.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import yaml

from benchmarks.budgets import DATASETS, METRICS, PAPER_RECIPE, TOPK, VALID_METRIC

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _dataset(name, work):
    spec = DATASETS[name]
    files = [os.path.join(REPO, "dataset_configs", "protocol_user.yaml")] + [os.path.join(REPO, f) for f in spec["config_files"]]
    config = dict(PAPER_RECIPE, **spec["gemirec"])  # the variants are measured against the paper's recipe
    if "generate" in spec:
        data = os.path.join(work, "data")
        if not os.path.isdir(os.path.join(data, name)):
            args = [sys.executable, "-m", "recbole_gemirec.data.synthetic", "--out", data, "--name", name, "--quiet"]
            for key, value in spec["generate"].items():
                args += [f"--{key}", str(value)]
            subprocess.run(args, check=True)
        config["data_path"] = data
    return files, config


def build(name, work, seed, overrides):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    files, config = _dataset(name, work)
    config.update({"seed": seed, "user_split_seed": seed, "metrics": list(METRICS), "topk": list(TOPK),
                   "valid_metric": VALID_METRIC, "checkpoint_dir": os.path.join(work, "saved", name),
                   "show_progress": False, **overrides})
    return build_run(Config(model="GemiRec", dataset=DATASETS[name]["dataset"], config_file_list=files,
                            config_dict=config))


def _floats(result):
    return {k: float(v) for k, v in (result or {}).items()}


def run_base(args, overrides):
    """Retrieval and dictionary stages; saves the model's weights as the base of every variant."""
    import torch

    overrides["stage_epochs"] = {"retrieval": args.retrieval, "dictionary": args.dictionary, "joint": 0}
    parts = build(args.dataset, args.work, args.seed, overrides)
    trainer, model = parts["trainer"], parts["model"]
    trainer.fit(parts["train_data"], parts["valid_data"], saved=True)
    torch.save(dict(model.state_dict()), base_file(args))
    model.set_stage("retrieval")
    return {"retrieval_valid": _floats(trainer.evaluate(parts["valid_data"], load_best_model=False))}


def run_variant(args, overrides):
    """The joint stage alone from the base, with ``overrides``; valid results, best, diagnostics."""
    import torch

    from recbole_gemirec.diagnose import diagnose

    overrides["stage_epochs"] = {"retrieval": 0, "dictionary": 0, "joint": args.joint}
    parts = build(args.dataset, args.work, args.seed, overrides)
    model, trainer = parts["model"], parts["trainer"]
    state = torch.load(base_file(args))  # tensors only (weights_only)
    own = model.state_dict()
    keep = base_weights(state, own)
    model.load_state_dict(keep, strict=False)
    history = []
    trainer.enter_stage(2)  # the joint stage: fresh optimiser, frozen codes
    trainer.add_hook("validated", lambda stage, score, result: history.append(_floats(result)))
    trainer.fit_stage(parts["train_data"], parts["valid_data"])
    trainer.remove_hooks("validated")
    trainer.load_best()
    joint_valid = float(trainer.best_valid_score)
    if model.scoring_candidates:  # as GemiRecTrainer.fit does after the joint stage
        trainer._choose_scoring(parts["valid_data"], saved=True)
    out = {"not_loaded": [k for k in own if k not in keep], "history": history, "joint_valid": joint_valid,
           "best_valid": float(trainer.best_valid_score), "prior_weight": float(model.prior_weight),
           "interest_masking": model.interest_masking,
           "diagnostics": diagnose(model, parts["valid_data"], parts["train_data"]._dataset)}
    if args.test:
        out["test"] = _floats(trainer.evaluate(parts["test_data"], load_best_model=False))
    return out


# Buffers of the scoring in force (interest_masking, tau, beta, alpha, the within-interest ranking): a variant scores
# as configured, whatever the base was trained with (the base's masking buffer is off unless the base set it, and
# loading it would make every joint epoch of a masked variant validate without masking).
SCORING_BUFFERS = ("masking", "prior_weight", "novel_share", "current_share", "popularity_ranking")


def base_weights(state, own):
    """The entries of the base's ``state`` a variant model (state dict ``own``) takes: same name and shape,
    except the scoring buffers."""
    return {k: v for k, v in state.items() if k in own and own[k].shape == v.shape and k not in SCORING_BUFFERS}


def base_file(args):
    return os.path.join(args.work, f"base_{args.dataset}_{args.seed}.pth")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", default="synthetic", choices=[d for d in DATASETS if d != "tiny"])
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--base", action="store_true", help="train and save the shared base")
    parser.add_argument("--retrieval", type=int, default=60, help="base: retrieval-stage epochs (early stopping)")
    parser.add_argument("--dictionary", type=int, default=10, help="base: dictionary-stage epochs")
    parser.add_argument("--joint", type=int, default=8, help="variant: joint-stage epochs (early stopping)")
    parser.add_argument("--name", default="variant")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="configuration of the variant (YAML values)")
    parser.add_argument("--test", action="store_true", help="also report the test split (only for the chosen variant)")
    parser.add_argument("--work", default=os.path.join(REPO, "benchmarks", "results", "_variants"))
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "variants.jsonl"))
    args = parser.parse_args(argv)
    overrides = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    record = {"name": args.name, "dataset": args.dataset, "seed": args.seed, "settings": dict(overrides),
              "command": "python -m benchmarks.variants " + " ".join(sys.argv[1:] if argv is None else argv)}
    os.makedirs(args.work, exist_ok=True)
    start = time.time()
    record.update(run_base(args, overrides) if args.base else run_variant(args, overrides))
    record["wall_s"] = round(time.time() - start, 1)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
    print(json.dumps({k: v for k, v in record.items() if k != "history"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
