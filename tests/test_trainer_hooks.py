"""The trainer every model gets (trainer/extension_trainer.py) and the events it offers (trainer/hooks.py)."""

import pytest
from recbole.trainer import KGTrainer, Trainer

from conftest import TINY_YAML, tiny_config
from recbole_gemirec.trainer import ExtensionMixin, ExtensionTrainer, GemiRecTrainer, extension_trainer_class
from recbole_gemirec.utils import get_trainer


def test_every_recbole_trainer_gets_the_extension_once_and_keeps_its_name():
    assert extension_trainer_class(Trainer) is ExtensionTrainer
    assert extension_trainer_class(GemiRecTrainer) is GemiRecTrainer
    kg = extension_trainer_class(KGTrainer)
    assert issubclass(kg, ExtensionMixin) and issubclass(kg, KGTrainer) and kg.__name__ == "KGTrainer"
    assert extension_trainer_class(KGTrainer) is kg  # made once per class
    assert get_trainer("sequential", "GemiRec") is GemiRecTrainer
    assert get_trainer(1, "REMI") is ExtensionTrainer


def _run(tmp_path, model, **settings):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    config = Config(model=model, dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(
        checkpoint_dir=str(tmp_path / "saved"), stopping_step=10, **settings))
    return build_run(config)


def _record(trainer):
    seen = []
    for event in ("checkpoint_saved", "stage_started", "epoch_trained", "validated", "dictionary_utilisation"):
        trainer.add_hook(event, lambda *args, event=event: seen.append((event, args)))
    return seen


def test_a_gemirec_run_tells_listeners_every_stage_epoch_validation_and_checkpoint(in_tmp):
    parts = _run(in_tmp, "GemiRec", interest_category_field="category", recipe="paper", interest_source="learned", gpt_layers=2,
                 stage_epochs={"retrieval": 2, "dictionary": 1, "joint": 1})
    trainer = parts["trainer"]
    seen = _record(trainer)
    trainer.fit(parts["train_data"], parts["valid_data"])

    started = [args[0] for event, args in seen if event == "stage_started"]
    assert started == ["retrieval", "dictionary", "joint"]
    trained = [(args[0], args[1]) for event, args in seen if event == "epoch_trained"]
    assert trained == [("retrieval", 0), ("retrieval", 1), ("dictionary", 0), ("joint", 0)]
    assert all(args[2] > 0 for event, args in seen if event == "epoch_trained")
    validated = [args for event, args in seen if event == "validated"]
    # one per epoch, plus one per tau of the joint stage's interest-prior choice on valid
    assert [v[0] for v in validated[:4]] == ["retrieval", "retrieval", "dictionary", "joint"]
    assert parts["model"].prior_weight_auto  # the shipped default: tau chosen on valid
    assert len(validated) == 4 + len(parts["model"].scoring_candidates) == 4 + 7  # the default: tau chosen from 7, masking off
    assert set(validated[2][2]) == {"dictionary_loss"} and validated[2][1] == pytest.approx(-validated[2][2]["dictionary_loss"], abs=1e-5)
    saved = [args[0] for event, args in seen if event == "checkpoint_saved"]
    assert any(path.endswith("-joint-last.pth") for path in saved)
    assert any(path.endswith("-retrieval.pth") for path in saved)
    whens = [(args[0], args[1]) for event, args in seen if event == "dictionary_utilisation"]
    assert ("dictionary", "after initialisation") in whens and ("dictionary", "end of stage") in whens
    assert all(0 <= share <= 1 for event, args in seen if event == "dictionary_utilisation"
               for share in args[2]["per_level"])

    trainer.remove_hooks()
    count = len(seen)
    trainer.train_epoch(parts["train_data"], 0)
    assert len(seen) == count  # nobody is listening any more


def test_a_plain_model_reports_its_epochs_as_stage_train_and_unknown_events_are_refused(in_tmp):
    parts = _run(in_tmp, "REMI", epochs=2)
    trainer = parts["trainer"]
    seen = _record(trainer)
    trainer.fit(parts["train_data"], parts["valid_data"])
    assert [args[:2] for event, args in seen if event == "epoch_trained"] == [("train", 0), ("train", 1)]
    assert [args[0] for event, args in seen if event == "validated"] == ["train", "train"]
    assert not [1 for event, _ in seen if event in ("stage_started", "dictionary_utilisation")]
    with pytest.raises(ValueError, match="unknown trainer event 'epoch_end'"):
        trainer.add_hook("epoch_end", print)
