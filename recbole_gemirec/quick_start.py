"""Run, tune and reload models through the extension: RecBole's quick start, made safe and importable.

RecBole's ``recbole.quick_start`` imports ray at module level and loads checkpoints with pickled
configs; these functions do the same job without either (DESIGN §7) and work for every model, the
extension's and RecBole's built-ins alike.
"""

import json
import logging
import os
import sys
import time
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_gemirec.checkpoint import load_checkpoint, to_plain
from recbole_gemirec.config import Config
from recbole_gemirec.utils import create_dataset, data_preparation, get_model, get_trainer

# Settings copied into the result file so a reader knows what produced the figures.
RESULT_CONFIG_KEYS = (
    "seed", "epochs", "train_batch_size", "eval_batch_size", "learning_rate", "learner", "embedding_size",
    "MAX_ITEM_LIST_LENGTH", "loss_type", "eval_args", "metrics", "topk", "valid_metric", "stopping_step",
    "eval_protocol", "reproducibility", "device",
)


def build_run(config):
    """Seed, log, build the dataset, loaders, model and trainer for ``config``; return them in a dict."""
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    logger = getLogger()
    logger.info(config)
    dataset = create_dataset(config)
    logger.info(dataset)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    logger.info(model)
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return {
        "dataset": dataset, "train_data": train_data, "valid_data": valid_data,
        "test_data": test_data, "model": model, "trainer": trainer,
    }


def run_recbole_gemirec(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True,
    cmd_args=None, result_file=None, resume=None,
):
    """Train and test one model, like RecBole's ``run_recbole``.

    Args:
        model, dataset, config_file_list, config_dict, saved: as in RecBole.
        cmd_args (list of str, optional): ``--key=value`` overrides (highest priority).
        result_file (str, optional): where to write the result as JSON.
        resume (str, optional): a checkpoint to continue training from.

    Returns:
        dict: ``best_valid_score``, ``valid_score_bigger``, ``best_valid_result``, ``test_result`` and, as
        plain data, ``model``, ``dataset``, ``checkpoint``, ``wall_time_s``, ``config``.
    """
    start = time.time()
    config = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                    config_dict=config_dict, cmd_args=cmd_args)
    parts = build_run(config)
    logger = getLogger()
    trainer = parts["trainer"]
    if resume:
        trainer.resume_checkpoint(resume)
    best_valid_score, best_valid_result = trainer.fit(
        parts["train_data"], parts["valid_data"], saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(parts["test_data"], load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {best_valid_result}")
    logger.info(set_color("test result", "yellow") + f": {test_result}")
    result = {
        "model": config["model"],
        "dataset": config["dataset"],
        "best_valid_score": to_plain(best_valid_score),
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": to_plain(dict(best_valid_result or {})),
        "test_result": to_plain(dict(test_result or {})),
        "checkpoint": trainer.saved_model_file if saved else None,
        "wall_time_s": round(time.time() - start, 3),
        "config": to_plain({k: config[k] for k in RESULT_CONFIG_KEYS if k in config}),
    }
    if getattr(trainer, "stage_losses", None):
        result["stage_losses"] = to_plain(trainer.stage_losses)
    if not config["single_spec"]:
        import torch.distributed as dist

        dist.destroy_process_group()
    if result_file:
        write_result(result_file, result)
    return result


def write_result(path, result):
    """Write a run's result dictionary as indented JSON (creating the directory)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")


def objective_function(config_dict=None, config_file_list=None, saved=True):
    """The objective for RecBole's ``HyperTuning``: train quietly, return the valid and test results."""
    config = Config(config_dict=config_dict, config_file_list=config_file_list)
    logger = getLogger()
    for handler in logger.handlers[:]:
        logger.removeHandler(handler)
    parts = build_run(config)
    logging.basicConfig(level=logging.ERROR)
    trainer = parts["trainer"]
    best_valid_score, best_valid_result = trainer.fit(parts["train_data"], parts["valid_data"], verbose=False, saved=saved)
    test_result = trainer.evaluate(parts["test_data"], load_best_model=saved)
    return {
        "model": config["model"],
        "best_valid_score": best_valid_score,
        "valid_score_bigger": config["valid_metric_bigger"],
        "best_valid_result": best_valid_result,
        "test_result": test_result,
    }


def config_from_checkpoint(state, config_dict=None):
    """Rebuild the ``Config`` a checkpoint was trained with (optionally overriding some keys)."""
    saved = state["config"]
    settings = dict(saved["external"])
    settings.update(config_dict or {})
    return Config(model=saved["model"], dataset=saved["dataset"], config_dict=settings)


def load_data_and_model(model_file, config_dict=None):
    """Load the dataset, the loaders and the trained model of a checkpoint written by the extension.

    The file is read with ``weights_only=True``; a file carrying pickled objects is refused with
    :class:`recbole_gemirec.checkpoint.CheckpointError`. ``config_dict`` overrides saved settings
    (for instance ``{'gpu_id': ''}`` to load a GPU run on a CPU).

    Returns:
        tuple: ``(config, model, dataset, train_data, valid_data, test_data)`` as RecBole's.
    """
    state = load_checkpoint(model_file)
    config = config_from_checkpoint(state, config_dict)
    init_seed(config["seed"], config["reproducibility"])
    init_logger(config)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    model.load_state_dict(state["state_dict"])
    model.load_other_parameter(state.get("other_parameter"))
    model.eval()
    return config, model, dataset, train_data, valid_data, test_data
