"""The causal encoder read at one position per row against the full stack read afterwards, in one run.

The user tower and the interest generator read one state per sequence (the last real item). ``encode_last``
(``recbole_gemirec/model/interest_generator.py``) runs the last block only where it is read. This measures
forward + backward of both ways on the shapes GemiRec trains with (batch 512; user tower: 1 layer, 64 wide,
2 heads, 20 positions; generator: 6 layers, 16 wide, 4 heads, 21 positions), single-threaded, alternating
the two ways, median over repeats, and writes the ratio with the machine, the date and the command:

    OMP_NUM_THREADS=1 python -m benchmarks.encoder   # -> benchmarks/results/encoder/<date>.json
"""

import argparse
import datetime
import json
import os
import statistics
import sys
import time

import torch

from benchmarks.run import REPO, machine, versions
from recbole_gemirec.model.causal_encoder import CausalSelfAttentionBlock, encode_last

SHAPES = {"user_tower": dict(layers=1, hidden=64, heads=2, length=20),
          "generator": dict(layers=6, hidden=16, heads=4, length=21)}


def measure(layers, hidden, heads, length, batch=512, repeats=9, seed=0):
    torch.manual_seed(seed)
    blocks = torch.nn.ModuleList([CausalSelfAttentionBlock(hidden, heads, 0.2) for _ in range(layers)]).train()
    x = torch.randn(batch, length, hidden, requires_grad=True)
    last = torch.randint(0, length, (batch,))

    def full_stack():
        y = x
        for block in blocks:
            y = block(y)
        y[torch.arange(batch), last].sum().backward()

    def read_at_last():
        encode_last(blocks, x, last).sum().backward()

    times = {"full_stack": [], "encode_last": []}
    for _ in range(repeats):
        for name, step in (("full_stack", full_stack), ("encode_last", read_at_last)):
            began = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - began)
    medians = {name: statistics.median(values) for name, values in times.items()}
    return {"median_s": medians, "speedup": medians["full_stack"] / medians["encode_last"], "repeats": repeats,
            "batch": batch, "layers": layers, "hidden": hidden, "heads": heads, "length": length}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "encoder"))
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(1)
    began = datetime.datetime.now(datetime.timezone.utc)
    result = {"command": "OMP_NUM_THREADS=1 python -m benchmarks.encoder", "date": began.isoformat(timespec="seconds"),
              "machine": machine(), "versions": versions(),
              "shapes": {name: measure(**shape) for name, shape in SHAPES.items()}}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, f"{began:%Y-%m-%d}.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2, sort_keys=True)
        f.write("\n")
    for name, row in result["shapes"].items():
        print(f"{name}: full stack {row['median_s']['full_stack'] * 1000:.1f} ms, encode_last "
              f"{row['median_s']['encode_last'] * 1000:.1f} ms, {row['speedup']:.2f}x")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
