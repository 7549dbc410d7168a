"""The transition predictor: population interest transitions counted over the training sequences, and the
novel interests they propose (recbole_gemirec/model/interest_transitions.py; docs/gemirec.md)."""

import math

import numpy as np
import pytest
import torch

from conftest import TINY_YAML, run_cli, tiny_config, train_preset
from recbole_gemirec.model.interest_cache import history_frequency_scores, interest_log_probs
from recbole_gemirec.model.interest_transitions import (
    CURRENT_SHARE_GRID, NOVEL_SHARE_GRID, count_transitions, cut_samples, transition_log_probs,
)


def samples(sequences, max_len=3):
    """RecBole-style training samples (one per position after the first) of ``{user: [items]}``."""
    users, items, windows = [], [], []
    for user, seq in sequences.items():
        for t in range(1, len(seq)):
            window = seq[max(0, t - max_len):t]
            users.append(user)
            items.append(seq[t])
            windows.append(window + [0] * (max_len - len(window)))
    return np.array(users), np.array(items), np.array(windows)


def test_sequences_are_cut_where_the_evaluation_cuts_them():
    # user 1: 10 items; user protocol with ratio 0.8 keeps int(0.8 * 10) = 8 as the history
    users, items, windows = samples({2: [11, 12, 13, 14, 15], 1: list(range(1, 11))})  # not sorted by user
    sources, future, owner = cut_samples(users, items, windows, history_ratio=0.8)
    assert sources.tolist() == [[6, 7, 8], [12, 13, 14]]  # the L = 3 items before item k + 1 (k = 8, and 4 of 5)
    assert future.tolist() == [9, 10, 15] and owner.tolist() == [0, 0, 1]
    # loo: the target is the next item, so the cut is before the last training item
    sources, future, owner = cut_samples(users, items, windows, history_ratio=None)
    assert sources.tolist() == [[7, 8, 9], [12, 13, 14]]
    assert future.tolist() == [10, 15] and owner.tolist() == [0, 1]


def test_a_transition_is_the_rate_at_which_an_interest_leads_to_a_new_one():
    # interests: user 0 holds {0} and later shows {0, 2}: 2 is new; user 1 holds {0, 1}, later {1}: nothing
    # new; user 2 holds {1} and later shows {2, 2, 3}
    sources = torch.tensor([[0, 0, -1], [0, 1, -1], [1, -1, -1]])
    future = torch.tensor([0, 2, 1, 2, 2, 3])
    owner = torch.tensor([0, 0, 1, 2, 2, 2])
    table = count_transitions(sources, future, owner, n_interests=4)
    expected = torch.zeros(4, 4)
    expected[0, 2] = 1 / 2  # two users hold 0, one of them then took up 2
    expected[1, 2] = expected[1, 3] = 1 / 2  # two users hold 1, one of them then took up 2 and 3
    assert torch.allclose(table, expected)


def test_the_predictor_spreads_beta_over_the_interests_the_history_lacks():
    history = torch.tensor([[0, 0, 1, -1], [3, 3, 3, 3]])
    frequency = history_frequency_scores(history, 4)
    table = torch.zeros(4, 4)
    table[0, 2], table[1, 3] = 0.6, 0.2  # from 0 to 2, from 1 to 3 (3 leads nowhere)
    log_p = transition_log_probs(frequency, table, torch.tensor(0.3))
    p = log_p.exp()
    assert torch.allclose(p.sum(dim=1), torch.ones(2))
    share = torch.tensor([2 / 3, 1 / 3])
    assert torch.allclose(p[0, :2], 0.7 * share, atol=1e-4)
    assert torch.allclose(p[0, 2:], torch.tensor([0.3 * 0.75, 0.3 * 0.25]), atol=1e-4)
    assert torch.allclose(p[1], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # no transition: the history alone
    assert math.isinf(log_p[1, 0].item()) and log_p[1, 0] < 0
    # beta 0 is the history frequency (GemiRec-M) exactly
    plain = transition_log_probs(frequency, table, torch.tensor(0.0))
    assert torch.equal(plain, interest_log_probs(frequency, "frequency"))


def test_alpha_moves_the_historys_weight_to_the_interest_of_its_last_item():
    """current_interest_share: alpha of the history's share goes to the last item's interest (the run in
    progress); the novel interests keep beta; alpha 0 is the plain predictor exactly; no last item, no move."""
    history = torch.tensor([[0, 0, 1, -1], [3, 3, 3, 3], [-1, -1, -1, -1]])
    last = torch.tensor([1, 3, -1])  # the interest of each history's last item (-1: none)
    frequency = history_frequency_scores(history, 4)
    table = torch.zeros(4, 4)
    table[0, 2] = 0.6
    p = transition_log_probs(frequency, table, torch.tensor(0.3), last, torch.tensor(0.5)).exp()
    share = 0.5 * torch.tensor([2 / 3, 1 / 3]) + 0.5 * torch.tensor([0.0, 1.0])
    assert torch.allclose(p[0, :2], 0.7 * share, atol=1e-4) and p[0, 1] > p[0, 0]
    assert torch.allclose(p[0, 2], torch.tensor(0.3), atol=1e-4)  # the novel interest keeps its beta
    assert torch.allclose(p[1], torch.tensor([0.0, 0.0, 0.0, 1.0]))  # the last item's interest is all it has
    assert not torch.isfinite(p[2].log()).any()  # nothing: nothing to move
    plain = transition_log_probs(frequency, table, torch.tensor(0.3))
    assert torch.equal(transition_log_probs(frequency, table, torch.tensor(0.3), last, torch.tensor(0.0)), plain)


def test_a_trained_model_counts_its_transitions_and_recbole_ranks_with_them(in_tmp):
    """Through RecBole's own loading: the checkpoint's table is the count over the training split, beta is the
    one chosen on valid, and the cache can hold interests the history lacks."""
    from recbole_gemirec.quick_start import load_data_and_model

    result = train_preset(in_tmp, eval_protocol="user", interest_predictor="transition", novel_interest_share="auto")
    config, model, dataset, train_data, _, test_data = load_data_and_model(str(in_tmp / result["checkpoint"]))
    assert model.interest_predictor == "transition"
    assert any(abs(float(model.novel_share) - share) < 1e-6 for share in NOVEL_SHARE_GRID)
    counted = model.interest_transitions.clone()
    assert counted.sum() > 0 and (counted >= 0).all() and (counted <= 1).all()
    model.count_interest_transitions()  # recount from this process's training split: the same table
    assert torch.allclose(model.interest_transitions, counted)
    batch = next(iter(test_data))[0]
    with torch.no_grad():
        model.full_sort_predict(batch)  # fills the batch users' cache rows
        beta = 0.3 if abs(float(model.novel_share) - 0.3) > 1e-6 else 0.1
        model.set_scoring(model.interest_masking, float(model.prior_weight), beta)
        ids, log_prob = model.cached_interests(batch)  # a new beta: rebuilt, not the rows of the old one
        fresh = model.select_interests(model.interest_scores(batch))
    assert torch.equal(ids, fresh[0]) and torch.allclose(log_prob, fresh[1])
    history = model.history_interest_ids(batch[model.ITEM_SEQ])
    in_history = (ids.unsqueeze(-1) == history.unsqueeze(1)).any(dim=-1)
    assert (~in_history & torch.isfinite(log_prob)).any()  # proposed: an interest absent from the history
    # their probabilities: 1 - beta of the history's share for the interests it has, with alpha (chosen on
    # valid with beta) of it moved to the interest of the history's last item
    alpha = float(model.current_share)
    assert any(abs(alpha - a) < 1e-6 for a in CURRENT_SHARE_GRID)
    share = (history == ids[:, :1]).sum(dim=1) / (history >= 0).sum(dim=1)
    last = history.gather(1, (batch[model.ITEM_SEQ_LEN] - 1).unsqueeze(1)).squeeze(1)
    share = (1 - alpha) * share + alpha * (last == ids[:, 0]).float()
    top_in_history = in_history[:, 0]
    assert torch.allclose(log_prob[top_in_history, 0].exp(), (1 - beta) * share[top_in_history].float(), atol=1e-3)


def test_the_transition_predictor_refuses_a_table_too_large_to_hold(in_tmp):
    done = run_cli(["--interest_predictor=transition", "--interest_levels=4", "--no_save"], cwd=in_tmp)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1
    assert "interest_predictor='transition'" in lines[0] and "16384 interests" in lines[0] and "4096" in lines[0]


def test_a_category_field_with_too_many_values_for_the_table_is_refused_before_training(in_tmp, monkeypatch):
    from recbole_gemirec.config import Config
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.model import interest_transitions
    from recbole_gemirec.quick_start import build_run

    monkeypatch.setattr(interest_transitions, "MAX_TRANSITION_INTERESTS", 4)  # the tiny field has 8 values
    config = Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(
        interest_predictor="transition", interest_source="category", interest_category_field="category", recipe="paper",
        checkpoint_dir=str(in_tmp / "saved")))
    with pytest.raises(ConfigError, match="interest_source='category' on 'category': 9 interests"):
        build_run(config)
