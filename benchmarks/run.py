"""Regenerate every benchmark figure and the report: ``python -m benchmarks.run``.

    python -m benchmarks.run --budget small          # results in benchmarks/results/small, report docs/benchmarks.md
    python -m benchmarks.run --quick --out /tmp/b    # tiny data, a few minutes; results and report in /tmp/b
    python -m benchmarks.run --budget small --only speed   # one part (accuracy, ablation, speed)

Every measurement runs in a process of its own (:mod:`benchmarks.worker`) with one thread
(``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``, faiss likewise) and writes one JSON file. A file that
exists is not measured again, so an interrupted run continues where it stopped (delete a file to redo
it); a failed measurement writes ``<name>.json.error.json`` and is retried next time. Accuracy and
ablation runs go ``--jobs`` at a time (each is single-threaded); the speed measurements always run one at
a time, after them. At the end :mod:`benchmarks.report` writes the report, the charts and
``summary.json`` from whatever JSON exists.
"""

import argparse
import datetime
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata

from benchmarks.budgets import (
    BUDGETS, DATASETS, HISTORY_LENGTH, METRICS, MULTI_INTEREST_BASELINES, PAPER_RECIPE, TOPK, VALID_METRIC, ablation,
    budget,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGES = ("torch", "recbole", "numpy", "pandas", "faiss-cpu", "scipy", "matplotlib")


# --- paths --------------------------------------------------------------------------------------------
def paths(settings, out=None, results=None, docs=None):
    """``results`` (JSON), ``docs`` (report and charts) and ``work`` (logs, checkpoints, generated data)."""
    name = settings["name"]
    if out:
        results = results or os.path.join(out, "results", name)
        docs = docs or out
    results = os.path.abspath(results or os.path.join(REPO, "benchmarks", "results", name))
    if docs is None:
        docs = os.path.join(REPO, "docs") if name != "quick" else results
    return {"results": results, "docs": os.path.abspath(docs), "work": os.path.join(results, "_work")}


# --- machine and versions -----------------------------------------------------------------------------
def machine():
    cpu = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory = None
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    memory = round(int(line.split()[1]) / 2 ** 20, 1)
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu or platform.processor() or "unknown", "memory_gib": memory,
            "platform": platform.platform(), "load_avg_at_start": [round(x, 2) for x in os.getloadavg()]}


def versions():
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    try:
        found["recbole-gemirec"] = metadata.version("recbole-gemirec")
    except metadata.PackageNotFoundError:
        found["recbole-gemirec"] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10)
        if commit.returncode == 0:
            found["git_commit"] = commit.stdout.strip()
            found["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return found


def command_line(argv):
    return "python -m benchmarks.run " + " ".join(shlex.quote(a) for a in argv)


# --- tasks --------------------------------------------------------------------------------------------
def dataset_spec(name, work):
    spec = DATASETS[name]
    files = [code_path(f) for f in spec["config_files"]]
    config = {}
    for key, value in spec["config"].items():
        if isinstance(value, str):
            value = value.replace("{work}", work)
            if key == "data_path" and not os.path.isabs(value):
                value = os.path.join(REPO, value)
        config[key] = value
    return spec["dataset"], files, config


CODE = {"root": REPO, "commit": None, "source": "working tree"}  # set by main(): where workers import the package


def code_path(relative):
    """``relative`` under the code the workers run (a snapshot), else under the repository (test data)."""
    candidate = os.path.join(CODE["root"], relative)
    return candidate if os.path.exists(candidate) else os.path.join(REPO, relative)


def protocol_file():
    return code_path(os.path.join("dataset_configs", "protocol_user.yaml"))


def pin_code(where, choice, key="code"):
    """Choose the code the workers import ``recbole_gemirec`` from, so that every run of a results directory
    measures the same code while others keep editing the working tree.

    ``choice``: ``worktree``, a git revision (``HEAD``, a commit), or ``None`` - the commit already recorded
    under ``key`` in the results' ``meta.json`` (a resumed run keeps its code), else ``HEAD``. The accuracy
    and ablation runs are pinned under ``code``, the speed measurements under ``speed_code``, the scale
    measurements under ``scale_code``: a part measured later than the accuracy rows measures its own
    commit, and the report says which. A revision is exported
    with ``git archive`` (package, properties, dataset configs and the measuring side, ``benchmarks/``
    without its results) into ``<work>/code/<commit>``, so the workers run that commit's harness on that
    commit's package even after either changed in the working tree; nothing in the repository or its git
    state changes.
    """
    meta_path = os.path.join(where["results"], "meta.json")
    recorded = None
    if os.path.exists(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            recorded = (json.load(f).get(key) or {}).get("commit")
    choice = choice or recorded or "HEAD"
    if choice == "worktree":
        CODE.update(root=REPO, commit=None, source="working tree")
        return CODE
    found = subprocess.run(["git", "rev-parse", "--verify", f"{choice}^{{commit}}"], cwd=REPO, capture_output=True,
                           text=True)
    if found.returncode != 0:
        raise SystemExit(f"error: --code {choice!r} is not a git revision of {REPO} (use --code worktree)")
    commit = found.stdout.strip()
    dest = os.path.join(where["work"], "code", commit[:12])
    if not os.path.isdir(os.path.join(dest, "benchmarks")):  # absent, or exported before the harness was
        tmp = dest + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        archive = subprocess.run(["git", "archive", "--format=tar", commit, "recbole_gemirec", "properties",
                                  "dataset_configs", "benchmarks", ":(exclude)benchmarks/results"],
                                 cwd=REPO, capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", tmp], input=archive.stdout, check=True)
        shutil.rmtree(dest, ignore_errors=True)
        os.replace(tmp, dest)
    CODE.update(root=dest, commit=commit, source=f"git archive of commit {commit}")
    return CODE


def run_config(settings, model, seed, run_dir, dataset_name, extra=None):
    """The configuration of one accuracy run (shared settings + the model's epoch budget)."""
    config = {
        "seed": seed,
        "reproducibility": True,
        "MAX_ITEM_LIST_LENGTH": HISTORY_LENGTH,
        "train_batch_size": settings["train_batch_size"],
        "metrics": list(METRICS),
        "topk": list(TOPK),
        "valid_metric": VALID_METRIC,
        "eval_step": 1,
        "show_progress": False,
        "checkpoint_dir": os.path.join(run_dir, "saved"),
    }
    if settings.get("split_follows_seed"):
        config["user_split_seed"] = seed  # each seed is another user split as well as another initialisation
    if model == "GemiRec":
        config["stage_epochs"] = dict(settings["stage_epochs"])
        config.update(PAPER_RECIPE)
        config.update(DATASETS[dataset_name]["gemirec"])
        config.update(settings.get("gemirec_config") or {})
    else:
        config["epochs"] = 1 if model == "Pop" else settings["baseline_epochs"]
        config["stopping_step"] = settings["stopping_step"]
        if model in MULTI_INTEREST_BASELINES:
            config.update(settings.get("baseline_config", {}))
    config.update(extra or {})
    source = config.get("interest_source", "category" if config.get("recipe") == "factorised" else None)
    if model == "GemiRec" and source == "category":
        # the category interests (GemiRec-I, or --gemirec-set) have no dictionary to learn: the stage is skipped
        config["stage_epochs"] = dict(config["stage_epochs"], dictionary=0)
    return config


class Runner:
    """Runs worker processes, skipping finished ones, and reports progress."""

    def __init__(self, where, jobs):
        self.where = where
        self.jobs = max(1, int(jobs))
        self.lock = threading.Lock()
        self.done = self.failed = self.skipped = 0
        self.total = 0
        self.start = time.time()

    def run_all(self, tasks, jobs=None):
        todo = []
        for task in tasks:
            if os.path.exists(task["out"]):
                self.skipped += 1
            else:
                todo.append(task)
        self.total += len(todo)
        if not todo:
            return
        with ThreadPoolExecutor(max_workers=jobs or self.jobs) as pool:
            list(pool.map(self.run_one, todo))

    def run_one(self, task):
        name = task["name"]
        run_dir = os.path.join(self.where["work"], "runs", name)
        os.makedirs(run_dir, exist_ok=True)
        spec_path = os.path.join(run_dir, "spec.json")
        task = dict(task, code={"commit": CODE["commit"], "source": CODE["source"]})
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(task, f, indent=1)
        log_path = os.path.join(self.where["work"], "logs", name + ".log")
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        env = dict(os.environ)
        roots = [CODE["root"], REPO] if CODE["root"] != REPO else [REPO]
        env["PYTHONPATH"] = os.pathsep.join(roots + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(task.get("threads", 1))
        if os.path.exists(task["out"] + ".error.json"):
            os.remove(task["out"] + ".error.json")  # a failure of an earlier invocation, retried now
        t0 = time.time()
        with open(log_path, "w", encoding="utf-8") as log:
            code = subprocess.call([sys.executable, "-m", "benchmarks.worker", spec_path], cwd=run_dir, env=env,
                                   stdout=log, stderr=subprocess.STDOUT)
        elapsed = time.time() - t0
        shutil.rmtree(os.path.join(run_dir, "saved"), ignore_errors=True)  # checkpoints are not kept
        with self.lock:
            if code == 0 and os.path.exists(task["out"]):
                self.done += 1
                status = "done"
            else:
                self.failed += 1
                status = f"FAILED (exit {code}; log {log_path})"
            finished = self.done + self.failed
            print(f"[{time.strftime('%H:%M:%S')}] {finished}/{self.total} {name}: {status} in {elapsed:.0f}s "
                  f"(total {(time.time() - self.start) / 60:.1f} min, load {os.getloadavg()[0]:.1f})", flush=True)


def accuracy_tasks(settings, where):
    tasks = []
    protocol = protocol_file()
    for seed in settings["seeds"]:
        for dataset_name in settings["datasets"]:
            dataset, files, base = dataset_spec(dataset_name, where["work"])
            for model in sorted(settings["models"], key=lambda m: m != "GemiRec"):  # GemiRec first (longest)
                name = f"accuracy__{dataset_name}__{model}__seed{seed}"
                run_dir = os.path.join(where["work"], "runs", name)
                config = dict(base)
                config.update(run_config(settings, model, seed, run_dir, dataset_name))
                tasks.append({
                    "kind": "accuracy", "name": name, "model": model, "dataset": dataset,
                    "config_files": [protocol] + files, "config": config, "threads": 1,
                    "dictionary_probe_epochs": settings["dictionary_probe_epochs"] if model == "GemiRec" else 0,
                    "out": os.path.join(where["results"], "accuracy", dataset_name, f"{model}__seed{seed}.json"),
                })
    return tasks


def ablation_tasks(settings, where):
    tasks = []
    protocol = protocol_file()
    for dataset_name, seeds in settings["ablations"].items():
        dataset, files, base = dataset_spec(dataset_name, where["work"])
        for seed in seeds:
            for row in settings["ablation_names"]:
                _, _, switch, _ = ablation(row)
                name = f"ablation__{dataset_name}__{row}__seed{seed}"
                run_dir = os.path.join(where["work"], "runs", name)
                config = dict(base)
                config.update(run_config(settings, "GemiRec", seed, run_dir, dataset_name, extra=switch))
                tasks.append({
                    "kind": "accuracy", "name": name, "model": "GemiRec", "dataset": dataset, "ablation": row,
                    "config_files": [protocol] + files, "config": config, "threads": 1,
                    "out": os.path.join(where["results"], "ablation", dataset_name, f"{row}__seed{seed}.json"),
                })
    return tasks


def speed_tasks(settings, where):
    speed = settings["speed"]
    dataset_name = speed["dataset"]
    dataset, files, base = dataset_spec(dataset_name, where["work"])
    protocol = protocol_file()
    common = {"dataset": dataset, "config_files": [protocol] + files, "threads": 1}
    out_dir = os.path.join(where["results"], "speed")

    def config(model, run_name, extra=None):
        run_dir = os.path.join(where["work"], "runs", run_name)
        c = dict(base)
        c.update(run_config(settings, model, 2020, run_dir, dataset_name, extra=extra))
        return c

    train, serving, memory, evaluation = [], [], [], []
    models = speed["train_models"]
    for rep in range(speed["train_repeats"]):
        order = models[rep % len(models):] + models[:rep % len(models)]
        for model in order:
            name = f"speed__train__{model}__rep{rep}"
            train.append(dict(common, kind="train_speed", name=name, model=model, config=config(model, name),
                              out=os.path.join(out_dir, f"train__{model}__rep{rep}.json")))
    served = speed.get("serving_models", ["GemiRec", "ComiRecSA"])
    for n_items in speed["serving_catalogues"]:
        name = f"speed__serving__n{n_items}"
        serving.append(dict(common, kind="serving", name=name, model="GemiRec", models=list(served),
                            baseline=speed.get("serving_baseline"),
                            config=config("GemiRec", name), n_items=n_items, k=speed["serving_k"],
                            topn=speed["serving_topn"], requests=speed["serving_requests"][n_items],
                            repeats=speed.get("serving_repeats", 1),
                            out=os.path.join(out_dir, f"serving__n{n_items}.json")))
        for model in served if speed.get("serving_memory", True) else ():  # each model alone
            slug, recbole_model = model.replace(" ", "-"), model.split()[0]  # "GemiRec factorised": GemiRec
            name = f"speed__serving_memory__{slug}__n{n_items}"
            memory.append(dict(common, kind="serving", name=name, model=recbole_model, models=[model], one_index=False,
                               config=config(recbole_model, name), n_items=n_items, k=speed["serving_k"],
                               topn=speed["serving_topn"], requests=max(5, speed["serving_requests"][n_items] // 10),
                               out=os.path.join(out_dir, f"serving_memory__{slug}__n{n_items}.json")))
    for catalogue in speed["eval_catalogues"]:
        for model in speed["eval_models"]:
            name = f"speed__eval__{model}__{catalogue}"
            evaluation.append(dict(common, kind="eval_speed", name=name, model=model, config=config(model, name),
                                   n_items=catalogue, users=speed["eval_users"], repeats=speed["eval_repeats"],
                                   topn=speed["serving_topn"], out=os.path.join(out_dir, f"eval__{model}__{catalogue}.json")))
    return train + serving + memory + evaluation


# --- data ---------------------------------------------------------------------------------------------
def scale_tasks(settings, where):
    """One measurement per (scale dataset, model): :mod:`benchmarks.scale`."""
    scale = settings.get("scale")
    if not scale:
        return []
    protocol = protocol_file()
    tasks = []
    for dataset_name in scale["datasets"]:
        dataset, files, base = dataset_spec(dataset_name, where["work"])
        inter = os.path.join(base["data_path"], dataset, f"{dataset}.inter")
        with open(inter, "rb") as f:
            interactions = sum(1 for _ in f) - 1  # the header line
        for model in scale["models"]:
            name = f"scale__{dataset_name}__{model}"
            config = dict(base, checkpoint_dir=os.path.join(where["work"], "runs", name, "saved"), seed=2020,
                          user_split_seed=2020, train_batch_size=scale["train_batch_size"],
                          eval_batch_size=scale["eval_batch_size"], MAX_ITEM_LIST_LENGTH=HISTORY_LENGTH,
                          metrics=["Recall"], topk=[50], valid_metric="Recall@50", show_progress=False,
                          epochs=1, stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
            if model == "GemiRec":
                config.update(PAPER_RECIPE, **DATASETS[dataset_name]["gemirec"])
            if model == "SASRec":
                config.update(scale["sasrec_config"])
            tasks.append({"kind": "scale", "name": name, "model": model, "dataset": dataset, "size": dataset_name,
                          "config_files": [protocol] + files, "config": config, "threads": 1,
                          "interactions": interactions, "cap_batches": scale["cap_batches"],
                          "eval_batches": scale["eval_batches"],
                          "out": os.path.join(where["results"], "scale", f"{dataset_name}__{model}.json")})
    return tasks


def prepare_data(settings, where, parts=("accuracy", "ablation", "speed", "scale")):
    """Generate the synthetic dataset(s) the budget's ``parts`` need (skipped when present)."""
    names = set()
    if "accuracy" in parts:
        names |= set(settings["datasets"])
    if "ablation" in parts:
        names |= set(settings["ablations"])
    if "speed" in parts:
        names.add(settings["speed"]["dataset"])
    if "scale" in parts:
        names |= set((settings.get("scale") or {}).get("datasets", ()))
    for name in sorted(names):
        generate = DATASETS[name].get("generate")
        if not generate:
            continue
        out = os.path.join(where["work"], "data")
        if os.path.exists(os.path.join(out, name, f"{name}.inter")):
            continue
        args = [sys.executable, "-m", "recbole_gemirec.data.synthetic", "--out", out, "--name", name]
        for key, value in generate.items():
            args += [f"--{key}", str(value)]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(dict.fromkeys([CODE["root"], REPO])))
        subprocess.run(args, check=True, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"generated {name}: {' '.join(args[3:])}", flush=True)


def update_meta(where, settings, argv, started, finished=None, key="code"):
    path = os.path.join(where["results"], "meta.json")
    meta = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            meta = json.load(f)
    meta["budget"] = settings
    meta.setdefault("invocations", [])
    entry = {"command": command_line(argv), "started": started}
    if finished:
        entry["finished"] = finished
    if meta["invocations"] and meta["invocations"][-1].get("started") == started:
        meta["invocations"][-1] = entry
    else:
        meta["invocations"].append(entry)
    meta["machine"] = machine()
    meta["versions"] = versions()
    meta[key] = {"commit": CODE["commit"], "source": CODE["source"]}
    os.makedirs(where["results"], exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.write("\n")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--budget", choices=tuple(BUDGETS), default="small")
    parser.add_argument("--quick", action="store_true", help="same as --budget quick")
    parser.add_argument("--out", default=None, help="put results (OUT/results/<budget>) and the report (OUT) here")
    parser.add_argument("--results", default=None, help="where the JSON goes (default benchmarks/results/<budget>)")
    parser.add_argument("--docs", default=None, help="where the report and charts go (default docs/, quick: the results)")
    parser.add_argument("--jobs", type=int, default=None, help="accuracy runs at a time (default: the budget's)")
    parser.add_argument("--only", default=None, help="comma-separated parts: accuracy, ablation, speed, scale")
    parser.add_argument("--no-report", action="store_true", help="measure only; build the report later")
    parser.add_argument("--models", default=None,
                        help="comma-separated: only the accuracy runs of these models (ablations: GemiRec) of the budget")
    parser.add_argument("--datasets", default=None, help="comma-separated: only the runs on these datasets of the budget")
    parser.add_argument("--gemirec-set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="configuration added to every GemiRec run (YAML values, read as data): an opt-in "
                             "setting measured at the budget, into its own --results")
    parser.add_argument("--code", default=None,
                        help="code to measure: a git revision (exported with git archive) or 'worktree'; default: "
                             "the commit recorded in the results' meta.json, else HEAD (quick: worktree)")
    return parser.parse_args(argv)


def recorded_gemirec_config(where):
    """The ``--gemirec-set`` settings a results directory's ``meta.json`` records (``{}`` for none), or
    ``None`` where there is no ``meta.json`` yet: one directory never mixes GemiRec runs of two settings."""
    path = os.path.join(where["results"], "meta.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return (json.load(f).get("budget") or {}).get("gemirec_config") or {}


def key_values(pairs):
    """``{key: value}`` of ``KEY=VALUE`` strings, each value parsed as YAML data (``yaml.safe_load``: numbers,
    booleans, lists; never code). ValueError names the first pair that is not of that form."""
    import yaml

    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r}: expected KEY=VALUE")
        try:
            settings[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ValueError(f"{pair!r}: the value is not YAML ({type(err).__name__})") from None
    return settings


def selected(task, models=None, datasets=None):
    """Whether an accuracy or ablation task is among ``models`` and ``datasets`` (``None``: all); its name is
    ``<kind>__<dataset>__<model or ablation row>__seed<seed>``, and an ablation row counts as GemiRec."""
    _, dataset, _, _ = task["name"].split("__")
    return (models is None or task["model"] in models) and (datasets is None or dataset in datasets)


def part_runs(settings, where, parts, models=None, datasets=None):
    """``(meta.json key of the code, task maker, jobs)`` of each part asked for, in order. The accuracy and
    ablation runs share one pinned commit (``code``), speed and scale have their own; the tasks are made
    after pinning, since their files are looked up in the pinned code. ``models`` / ``datasets`` keep only
    some of the accuracy and ablation runs (the budget itself, and so the report, stays whole)."""
    def accuracy_and_ablation():
        tasks = []
        if "accuracy" in parts:  # seed-major, so that an interrupted run leaves complete seeds
            tasks += sorted(accuracy_tasks(settings, where), key=lambda t: t["config"]["seed"])
        if "ablation" in parts:  # after the accuracy runs they compare with, in the budget's dataset order
            tasks += ablation_tasks(settings, where)
        return [task for task in tasks if selected(task, models, datasets)]

    runs = []
    if parts & {"accuracy", "ablation"}:
        runs.append(("code", accuracy_and_ablation, None))
    if "speed" in parts:  # one at a time: nothing of ours competes with the timings
        runs.append(("speed_code", lambda: speed_tasks(settings, where), 1))
    if "scale" in parts:  # one at a time: memory, and timings
        runs.append(("scale_code", lambda: scale_tasks(settings, where), 1))
    return runs


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    settings = budget("quick" if args.quick else args.budget)
    where = paths(settings, args.out, args.results, args.docs)
    parts = set((args.only or "accuracy,ablation,speed,scale").split(","))
    unknown = parts - {"accuracy", "ablation", "speed", "scale"}
    if unknown:
        print(f"error: --only {args.only!r}: unknown part(s) {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    models, datasets = (None if arg is None else set(arg.split(",")) for arg in (args.models, args.datasets))
    for what, chosen, allowed in (("--models", models, settings["models"]), ("--datasets", datasets, settings["datasets"])):
        if chosen is not None and not chosen <= set(allowed):
            print(f"error: {what} {','.join(sorted(chosen))}: not in budget {settings['name']!r} "
                  f"(allowed: {', '.join(allowed)})", file=sys.stderr)
            return 2
    try:
        gemirec_config = key_values(args.gemirec_set)
    except ValueError as err:
        print(f"error: --gemirec-set {err}", file=sys.stderr)
        return 2
    if gemirec_config:
        settings["gemirec_config"] = gemirec_config  # recorded in meta.json with the budget
    recorded = recorded_gemirec_config(where)
    if recorded is not None and recorded != gemirec_config:
        print(f"error: {where['results']} holds GemiRec runs with --gemirec-set {recorded or 'nothing'}; this "
              f"invocation gives {gemirec_config or 'nothing'}: use another --results", file=sys.stderr)
        return 2
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    os.makedirs(where["work"], exist_ok=True)
    code_choice = args.code or ("worktree" if settings["name"] == "quick" else None)
    print(f"budget {settings['name']}: results {where['results']}, report {where['docs']}", flush=True)
    runner = None
    for key, make_tasks, jobs in part_runs(settings, where, parts, models, datasets):
        pin_code(where, code_choice, key)
        update_meta(where, settings, argv, started, key=key)
        print(f"{key}: {CODE['source']}", flush=True)
        if runner is None:  # the generator of the first part's code makes the data
            prepare_data(settings, where, parts)
            runner = Runner(where, args.jobs or settings["jobs"])
        runner.run_all(make_tasks(), jobs=jobs)
    finished = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    update_meta(where, settings, argv, started, finished, key=key)
    print(f"{runner.done} measured, {runner.skipped} already there, {runner.failed} failed "
          f"in {(time.time() - runner.start) / 60:.1f} min", flush=True)
    if not args.no_report:
        from benchmarks import report

        written = report.build(where["results"], where["docs"], settings)
        for path in written:
            print(f"wrote {path}", flush=True)
    return 1 if runner.failed else 0


if __name__ == "__main__":
    sys.exit(main())
