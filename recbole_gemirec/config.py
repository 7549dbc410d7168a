"""The extension's :class:`Config`: RecBole's configurator that also knows the extension's models.

RecBole 1.2.1 resolves ``model`` only among its own classes and loads only its own property files. This
subclass (the RecBole-GNN pattern, DESIGN §3) resolves names through :func:`recbole_gemirec.utils.get_model`
(extension first, RecBole second), layers ``properties/model/<Model>.yaml`` of the extension over RecBole's
internal defaults, registers the extension's metrics before RecBole validates ``metrics``, and takes the
command line as an explicit argument so that library calls never read ``sys.argv`` by accident.
"""

import yaml

from recbole_gemirec import _compat  # noqa: F401  (numpy aliases before RecBole's Config runs)
from recbole.config import Config as RecBoleConfig

from recbole_gemirec.resources import dataset_properties, model_properties


class Config(RecBoleConfig):
    """RecBole ``Config`` for models of the extension and of RecBole alike.

    Args:
        model, dataset, config_file_list, config_dict: as in RecBole.
        cmd_args (list of str, optional): ``--key=value`` overrides, highest priority, as RecBole reads
            them from the command line. ``None`` means no command-line overrides (RecBole itself would
            read ``sys.argv``; a library must not).
    """

    def __init__(self, model=None, dataset=None, config_file_list=None, config_dict=None, cmd_args=None):
        self._cmd_args = list(cmd_args or [])
        from recbole_gemirec.evaluator import register_metrics

        register_metrics()
        super().__init__(model, dataset, config_file_list, config_dict)
        from recbole_gemirec.validation import validate_config

        validate_config(self)  # every key checked before any data is read (docs/reliability.md)

    def _load_cmd_line(self):
        import sys

        saved_argv = sys.argv
        sys.argv = [saved_argv[0] if saved_argv else "recbole_gemirec"] + self._cmd_args
        try:
            return super()._load_cmd_line()
        finally:
            sys.argv = saved_argv

    def _init_device(self):
        """RecBole's device setup; a distributed process (``local_rank`` set by
        :func:`recbole_gemirec.quick_start.run`) joins its process group with NCCL on GPUs and gloo on
        CPUs (RecBole hard-codes NCCL; see :mod:`recbole_gemirec.distributed`)."""
        if "local_rank" not in self.final_config_dict:
            return super()._init_device()
        from recbole_gemirec.distributed import init_distributed

        init_distributed(self.final_config_dict)

    def _get_model_and_dataset(self, model, dataset):
        from recbole_gemirec.utils import get_model

        if model is None:
            model = self.external_config_dict.get("model")
            if model is None:
                raise KeyError(
                    "model is not set: give it as an argument, in a config file, in config_dict or as --model=NAME"
                )
        if isinstance(model, str):
            model_class = get_model(model)
        else:
            model_class, model = model, model.__name__
        if dataset is None:
            dataset = self.external_config_dict.get("dataset")
            if dataset is None:
                raise KeyError(
                    "dataset is not set: give it as an argument, in a config file, in config_dict or as --dataset=NAME"
                )
        return model, model_class, dataset

    def _load_internal_config_dict(self, model, model_class, dataset):
        """RecBole's internal layers, then the extension's model file, then its dataset file (dataset
        settings win over model defaults, as in RecBole's own layering)."""
        super()._load_internal_config_dict(model, model_class, dataset)
        self._update_from(model_properties(model))
        dataset_values = self._update_from(dataset_properties(dataset))
        self.parameters["Dataset"] += [k for k in dataset_values if k not in self.parameters["Dataset"]]
        self._drop_negatives_for_ce_loss()

    def _update_from(self, path):
        """Merge one of the extension's YAML files into the internal config; return its values."""
        if not path.is_file():
            return {}
        with open(path, "r", encoding="utf-8") as f:
            values = yaml.load(f.read(), Loader=self.yaml_loader) or {}
        self.internal_config_dict.update(values)
        return values

    def _drop_negatives_for_ce_loss(self):
        """Sequential models trained with ``loss_type: CE`` score the whole catalogue and take no sampled
        negatives, but RecBole's ``overall.yaml`` asks for one and then rejects the combination
        (``train_neg_sample_args ... should be None when the loss_type is CE``): ``run_recbole`` fails for
        SASRec out of the box. Unless the user set ``train_neg_sample_args`` themselves, drop the default."""
        from recbole.utils import ModelType

        loss_type = self.external_config_dict.get("loss_type", self.internal_config_dict.get("loss_type"))
        if (
            self.internal_config_dict.get("MODEL_TYPE") == ModelType.SEQUENTIAL
            and loss_type == "CE"
            and "train_neg_sample_args" not in self.external_config_dict
        ):
            self.internal_config_dict["train_neg_sample_args"] = None
