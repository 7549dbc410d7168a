"""Interest generator (MIPDM, docs/design.md §2.2)."""

import pytest
import torch

from recbole_gemirec.model.interest_generator import InterestGenerator


def make(features=(3, 2)):
    torch.manual_seed(0)
    gen = InterestGenerator(n_items=30, n_interests=50, code_size=8, hidden=16, layers=2, heads=4,
                            max_length=6, feature_cardinalities=features, dropout=0.0)
    return gen.eval()


def inputs(batch=3, length=6):
    g = torch.Generator().manual_seed(1)
    seq = torch.randint(1, 30, (batch, length), generator=g)
    codes = torch.randn(batch, length, 8, generator=g)
    feats = torch.stack([torch.randint(0, 3, (batch,), generator=g), torch.randint(0, 2, (batch,), generator=g)], 1)
    return seq, codes, feats


def test_gpt_is_causal():
    gen = make()
    seq, codes, feats = inputs()
    before = gen.head(gen.hidden_states(seq, codes, feats))
    changed, changed_codes = seq.clone(), codes.clone()
    changed[:, 3] = (seq[:, 3] % 29) + 1
    changed_codes[:, 3] += 1.0
    after = gen.head(gen.hidden_states(changed, changed_codes, feats))
    # token t+1 holds item t (the feature token is first): items 0..2 are tokens 1..3
    assert torch.allclose(before[:, :4], after[:, :4], atol=1e-6)
    assert not torch.allclose(before[:, 4:], after[:, 4:])


def test_next_interest_reads_the_last_real_item_and_ignores_padding():
    gen = make()
    seq, codes, feats = inputs()
    lengths = torch.tensor([4, 2, 6])
    padded = seq.clone()
    for row, n in enumerate(lengths.tolist()):
        padded[row, n:] = 0
    logits = gen.next_interest_logits(padded, lengths, codes, feats)
    assert logits.shape == (3, 50)
    other_padding = padded.clone()
    other_codes = codes.clone()
    other_codes[0, 4:] = 5.0  # whatever sits after the end must not matter
    assert torch.allclose(gen.next_interest_logits(other_padding, lengths, other_codes, feats), logits, atol=1e-6)
    shorter = gen.next_interest_logits(padded, lengths - 1, codes, feats)
    assert not torch.allclose(shorter, logits)


def test_user_feature_token_changes_the_prediction_and_can_be_off():
    gen = make()
    seq, codes, feats = inputs()
    lengths = torch.full((3,), 6)
    base = gen.next_interest_logits(seq, lengths, codes, feats)
    flipped = feats.clone()
    flipped[:, 1] = 1 - flipped[:, 1]
    assert not torch.allclose(gen.next_interest_logits(seq, lengths, codes, flipped), base)
    plain = make(features=())
    assert plain.hidden_states(seq, codes).shape == (3, 6, 16)
    assert gen.hidden_states(seq, codes, feats).shape == (3, 7, 16)


def test_loss_is_cross_entropy_on_the_next_interest():
    gen = make()
    seq, codes, feats = inputs()
    logits = gen.next_interest_logits(seq, torch.full((3,), 6), codes, feats)
    target = torch.tensor([1, 7, 49])
    expected = -torch.log_softmax(logits, dim=1)[torch.arange(3), target].mean()
    assert gen.loss(logits, target).item() == pytest.approx(expected.item(), rel=1e-6)


def test_code_embeddings_get_no_gradient_from_the_generator():
    gen = make()
    seq, codes, feats = inputs()
    codes.requires_grad_(True)
    gen.next_interest_logits(seq, torch.full((3,), 6), codes, feats).sum().backward()
    assert codes.grad is None


def test_heads_must_divide_hidden():
    with pytest.raises(ValueError, match="gpt_hidden=16 must be divisible by gpt_heads=3"):
        InterestGenerator(10, 10, 4, hidden=16, layers=1, heads=3, max_length=4)


def test_next_interest_logits_read_the_last_real_item_of_the_full_stack():
    gen = make()
    seq, codes, feats = inputs()
    lengths = torch.tensor([6, 2, 4])
    states = gen.hidden_states(seq, codes, feats)
    expected = gen.head(states[torch.arange(3), gen.last_index(lengths)])
    torch.testing.assert_close(gen.next_interest_logits(seq, lengths, codes, feats), expected, rtol=1e-5, atol=1e-5)


def _mixture(in_history, gate_bias=0.0, logits=None):
    torch.manual_seed(0)
    gen = InterestGenerator(n_items=30, n_interests=50, code_size=8, hidden=16, layers=2, heads=4,
                            max_length=6, dropout=0.0, repeat_explore=True)
    with torch.no_grad():
        gen.explore_gate.weight.zero_()
        gen.explore_gate.bias.fill_(gate_bias)
    logits = torch.randn(in_history.shape, generator=torch.Generator().manual_seed(2)) if logits is None else logits
    state = torch.randn(in_history.shape[0], 16)
    return gen, logits, gen.repeat_explore_log_probs(logits, state, in_history)


def test_repeat_explore_mixture_is_a_distribution_with_the_gates_mass_outside_the_history():
    in_history = torch.zeros(4, 50, dtype=torch.bool)
    in_history[0, :3] = True
    in_history[1, 10:30] = True
    in_history[3, :] = True  # nothing outside the history: all mass on the repeat side
    _, logits, log_p = _mixture(in_history, gate_bias=1.0)  # row 2: empty history, all mass outside
    log_p = log_p.detach()
    p = log_p.exp()
    assert torch.isfinite(log_p).all()
    assert torch.allclose(p.sum(dim=1), torch.ones(4), atol=1e-5)
    g = torch.sigmoid(torch.tensor(1.0))
    assert float(p[0, 3:].sum()) == pytest.approx(float(g), abs=1e-5)
    assert float(p[1, 10:30].sum()) == pytest.approx(float(1 - g), abs=1e-5)
    # within each side the order is the logits' order
    outside = ~in_history[0]
    assert torch.equal(log_p[0, outside].argsort(), logits[0, outside].argsort())


def test_repeat_explore_unseen_ranking_learns_only_from_next_interests_new_to_the_history():
    in_history = torch.zeros(1, 50, dtype=torch.bool)
    in_history[0, :3] = True
    logits = torch.randn(1, 50, requires_grad=True)
    gen, _, log_p = _mixture(in_history, logits=logits)
    InterestGenerator.loss(gen, log_p, torch.tensor([1])).backward()  # a repeat: target in the history
    assert logits.grad[0, 3:].abs().max() < 1e-7  # no gradient to the ranking of the unseen interests
    assert logits.grad[0, :3].abs().max() > 0


def test_the_plain_generator_has_no_gate_so_its_checkpoints_keep_their_keys():
    assert not any("explore_gate" in key for key in make().state_dict())
