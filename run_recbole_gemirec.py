#!/usr/bin/env python
"""Train and test any model through recbole-gemirec: GemiRec, the multi-interest baselines, or any
RecBole built-in model, on the same data and protocol.

    python run_recbole_gemirec.py                                  # the main job: GemiRec on ml-100k
    python run_recbole_gemirec.py --model=SASRec --dataset=ml-100k --epochs=1 --result_file=r.json
    python run_recbole_gemirec.py -m GemiRec -d mydata --config_files="a.yaml b.yaml" --learning_rate=0.002
    python run_recbole_gemirec.py --nproc=2 --result_file=r.json   # two processes (gloo on CPU, NCCL on GPU)

Every other ``--key=value`` is a RecBole configuration override (highest priority), as with RecBole's
own ``run_recbole.py``.
"""

import argparse
import sys


def parse_args(argv):
    from recbole_gemirec.resources import add_protocol_argument

    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Any other --key=value is passed to RecBole as a configuration override.",
    )
    parser.add_argument("--model", "-m", default="GemiRec", help="model class name (default: GemiRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k, shipped with RecBole)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files, later ones win")
    add_protocol_argument(parser)
    parser.add_argument("--result_file", default=None, help="write the final result as JSON to this path")
    parser.add_argument("--resume", default=None,
                        help="continue a run from this checkpoint, or from the newest '-last' checkpoint of "
                             "the model in this directory (e.g. saved/)")
    parser.add_argument("--no_save", action="store_true", help="do not write checkpoints")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes on this machine; > 1 runs RecBole's DistributedDataParallel path "
                             "(NCCL on GPUs, gloo on CPUs)")
    parser.add_argument("--world_size", type=int, default=-1,
                        help="processes on all machines together (default: nproc, one machine)")
    parser.add_argument("--ip", default="localhost", help="address of the machine running global rank 0")
    parser.add_argument("--port", default="5678", help="free TCP port on that machine")
    parser.add_argument("--group_offset", type=int, default=0,
                        help="global rank of this machine's first process (0 on the first machine)")
    return parser.parse_known_args(argv)


def main(argv=None):
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gemirec.checkpoint import CheckpointError
    from recbole_gemirec.errors import ConfigError, DataError, TrainingError
    from recbole_gemirec.quick_start import run
    from recbole_gemirec.resources import protocol_config

    bad = [arg for arg in overrides if not (arg.startswith("--") and "=" in arg)]
    if bad:
        print(f"error: unrecognised argument(s) {' '.join(bad)}; overrides take the form --key=value", file=sys.stderr)
        return 2
    try:
        config_files = args.config_files.split() if args.config_files else []
        if args.protocol:
            config_files.insert(0, str(protocol_config(args.protocol)))
        result = run(
            model=args.model, dataset=args.dataset, config_file_list=config_files or None,
            saved=not args.no_save, cmd_args=overrides, result_file=args.result_file, resume=args.resume,
            nproc=args.nproc, world_size=args.world_size, ip=args.ip, port=args.port,
            group_offset=args.group_offset,
        )
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except TrainingError as err:  # valid inputs, failed run (docs/reliability.md)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"test result: {result['test_result']}")
    if args.result_file:
        print(f"result written to {args.result_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
