"""Where the project's YAML files live, in a source checkout and in an installed wheel.

The repository keeps ``properties/`` and ``dataset_configs/`` at its top level (docs/design.md §3). ``setup.py``
maps both into the package (``recbole_gemirec/properties``, ``recbole_gemirec/dataset_configs``) so a
wheel ships them; this module finds whichever copy exists.
"""

from pathlib import Path

from recbole_gemirec.errors import ConfigError

_PACKAGE_DIR = Path(__file__).resolve().parent


def resource_dir(name):
    """Return the directory ``name`` (``properties`` or ``dataset_configs``) of this installation."""
    for candidate in (_PACKAGE_DIR / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"recbole_gemirec resource directory '{name}' not found next to {_PACKAGE_DIR}; "
        "reinstall the package with 'pip install .'"
    )


def is_plain_name(name):
    """Whether ``name`` can be one path component: a non-empty string without a separator or NUL that does not
    start with a dot (so ``<dir>/<name>.yaml`` stays inside ``<dir>``)."""
    return (isinstance(name, str) and bool(name) and not name.startswith(".")
            and not any(c in name for c in ("/", "\\", "\0")))


def model_properties(model_name):
    """Path of ``properties/model/<Model>.yaml`` (it may not exist: RecBole models have their own)."""
    return resource_dir("properties") / "model" / f"{model_name}.yaml"


def dataset_properties(dataset_name):
    """Path of ``properties/dataset/<dataset>.yaml`` (may not exist)."""
    return resource_dir("properties") / "dataset" / f"{dataset_name}.yaml"


def add_protocol_argument(parser):
    """The scripts' ``--protocol`` option (``run_recbole_gemirec.py``, ``run_hyper.py``): a name for
    :func:`protocol_config`, ``loo`` unless given."""
    parser.add_argument("--protocol", default="loo",
                        help="evaluation protocol from dataset_configs/: loo (default, for every model: RecBole's "
                             "own default splits a general model's interactions 80/10/10 at random instead, so a "
                             "side-by-side run would compare two protocols) or user; your config files win over it")


def protocol_config(protocol):
    """Path of the evaluation-protocol file ``dataset_configs/protocol_<protocol>.yaml``."""
    directory = resource_dir("dataset_configs")
    path = directory / f"protocol_{protocol}.yaml"
    if not is_plain_name(protocol) or not path.is_file():
        available = sorted(p.stem[len("protocol_"):] for p in directory.glob("protocol_*.yaml"))
        raise ConfigError(f"--protocol={protocol!r} is unknown; allowed: {', '.join(available)}")
    return path
