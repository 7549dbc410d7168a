"""One measurement in its own process: ``python -m benchmarks.worker SPEC.json``.

The orchestrator (:mod:`benchmarks.run`) writes a JSON spec and starts this module in a fresh process per
run, because RecBole keeps global state and because a process of its own gives a clean peak-memory figure
(``ru_maxrss`` of the process, reported as ``peak_rss_mb``). The result is written to ``spec["out"]``
(through a temporary file, so a killed run leaves nothing that looks finished).

Kinds:

* ``accuracy`` - train and test one model exactly as :func:`recbole_gemirec.quick_start.run_recbole_gemirec`
  does (fit with model selection on the valid split, test from the best-valid checkpoint), and record
  besides the figures the wall time of every training epoch (per GemiRec stage), the dictionary
  utilisation every time GemiRec's trainer logs it, and for GemiRec optionally the dictionary probe
  (:func:`dictionary_probe`);
* ``train_speed``, ``serving``, ``eval_speed`` - see :mod:`benchmarks.speed`; ``scale`` - see :mod:`benchmarks.scale`.
"""

import json
import os
import resource
import sys
import time
import traceback

from benchmarks.build import build


def peak_rss_mb():
    """Peak resident memory of this process in MiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def set_threads(threads):
    import torch

    torch.set_num_threads(int(threads))
    try:
        import faiss

        faiss.omp_set_num_threads(int(threads))
    except ImportError:  # pragma: no cover - faiss is a dependency
        pass


def _plain(value):
    from recbole_gemirec.checkpoint import to_plain

    return to_plain(value)


# --- accuracy -------------------------------------------------------------------------------------------
def run_accuracy(spec):
    import torch

    start = time.time()
    config, parts = build(spec)
    trainer, model = parts["trainer"], parts["model"]
    train_data, valid_data, test_data = parts["train_data"], parts["valid_data"], parts["test_data"]

    epoch_times = {}  # stage -> wall seconds of every training epoch
    valid_scores = []  # every validation of the run: (stage, score); GemiRec's dictionary stage scores -loss
    utilisation = []
    trainer.add_hook("epoch_trained", lambda stage, epoch, seconds: epoch_times.setdefault(stage, []).append(
        round(seconds, 3)))
    trainer.add_hook("validated", lambda stage, score, found: valid_scores.append(
        {"stage": stage, "score": round(float(score), 6)}))
    trainer.add_hook("dictionary_utilisation", lambda stage, when, util: utilisation.append(
        {"stage": stage, "when": when, "per_level": [round(float(u), 4) for u in util["per_level"]],
         "distinct_codes": int(util["distinct_codes"])}))

    best_valid_score, best_valid_result = trainer.fit(train_data, valid_data, saved=True, show_progress=False)
    fit_s = time.time() - start
    test_result = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    result = {
        "kind": "accuracy",
        "model": config["model"],
        "dataset": config["dataset"],
        "seed": config["seed"],
        "best_valid_score": _plain(best_valid_score),
        "best_valid_result": _plain(dict(best_valid_result or {})),
        "test_result": _plain(dict(test_result or {})),
        "epoch_times_s": epoch_times,
        "valid_scores": valid_scores,
        "fit_s": round(fit_s, 3),
        "wall_time_s": round(time.time() - start, 3),
        "train_samples": len(train_data.dataset) if hasattr(train_data, "dataset") else None,
        "n_items": int(parts["dataset"].item_num),
        "n_users": int(parts["dataset"].user_num),
        "interest_num": int(config["interest_num"]) if "interest_num" in config else None,
        "config": _plain({k: config[k] for k in (
            "epochs", "stage_epochs", "train_batch_size", "learning_rate", "embedding_size", "MAX_ITEM_LIST_LENGTH",
            "loss_type", "interest_num", "stopping_step", "valid_metric", "metrics", "topk", "eval_protocol",
            "user_split_seed", "category_field", "interest_category_field", "interest_source", "joint_training",
            "use_user_features", "interest_predictor", "kmeans_init", "interest_dictionary_sizes",
            "item_negatives", "sampled_softmax", "interest_levels", "retrieval_interests", "interest_weighting",
            "interest_prior_weight", "user_query", "joint_backbone_lr_scale", "generator_history_prior",
            "fusion_interest_embedding", "fusion_history", "interest_masking", "user_query_log_weight",
            "target_softmax", "novel_interest_share", "current_interest_share", "within_interest_ranking",
            "interest_code_limit",
        ) if k in config}),
    }
    loss = getattr(parts["model"], "loss_fct", None)
    result["item_negatives_used"] = getattr(loss, "mode", None)  # as resolved (item_negatives: ~ depends on size)
    result.update(_plain(trainer.result_extras()))  # GemiRec: stage_losses, stage_best_valid
    if config["model"] == "GemiRec":
        from recbole_gemirec.diagnose import diagnose

        with torch.no_grad():  # the tested (best-valid) model, on the test split: what each figure comes from
            result["diagnostics"] = diagnose(model, test_data, train_data._dataset)
        result["prior_weight"] = float(model.prior_weight)
        if model.popularity_column:
            result["popularity_ranking"] = bool(model.popularity_ranking)
        if model.interest_predictor == "transition":
            result["novel_share"] = float(model.novel_share)
            result["current_share"] = float(model.current_share)
    if utilisation:
        result["utilisation"] = list(utilisation)
    trainer.remove_hooks()  # the probe's epochs and initialisations are not part of the run
    probe_epochs = int(spec.get("dictionary_probe_epochs") or 0)
    if probe_epochs and config["model"] == "GemiRec" and config["interest_source"] == "learned":
        result["dictionary_probe"] = dictionary_probe(trainer, model, train_data, probe_epochs)
    return result


def dictionary_probe(trainer, model, train_data, epochs):
    """Dictionary utilisation with and without k-means initialisation, from the same item embeddings.

    Starting each time from the run's retrieval-stage checkpoint (the item embeddings the dictionary stage
    of the run started from), the dictionary is initialised with k-means (``kmeans_init: true``) or with
    random codewords (``false``) and trained for ``epochs`` epochs of the dictionary stage, once with the
    trainer's dead-code re-seeding after every epoch (as shipped) and once without it (the paper's
    setting: nothing repairs dead codewords). Utilisation per level and distinct codes are recorded after
    initialisation and after every epoch.
    """
    import torch

    from recbole_gemirec.checkpoint import load_checkpoint

    path = trainer.stage_file("retrieval")
    state = load_checkpoint(path, map_location=trainer.device)
    saved_flag = model.kmeans_init
    probe = {"epochs": epochs, "source": "retrieval-stage checkpoint of this run", "runs": []}
    for kmeans in (True, False):
        for reseed in (True, False):
            trainer.load_model_state(state, path)
            model.kmeans_init = kmeans
            trainer.reseeding = reseed
            trainer.enter_stage(1)  # dictionary stage: fresh optimiser, initialisation
            history = []

            def record(when):
                with torch.no_grad():
                    util = model.dictionary_utilisation()
                history.append({"when": when, "per_level": [round(float(u), 4) for u in util["per_level"]],
                                "distinct_codes": int(util["distinct_codes"])})

            record("after initialisation")
            for epoch in range(epochs):
                trainer.train_epoch(train_data, epoch)
                record(f"after epoch {epoch}")
            probe["runs"].append({"kmeans_init": kmeans, "reseed_dead_codes": reseed, "history": history})
    trainer.reseeding = True
    model.kmeans_init = saved_flag
    return probe


KINDS = {"accuracy": run_accuracy}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m benchmarks.worker SPEC.json", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    import recbole_gemirec  # noqa: F401  (numpy aliases, warnings) before anything imports RecBole

    from benchmarks import scale, speed  # after recbole_gemirec, like build

    kinds = dict(KINDS, **speed.KINDS, **scale.KINDS)
    set_threads(spec.get("threads", 1))
    start = time.time()
    try:
        result = kinds[spec["kind"]](spec)
    except Exception as err:  # reported to the orchestrator, which records the failure
        traceback.print_exc()
        write_json(spec["out"] + ".error.json", {"error": f"{type(err).__name__}: {err}", "spec": spec,
                                                 "traceback": traceback.format_exc()})
        return 1
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    result["load_avg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["package_file"] = recbole_gemirec.__file__
    result["threads"] = spec.get("threads", 1)
    result["process_s"] = round(time.time() - start, 3)
    result["spec"] = {k: v for k, v in spec.items() if k != "out"}
    write_json(spec["out"], result)
    return 0


def write_json(path, data):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1, sort_keys=True, default=_default)
        f.write("\n")
    os.replace(tmp, path)


def _default(value):
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


if __name__ == "__main__":
    sys.exit(main())
