"""RecBole's DistributedDataParallel path, on GPUs (NCCL) and on CPUs (gloo).

RecBole 1.2.1 runs several processes through ``Config._init_device`` (one process group, NCCL only),
``AbstractTrainer`` (wraps the model in ``DistributedDataParallel`` with ``device_ids=[local_rank]``),
its data loaders (a ``DistributedSampler`` per loader) and ``Trainer._map_reduce`` (metrics averaged over
processes, weighted by how many users each evaluated). Four things keep that from working through the
extension, and this module mends them (docs/design.md §7):

1. NCCL is hard-coded; a machine without GPUs needs gloo. :func:`init_distributed` (called by
   :meth:`recbole_gemirec.config.Config._init_device`) picks gloo when the run has no GPU.
2. ``DistributedDataParallel`` refuses ``device_ids`` for a CPU module. The patch of RecBole's trainer
   module in :mod:`recbole_gemirec.recbole_hooks` (where all patches of RecBole live) leaves them out for
   a model on the CPU.
3. Every process names its checkpoint after its own clock (``<Model>-<time>.pth``); two processes
   starting a second apart would look for different files, and only rank 0 writes one. A process may
   also read the file while rank 0 is still about to write it. :func:`align_trainer` gives every process
   rank 0's file name and makes the others wait until rank 0 has saved.
4. GemiRec initialises its dictionary by k-means inside each process; :func:`align_trainer` broadcasts
   rank 0's result so that all processes keep identical parameters.
"""

import os

import torch

from recbole_gemirec.errors import ConfigError

# Longest checkpoint path that can be shared between processes.
_MAX_PATH_BYTES = 4096


def uses_gpu(gpu_id):
    """Whether a run with ``gpu_id`` (RecBole's setting, e.g. ``'0,1'`` or ``''``) runs on GPUs."""
    return len(str(gpu_id)) > 0 and torch.cuda.is_available()


def backend_for(gpu_id):
    """``nccl`` when the run has GPUs, else ``gloo``."""
    return "nccl" if uses_gpu(gpu_id) else "gloo"


def init_distributed(final_config):
    """Start this process's part of the process group and set its device (RecBole's ``_init_device``
    for a distributed run, with gloo on CPU). ``final_config`` is RecBole's ``final_config_dict`` with
    ``local_rank``, ``nproc``, ``world_size``, ``offset``, ``ip`` and ``port`` set by
    :func:`recbole_gemirec.quick_start.run`."""
    import torch.distributed as dist

    gpu_id = final_config["gpu_id"]
    gpu_id = ",".join(map(str, gpu_id)) if isinstance(gpu_id, (tuple, list)) else str(gpu_id)
    final_config["gpu_id"] = gpu_id
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu_id
    local_rank = int(final_config["local_rank"])
    nproc = int(final_config.get("nproc") or 1)
    world_size = int(final_config.get("world_size") or nproc)
    offset = int(final_config.get("offset") or 0)
    backend = backend_for(gpu_id)
    if backend == "nccl":
        if len(gpu_id.split(",")) < nproc:
            raise ConfigError(f"nproc={nproc} GPU processes need {nproc} GPUs, but gpu_id={gpu_id!r} lists "
                              f"{len(gpu_id.split(','))}; set gpu_id (e.g. gpu_id='0,1') or lower nproc")
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, rank=local_rank + offset, world_size=world_size,
            init_method=f"tcp://{final_config['ip']}:{final_config['port']}",
        )
    final_config["device"] = device
    final_config["single_spec"] = False
    if local_rank != 0:
        final_config["state"] = "error"
        final_config["show_progress"] = False
        final_config["verbose"] = False


def broadcast_text(text, device):
    """Rank 0's ``text`` in every process (an in-memory tensor broadcast, nothing is pickled)."""
    import torch.distributed as dist

    data = torch.zeros(_MAX_PATH_BYTES + 1, dtype=torch.uint8, device=device)
    if dist.get_rank() == 0:
        encoded = text.encode("utf-8")
        if len(encoded) > _MAX_PATH_BYTES:
            raise ConfigError(f"checkpoint path longer than {_MAX_PATH_BYTES} bytes: {text[:80]}...")
        data[: len(encoded)] = torch.tensor(list(encoded), dtype=torch.uint8, device=device)
    dist.broadcast(data, src=0)
    return bytes(data.cpu().tolist()).rstrip(b"\0").decode("utf-8")


def align_trainer(trainer):
    """Make the processes of a distributed run agree on checkpoints and parameters (points 3 and 4 of
    the module docstring), through the trainer's hooks. Called by
    :func:`recbole_gemirec.quick_start.build_run` in every process."""
    import torch.distributed as dist

    trainer.set_run_file(broadcast_text(trainer.saved_model_file, trainer.device))
    # rank 0 writes, the others return at once: nobody reads the file before rank 0 has written it
    trainer.add_hook("checkpoint_saved", lambda path: dist.barrier())

    def share_rank0_parameters(stage):
        """A stage's initialisation (GemiRec's k-means) may differ per process: keep rank 0's result."""
        with torch.no_grad():
            for tensor in list(trainer.model.parameters()) + list(trainer.model.buffers()):
                dist.broadcast(tensor.data, src=0)

    trainer.add_hook("stage_started", share_rank0_parameters)
