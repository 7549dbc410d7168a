"""Every random-number state a training epoch draws from, as plain data (docs/reliability.md).

A resumed run repeats exactly what the uninterrupted run would have done only if it draws the same random
numbers; these functions record and restore them as hex strings and numbers, so the checkpoint that holds
them still loads under ``torch.load(weights_only=True)``.
"""

import random

import numpy as np
import torch

from recbole_gemirec.checkpoint import CheckpointError


def _bytes_hex(tensor):
    return tensor.cpu().numpy().tobytes().hex()


def _hex_bytes(text):
    return torch.frombuffer(bytearray(bytes.fromhex(text)), dtype=torch.uint8).clone()


def capture_rng_state(loader=None):
    """Every random-number state a training epoch draws from, as plain data (hex strings, numbers).

    torch's CPU generator (dropout, negative sampling, ``torch.randint``), CUDA's when present, numpy's and
    Python's global generators (RecBole's samplers), and ``loader.generator``, which shuffles RecBole's
    training batches. Plain data keeps the checkpoint loadable under ``weights_only=True``.
    """
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": _bytes_hex(torch.get_rng_state()),
        "numpy": {"name": name, "keys": np.asarray(keys, dtype=np.uint32).tobytes().hex(), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "internal": [int(v) for v in internal], "gauss_next": gauss_next},
    }
    if torch.cuda.is_available():
        state["cuda"] = [_bytes_hex(s) for s in torch.cuda.get_rng_state_all()]
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        state["loader"] = _bytes_hex(generator.get_state())
    return state


def restore_rng_state(state, loader=None):
    """Put back what :func:`capture_rng_state` recorded; :class:`CheckpointError` if it is damaged."""
    try:
        torch.set_rng_state(_hex_bytes(state["torch"]))
        numpy_state = state["numpy"]
        keys = np.frombuffer(bytes.fromhex(numpy_state["keys"]), dtype=np.uint32).copy()
        np.random.set_state((numpy_state["name"], keys, numpy_state["pos"], numpy_state["has_gauss"],
                             numpy_state["cached_gaussian"]))
        python_state = state["python"]
        random.setstate((python_state["version"], tuple(python_state["internal"]), python_state["gauss_next"]))
        if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all([_hex_bytes(s) for s in state["cuda"]])
        generator = getattr(loader, "generator", None)
        if "loader" in state and isinstance(generator, torch.Generator):
            generator.set_state(_hex_bytes(state["loader"]))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"the checkpoint's random-number state is damaged and cannot be restored ({err})") from None
