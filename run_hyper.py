#!/usr/bin/env python
"""Hyper-parameter search for any model run through recbole-gemirec, on RecBole's ``HyperTuning``
(hyperopt), offline.

    python run_hyper.py                                     # GemiRec on ml-100k, properties/hyper/GemiRec.hyper
    python run_hyper.py --model=GemiRec --dataset=ml-100k --algo=bayes --max_evals=20 --output_file=hyper.json
    python run_hyper.py --model=SASRec --params_file=my.hyper --config_files="a.yaml" --epochs=5

The parameter-space file has RecBole's format, one parameter a line (``#`` starts a comment):

    learning_rate choice [0.0005,0.001,0.002]
    dropout_prob uniform 0.1,0.5
    interest_num quniform 3,8,1
    commitment_beta loguniform -3,0          (natural-log bounds, as in hyperopt)

The file holds values only: each is read with ``ast.literal_eval`` and reaches the trials as that value
(a string stays a string; nothing in the file is ever evaluated as code, here or by RecBole).

Every trial trains and tests one configuration with :func:`recbole_gemirec.quick_start.objective_function`;
the best is the one with the best validation score (``valid_metric``). The script writes
``--output_file`` (JSON: every trial's parameters, validation and test results, and the best one) and
next to it ``<output_file stem>.best.yaml``, the best configuration as a file that
``run_recbole_gemirec.py --config_files`` reads. Any other ``--key=value`` is a fixed setting for all
trials (a searched parameter overrides it).
"""

import argparse
import ast
import itertools
import json
import math
import os
import sys
import time

import numpy as np

DEFAULT_OUTPUT = "hyper_result.json"
ALGORITHMS = ("random", "bayes", "exhaustive")
SPACE_TYPES = ("choice", "uniform", "quniform", "loguniform")


def parse_args(argv):
    from recbole_gemirec.resources import add_protocol_argument

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="Any other --key=value is a fixed configuration setting.")
    parser.add_argument("--model", "-m", default="GemiRec", help="model class name (default: GemiRec)")
    parser.add_argument("--dataset", "-d", default="ml-100k", help="dataset name (default: ml-100k)")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files, later ones win")
    add_protocol_argument(parser)
    parser.add_argument("--params_file", default=None,
                        help="parameter-space file (default: properties/hyper/<model>.hyper)")
    parser.add_argument("--algo", default="random",
                        help="random (default), bayes (TPE) or exhaustive (the grid in order; choices only)")
    parser.add_argument("--max_evals", type=int, default=10, help="number of trials (default 10)")
    parser.add_argument("--early_stop", type=int, default=10,
                        help="stop after this many trials without improvement (default 10)")
    parser.add_argument("--seed", type=int, default=2020, help="seed of the search itself (default 2020)")
    parser.add_argument("--output_file", default=DEFAULT_OUTPUT, help=f"result JSON (default {DEFAULT_OUTPUT})")
    parser.add_argument("--no_save", action="store_true", help="do not write checkpoints of the trials")
    return parser.parse_known_args(argv)


# --- the parameter space ---------------------------------------------------------------------------
def _literal(text, where):
    from recbole_gemirec.errors import ConfigError

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        raise ConfigError(f"{where}: {text!r} is not a literal value") from None


def _finite(number):
    try:
        return math.isfinite(float(number))
    except OverflowError:  # an integer beyond float's range
        return False


def read_space(path):
    """Parse a parameter-space file into ``{name: (type, values)}`` without evaluating any code
    (RecBole's own reader calls ``eval`` on each line).

    Raises:
        ConfigError: a missing file, an unknown type, or values that do not fit the type.
    """
    from recbole_gemirec.errors import ConfigError

    if not os.path.isfile(path):
        raise ConfigError(f"parameter-space file not found: {path}")
    space = {}
    try:
        with open(path, "rb") as f:
            content = f.read().decode("utf-8")
    except OSError as err:
        raise ConfigError(f"parameter-space file {path} cannot be read ({err.strerror or err})") from None
    except UnicodeDecodeError as err:
        line = err.object[:err.start].count(b"\n") + 1
        raise ConfigError(f"{path}:{line}: byte {err.object[err.start:err.start + 1]!r} is not UTF-8; allowed: a "
                          "UTF-8 text file, one 'name type values' a line") from None
    for number, line in enumerate(content.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        where = f"{path}:{number}"
        parts = line.split(None, 2)
        if len(parts) < 3:
            raise ConfigError(f"{where}: expected 'name type values', found {line!r}")
        name, kind, text = parts[0], parts[1], "".join(parts[2].split())
        if kind not in SPACE_TYPES:
            raise ConfigError(f"{where}: type {kind!r} is unknown; allowed: {', '.join(SPACE_TYPES)}")
        if name in space:
            raise ConfigError(f"{where}: parameter {name!r} appears twice")
        if kind == "choice":
            values = _literal(text, where)
            if not isinstance(values, list) or not values:
                raise ConfigError(f"{where}: choice needs a non-empty list, e.g. [0.001,0.002]")
        else:
            values = _literal(f"({text})", where)
            expected = 3 if kind == "quniform" else 2
            if (not isinstance(values, tuple) or len(values) != expected
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)):
                raise ConfigError(f"{where}: {kind} needs {expected} comma-separated numbers "
                                  f"({'low,high,q' if expected == 3 else 'low,high'})")
            if not all(_finite(v) for v in values):
                raise ConfigError(f"{where}: {kind} needs finite numbers, found "
                                  f"{text if len(text) <= 40 else text[:40] + '...'!r}")
            if values[0] >= values[1]:
                raise ConfigError(f"{where}: {kind} needs low < high, found {values[0]} and {values[1]}")
            if kind == "quniform" and values[2] <= 0:
                raise ConfigError(f"{where}: quniform needs a step q > 0, found {values[2]}")
        space[name] = (kind, values)
    if not space:
        raise ConfigError(f"{path} defines no parameter")
    return space


def hyperopt_space(space):
    """The hyperopt expression of a parsed space (``hp.choice``, ``hp.uniform``, ...)."""
    from hyperopt import hp

    result = {}
    for name, (kind, values) in space.items():
        if kind == "choice":
            result[name] = hp.choice(name, values)
        elif kind == "uniform":
            result[name] = hp.uniform(name, float(values[0]), float(values[1]))
        elif kind == "quniform":
            result[name] = hp.quniform(name, float(values[0]), float(values[1]), float(values[2]))
        else:
            result[name] = hp.loguniform(name, float(values[0]), float(values[1]))
    return result


def default_params_file(model):
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.resources import resource_dir

    path = resource_dir("properties") / "hyper" / f"{model}.hyper"
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.hyper")) if path.parent.is_dir() else []
        raise ConfigError(f"no parameter space shipped for model {model!r} (shipped: {', '.join(shipped) or 'none'}); "
                          "give one with --params_file")
    return str(path)


def parse_overrides(overrides):
    """``--key=value`` strings as a dict, each value read as data (never evaluated): a Python literal, a
    YAML flow list or mapping, ``true``/``false``, or else the string itself
    (:func:`recbole_gemirec.config.parse_value`)."""
    from recbole_gemirec.config import parse_cmd_args

    return parse_cmd_args(overrides)


# --- the search ------------------------------------------------------------------------------------
def grid_suggest(space):
    """A hyperopt ``algo`` that walks the grid of a choice-only space in order, each point once.

    RecBole's own ``exhaustive_search`` samples with ``np.random.RandomState``, which hyperopt >= 0.2.7
    no longer accepts, and it visits the grid in random order; this one is deterministic.
    """
    from recbole_gemirec.errors import ConfigError

    names = sorted(space)
    not_choice = [n for n in names if space[n][0] != "choice"]
    if not_choice:
        raise ConfigError(f"--algo=exhaustive needs a space of choices only; {', '.join(not_choice)} "
                          "is continuous (use --algo=random or bayes)")
    sizes = [len(space[n][1]) for n in names]

    def suggest(new_ids, domain, trials, seed):
        from hyperopt.base import miscs_update_idxs_vals

        tried = {tuple(t["misc"]["vals"][n][0] for n in names) for t in trials.trials}
        grid = (combo for combo in itertools.product(*[range(s) for s in sizes]) if combo not in tried)
        docs = []
        for new_id in new_ids:
            combo = next(grid, None)
            if combo is None:
                break
            misc = {"tid": new_id, "cmd": domain.cmd, "workdir": domain.workdir}
            miscs_update_idxs_vals([misc], {n: [new_id] for n in names}, {n: [c] for n, c in zip(names, combo)})
            docs.extend(trials.new_trial_docs([new_id], [None], [domain.new_result()], [misc]))
        return docs

    return suggest, int(np.prod(sizes))


def make_tuner(objective, space, algo, max_evals, early_stop, seed):
    """A RecBole ``HyperTuning`` that searches ``space`` with ``algo``, seeded, without ray, plotly or
    progress bars, and that records every trial."""
    from hyperopt import STATUS_OK, fmin
    from recbole.trainer.hyper_tuning import HyperTuning

    from recbole_gemirec.checkpoint import to_plain

    class OfflineHyperTuning(HyperTuning):
        def __init__(self):
            chosen, evals = algo, max_evals
            if algo == "exhaustive":
                chosen, size = grid_suggest(space)
                evals = min(size, max_evals)
            super().__init__(objective, space=hyperopt_space(space), algo=chosen, max_evals=evals,
                             early_stop=early_stop)
            self.trials = []

        def trial(self, params):
            params = to_plain(params)
            result = self.objective_function(params, None)
            score = float(result["best_valid_score"])
            bigger = bool(result["valid_score_bigger"])
            self.trials.append({
                "params": params, "best_valid_score": score,
                "best_valid_result": to_plain(dict(result["best_valid_result"] or {})),
                "test_result": to_plain(dict(result["test_result"] or {})),
            })
            better = self.best_score is None or (score > self.best_score if bigger else score < self.best_score)
            if better:
                self.best_score, self.best_params, self.best_test_result = score, params, self.trials[-1]["test_result"]
            print(f"trial {len(self.trials)}: {params} -> valid {score:.4f}", flush=True)
            return {"loss": -score if bigger else score, "status": STATUS_OK}

        def run(self):
            fmin(self.trial, self.space, algo=self.algo, max_evals=self.max_evals, early_stop_fn=self.early_stop_fn,
                 rstate=np.random.default_rng(seed), show_progressbar=False)

    return OfflineHyperTuning()


def main(argv=None):
    args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
    from recbole_gemirec.checkpoint import CheckpointError
    from recbole_gemirec.errors import ConfigError, DataError

    try:
        return search(args, overrides)
    except (ConfigError, DataError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


def search(args, overrides):
    import yaml

    from recbole_gemirec.checkpoint import to_plain
    from recbole_gemirec.config import read_config_files
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.output_paths import check_result_file
    from recbole_gemirec.quick_start import objective_function, write_result
    from recbole_gemirec.resources import protocol_config

    if args.algo not in ALGORITHMS:
        raise ConfigError(f"--algo={args.algo!r} is unknown; allowed: {', '.join(ALGORITHMS)}")
    if args.max_evals < 1:
        raise ConfigError(f"--max_evals={args.max_evals}: need at least one trial")
    # the result is written after every trial has run: find out now whether it can be
    check_result_file(args.output_file, "--output_file")
    check_result_file(os.path.splitext(args.output_file)[0] + ".best.yaml", "--output_file (its .best.yaml)")
    params_file = args.params_file or default_params_file(args.model)
    space = read_space(params_file)
    fixed = parse_overrides(overrides)
    fixed.update({"model": args.model, "dataset": args.dataset})
    config_files = args.config_files.split() if args.config_files else []
    if args.protocol:
        config_files.insert(0, str(protocol_config(args.protocol)))
    overridden = sorted(set(space) & set(fixed))
    if overridden:
        print(f"note: searched parameters override the fixed settings of {', '.join(overridden)}", file=sys.stderr)

    def objective(params, _config_files):
        settings = dict(fixed)
        settings.update(params)
        return objective_function(settings, config_files or None, saved=not args.no_save)

    start = time.time()
    tuner = make_tuner(objective, space, args.algo, args.max_evals, args.early_stop, args.seed)
    tuner.run()
    trials = tuner.trials
    best = next(t for t in trials if t["params"] == tuner.best_params)
    # the whole configuration of the best trial: the --config_files' contents, the fixed settings, the params
    best_config = {**read_config_files(config_files), **fixed, **best["params"]}
    best_config_file = os.path.splitext(args.output_file)[0] + ".best.yaml"
    result = {
        "model": args.model, "dataset": args.dataset, "params_file": os.path.abspath(params_file),
        "config_files": config_files, "fixed": to_plain(fixed), "algo": args.algo, "seed": args.seed,
        "space": {name: [kind, list(values)] for name, (kind, values) in space.items()},
        "trials": trials, "best": best, "best_config": to_plain(best_config),
        "best_config_file": os.path.abspath(best_config_file),
        "wall_time_s": round(time.time() - start, 3),
    }
    write_result(args.output_file, result)
    with open(best_config_file, "w", encoding="utf-8") as f:
        f.write(f"# best of {len(trials)} trials of run_hyper.py ({args.algo}): valid score "
                f"{best['best_valid_score']}, test {json.dumps(best['test_result'])}\n")
        yaml.safe_dump(to_plain(best_config), f, sort_keys=True)
    print(f"best of {len(trials)} trials: {best['params']} -> valid {best['best_valid_score']:.4f}, "
          f"test {best['test_result']}")
    print(f"results written to {args.output_file}; best configuration to {best_config_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
