"""Build one benchmark run from its spec: the configuration and the parts ``build_run`` returns.

Shared by the accuracy runs (:mod:`benchmarks.worker`) and the speed measurements (:mod:`benchmarks.speed`).
"""


def build(spec, extra=None):
    """Config and ``build_run`` parts for the spec's model and dataset (``extra`` overrides the config)."""
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    settings = dict(spec.get("config") or {})
    settings.update(extra or {})
    config = Config(model=spec["model"], dataset=spec["dataset"], config_file_list=spec.get("config_files") or None,
                    config_dict=settings)
    return config, build_run(config)
