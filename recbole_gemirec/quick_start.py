"""Run, tune and reload models through the extension: RecBole's quick start, made safe and importable.

RecBole's ``recbole.quick_start`` imports ray at module level and loads checkpoints with pickled
configs; these functions do the same job without either (docs/design.md §7) and work for every model, the
extension's and RecBole's built-ins alike.
"""

import json
import logging
import os
import tempfile
import time
from logging import getLogger

from recbole.utils import init_logger, init_seed, set_color

from recbole_gemirec.checkpoint import check_checkpoint_file, load_checkpoint, to_plain
from recbole_gemirec.config import Config
from recbole_gemirec.model.multi_interest import MultiInterestRecommender
from recbole_gemirec.output_paths import OutputError, check_output_locations
from recbole_gemirec.trainer.checkpoint_files import resolve_resume_path
from recbole_gemirec.utils import create_dataset, data_preparation, get_model, get_trainer

# Settings copied into the result file so a reader knows what produced the figures.
RESULT_CONFIG_KEYS = (
    "seed", "epochs", "train_batch_size", "eval_batch_size", "learning_rate", "learner", "embedding_size",
    "MAX_ITEM_LIST_LENGTH", "loss_type", "eval_args", "metrics", "topk", "valid_metric", "stopping_step",
    "eval_protocol", "reproducibility", "device", "recipe",
)


def format_result(result):
    """``recall@10: 0.1234  ndcg@10: 0.0567`` for a result mapping (RecBole's is an OrderedDict of numpy
    floats, which prints as ``OrderedDict([('recall@10', np.float64(0.1234))])``)."""
    if not result:
        return "{}"
    return "  ".join(f"{key}: {float(value):.4f}" if isinstance(value, (int, float)) or hasattr(value, "item")
                     else f"{key}: {value}" for key, value in dict(result).items())


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
    if not config["single_spec"]:
        from recbole_gemirec.distributed import align_trainer

        align_trainer(trainer)  # one checkpoint name, saves before reads (distributed runs only)
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
    check_output_locations(config["checkpoint_dir"] if saved else None, result_file, config["model"])  # before any data
    if resume:  # a missing or foreign file is refused before any data is read, too
        check_checkpoint_file(resolve_resume_path(resume, config["model"]))
    parts = build_run(config)
    logger = getLogger()
    trainer = parts["trainer"]
    if resume:
        trainer.resume_checkpoint(resume)
    best_valid_score, best_valid_result = trainer.fit(
        parts["train_data"], parts["valid_data"], saved=saved, show_progress=config["show_progress"]
    )
    test_result = trainer.evaluate(parts["test_data"], load_best_model=saved, show_progress=config["show_progress"])
    logger.info(set_color("best valid ", "yellow") + f": {format_result(best_valid_result)}")
    logger.info(set_color("test result", "yellow") + f": {format_result(test_result)}")
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
    result.update(to_plain(trainer.result_extras()))
    if not config["single_spec"]:
        import torch.distributed as dist

        # every rank has finished its last collective before any tears the group down: destroying it while
        # another rank still communicates can abort the process inside gloo's threads
        dist.barrier()
        dist.destroy_process_group()
    if result_file:
        write_result(result_file, result)
    return result


def run(
    model=None, dataset=None, config_file_list=None, config_dict=None, saved=True, nproc=1, world_size=-1,
    ip="localhost", port="5678", group_offset=0, cmd_args=None, result_file=None, resume=None,
):
    """Train and test one model in one process or, like RecBole's ``run``, in ``nproc`` processes.

    With ``nproc == 1`` and ``world_size <= 0`` this is :func:`run_recbole_gemirec`. Otherwise it starts
    ``nproc`` processes on this machine (torch.multiprocessing, spawn) that run RecBole's
    DistributedDataParallel path: NCCL on GPUs (one GPU per process, ``gpu_id`` must list them), gloo on
    CPUs. Each process trains on its share of every batch; evaluation metrics are averaged over the
    processes by RecBole's ``_map_reduce``; only rank 0 writes checkpoints. The result of local rank 0
    comes back through a queue and has the same form as a one-process result, plus ``distributed``.

    Args:
        model, dataset, config_file_list, config_dict, saved, cmd_args, result_file, resume:
            as in :func:`run_recbole_gemirec`.
        nproc: processes on this machine.
        world_size: processes on all machines together (``-1``: ``nproc``, a single machine).
        ip, port: address of the machine that runs global rank 0 (all machines give the same).
        group_offset: global rank of this machine's first process (0 on the first machine,
            ``nproc`` on the second, ...).

    Raises:
        ConfigError: a bad setting, found before any process starts where possible.
    """
    from recbole_gemirec.errors import ConfigError

    nproc, world_size, group_offset = int(nproc), int(world_size), int(group_offset)
    if nproc == 1 and world_size <= 0:
        return run_recbole_gemirec(model=model, dataset=dataset, config_file_list=config_file_list,
                                   config_dict=config_dict, saved=saved, cmd_args=cmd_args,
                                   result_file=result_file, resume=resume)
    if world_size == -1:
        world_size = nproc
    if nproc < 1 or world_size < nproc or not 0 <= group_offset <= world_size - nproc:
        raise ConfigError(
            f"nproc={nproc}, world_size={world_size}, group_offset={group_offset}: need nproc >= 1, "
            "world_size >= nproc (all processes on all machines) and 0 <= group_offset <= world_size - nproc"
        )
    check = Config(model=model, dataset=dataset, config_file_list=config_file_list,
                   config_dict=config_dict, cmd_args=cmd_args)  # a bad setting fails here, once
    from recbole_gemirec.distributed import backend_for, uses_gpu

    if uses_gpu(check["gpu_id"]):
        import torch

        if torch.cuda.device_count() < nproc:
            raise ConfigError(f"nproc={nproc} GPU processes need {nproc} visible GPUs; "
                              f"{torch.cuda.device_count()} found (gpu_id={check['gpu_id']!r})")
    # RecBole creates these with exists-then-mkdir; processes starting together would race on it, so they are
    # created here, once (the log directory by the check)
    check_output_locations(check["checkpoint_dir"] if saved else None, result_file, check["model"])
    os.makedirs(check["checkpoint_dir"], exist_ok=True)
    settings = dict(config_dict or {})
    settings.update({"world_size": world_size, "ip": str(ip), "port": str(port), "nproc": nproc,
                     "offset": group_offset})
    import torch.multiprocessing as mp

    start = time.time()
    queue = mp.get_context("spawn").SimpleQueue()
    try:
        mp.spawn(
            _run_process,
            args=(model, dataset, config_file_list, settings, saved, cmd_args, resume, queue),
            nprocs=nproc, join=True,
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as err:  # mp.spawn has stopped the others
        reported = None if queue.empty() else queue.get()
        if reported and "error" in reported:
            raise _error_types()[reported["error"]](reported["message"]) from None
        raise RuntimeError(f"a process of the distributed run failed: {err}") from None
    result = None if queue.empty() else queue.get()
    if result is None:
        raise RuntimeError("the distributed run finished without a result from local rank 0")
    result["distributed"] = {"nproc": nproc, "world_size": world_size, "backend": backend_for(check["gpu_id"]),
                             "group_offset": group_offset}
    result["wall_time_s"] = round(time.time() - start, 3)
    if result_file:
        write_result(result_file, result)
    return result


def _error_types():
    """The user-facing errors a process of a distributed run reports back to the parent by name."""
    from recbole_gemirec import errors
    from recbole_gemirec.checkpoint import CheckpointError

    found = [CheckpointError, OutputError] + [getattr(errors, name, None) for name in ("ConfigError", "DataError", "TrainingError")]
    return {cls.__name__: cls for cls in found if cls is not None}


def _run_process(local_rank, model, dataset, config_file_list, settings, saved, cmd_args, resume, queue):
    """One process of a distributed run (started by :func:`run`); local rank 0 reports the result."""
    settings = dict(settings, local_rank=local_rank)
    try:
        result = run_recbole_gemirec(model=model, dataset=dataset, config_file_list=config_file_list,
                                     config_dict=settings, saved=saved, cmd_args=cmd_args, resume=resume)
    except tuple(_error_types().values()) as err:
        if local_rank == 0:
            queue.put({"error": type(err).__name__, "message": str(err)})
        raise
    if local_rank == 0:
        queue.put(result)


def write_result(path, result):
    """Write a run's result dictionary as indented JSON (creating the directory), atomically: a temporary
    file renamed into place. If that fails after all (the disk filled during the run) the result is printed
    to standard output before the :class:`~recbole_gemirec.output_paths.OutputError`, so it is never lost."""
    text = json.dumps(result, indent=2, sort_keys=True) + "\n"
    directory = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".result-", suffix=".tmp", dir=directory)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except OSError as err:
        print(text, end="")
        raise OutputError(f"--result_file={path!r} could not be written after the run: {err.strerror or err}; "
                          "the result was printed to standard output above") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.remove(tmp)


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


# Final-config keys that Config derives itself (or that name one launch); never fed back when rebuilding.
DERIVED_KEYS = (
    "model", "dataset", "MODEL_TYPE", "MODEL_INPUT_TYPE", "eval_type", "device", "data_path",
    "valid_metric_bigger", "train_neg_sample_args", "valid_neg_sample_args", "test_neg_sample_args",
    "local_rank", "single_spec", "world_size", "nproc", "offset", "ip", "port",
)


def config_from_checkpoint(state, config_dict=None):
    """Rebuild the ``Config`` a checkpoint was trained with (optionally overriding some keys).

    Every resolved setting saved with the checkpoint is fed back, not only the user's own: the model is
    rebuilt with the sizes it was trained with even if a shipped default (``properties/``) has changed
    since. Keys that ``Config`` derives (devices, model types, normalised sampling arguments, the joined
    data path) are re-derived; the user's own settings then win, and ``config_dict`` over all.

    A checkpoint's config is data: every stored value reaches the ``Config`` exactly as saved (a string
    stays that string). Nothing in it is evaluated, unlike RecBole's ``config_dict`` handling, which
    passes strings to ``eval()`` (see :class:`recbole_gemirec.config.Config`).
    """
    from recbole_gemirec.utils import extension_model

    saved = state["config"]
    # a key the model gained after the checkpoint was written takes the value that reproduces how it trained
    settings = dict(getattr(extension_model(saved["model"]), "CHECKPOINT_DEFAULTS", {}))
    settings.update({k: v for k, v in saved["final"].items() if k not in DERIVED_KEYS})
    settings.update(saved["external"])
    settings.update(config_dict or {})
    return Config(model=saved["model"], dataset=saved["dataset"], config_dict=settings)


def restore_model(model, state):
    """Load a checkpoint's weights into ``model`` and put it back into the training stage it was saved
    in (GemiRec scores with its interest cache only in the joint stage)."""
    from recbole_gemirec.checkpoint import CheckpointError

    try:
        model.load_state_dict(state["state_dict"])
    except RuntimeError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        detail = next((line for line in lines if "size mismatch" in line or "key(s)" in line), lines[0])
        raise CheckpointError(
            f"the checkpoint's weights do not fit the {type(model).__name__} its settings build ({detail})"
        ) from None
    model.load_other_parameter(state.get("other_parameter"))
    stage = state.get("extra", {}).get("stage")
    if stage is not None and isinstance(model, MultiInterestRecommender):
        # also empties GemiRec's interest cache: it is rebuilt from the histories the loaded model is
        # shown, not kept from the last validation of training
        try:
            model.set_stage(stage)
        except ValueError as err:  # an edited extra['stage']
            raise CheckpointError(f"the checkpoint records a stage its {type(model).__name__} does not have: "
                                  f"{err}") from None


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
    restore_model(model, state)
    model.eval()
    return config, model, dataset, train_data, valid_data, test_data
