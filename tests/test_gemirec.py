"""GemiRec wired as a RecBole model: scoring, the interest cache and the ablation switches (docs/design.md §2)."""

import logging

import pytest
import torch

from conftest import TINY_YAML, tiny_config


def build(tmp_path, **overrides):
    from recbole_gemirec.config import Config
    from recbole_gemirec.quick_start import build_run

    settings = {"interest_category_field": "category", "recipe": "paper", "stage_epochs": {"retrieval": 1, "dictionary": 1, "joint": 1},
                "checkpoint_dir": str(tmp_path / "saved")}
    settings.update(overrides)
    config = Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML], config_dict=tiny_config(**settings))
    return config, build_run(config)


def batch_of(parts):
    return next(iter(parts["train_data"]))


def into_joint_stage(model):
    model.set_stage("dictionary")
    model.start_dictionary_stage()
    model.set_stage("joint")


def test_full_sort_predict_is_the_max_over_interest_scores(in_tmp):
    _, parts = build(in_tmp)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = next(iter(parts["test_data"]))[0]
    with torch.no_grad():
        interests = model.interest_vectors(interaction)
        scores = model.full_sort_predict(interaction)
        items = model.item_embeddings()
        per_interest = torch.stack([interests[:, k] @ items.t() for k in range(interests.shape[1])])
    assert interests.shape == (len(interaction), 6, 65)  # u and K = 5 interests; 64 + the bias column
    assert torch.allclose(scores, per_interest.max(dim=0).values, atol=1e-5)


def test_interest_cache_is_read_not_recomputed(in_tmp):
    _, parts = build(in_tmp)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = next(iter(parts["test_data"]))[0]
    model.refresh_interest_cache(interaction)
    users = interaction[model.USER_ID]
    cached = model.interest_cache[users].clone()
    assert (cached >= 0).all() and cached.shape[1] == 5
    calls = []
    model.generator.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        model.full_sort_predict(interaction)
    assert calls == []  # serving reads the cache and never runs the GPT
    for row in cached:
        codes = model.interest_codes(torch.unique(row))
        for level in range(codes.shape[-1]):
            assert torch.unique(codes[:, level], return_counts=True)[1].max().item() <= 3  # epsilon


def test_before_the_joint_stage_the_model_scores_with_the_user_vector(in_tmp):
    _, parts = build(in_tmp)
    model = parts["model"].eval()
    interaction = next(iter(parts["test_data"]))[0]
    with torch.no_grad():
        assert model.interest_vectors(interaction).shape == (len(interaction), 1, 65)  # bias column (zero here)
        expected = model.user_vector(interaction) @ model.item_embedding.weight.t()
        assert torch.allclose(model.full_sort_predict(interaction), expected, atol=1e-5)


def test_joint_losses_are_three_finite_terms(in_tmp):
    _, parts = build(in_tmp)
    model = parts["model"]
    into_joint_stage(model)
    losses = model.calculate_loss(batch_of(parts))
    assert len(losses) == 3 and all(torch.isfinite(term) for term in losses)
    assert all(term.item() > 0 for term in losses)


def parameter_shapes(module):
    return {name: tuple(p.shape) for name, p in module.named_parameters()}


def test_ablation_interest_source_category_replaces_only_the_dictionary(in_tmp):
    _, full = build(in_tmp)
    _, ablated = build(in_tmp, interest_source="category")
    from recbole_gemirec.model.interest_dictionary import CategoryInterests

    assert isinstance(ablated["model"].dictionary, CategoryInterests)
    assert ablated["model"].dictionary.n_interests == 9  # 8 categories + "none"
    for part in ("tower", "fusion"):
        assert parameter_shapes(getattr(ablated["model"], part)) == parameter_shapes(getattr(full["model"], part))


def test_ablation_no_joint_training_freezes_the_dictionary(in_tmp):
    _, parts = build(in_tmp, joint_training=False)
    model = parts["model"]
    into_joint_stage(model)
    before = {n: p.detach().clone() for n, p in model.dictionary.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = model.calculate_loss(batch_of(parts))
    assert losses[0].item() == 0.0
    sum(losses).backward()
    optimizer.step()
    for name, param in model.dictionary.named_parameters():
        assert torch.equal(param, before[name]), name
    assert model.fusion.mlp[0].weight.grad is not None  # retrieval still trains


def test_ablation_no_user_features_removes_the_feature_token_only(in_tmp):
    _, full = build(in_tmp)
    _, ablated = build(in_tmp, use_user_features=False)
    assert full["model"].feature_fields == ["age", "gender", "occupation"]
    assert ablated["model"].feature_fields == [] and not ablated["model"].generator.use_features
    shapes_full = {k: v for k, v in parameter_shapes(full["model"]).items() if "feature_embeddings" not in k}
    assert shapes_full == parameter_shapes(ablated["model"])


def test_ablation_frequency_predictor_ranks_by_history_and_leaves_the_gpt_out(in_tmp):
    _, parts = build(in_tmp, interest_predictor="frequency")
    model = parts["model"]
    into_joint_stage(model)
    interaction = batch_of(parts)
    scores = model.interest_scores(interaction)
    seq = interaction[model.ITEM_SEQ]
    ids = model.item_interest_ids(seq)
    row = 0
    history = ids[row][seq[row] > 0]
    top = scores[row].argmax().item()
    assert top in history.tolist()
    assert (history == top).sum() == torch.bincount(history).max()
    losses = model.calculate_loss(interaction)
    assert losses[1].item() == 0.0
    sum(losses).backward()
    assert all(p.grad is None for p in model.generator.parameters())


def test_ablation_no_kmeans_starts_from_random_codewords(in_tmp):
    _, kmeans = build(in_tmp)
    _, random = build(in_tmp, kmeans_init=False)
    random["model"].load_state_dict(kmeans["model"].state_dict())
    for parts in (kmeans, random):
        parts["model"].set_stage("dictionary")
        parts["model"].start_dictionary_stage()
    assert not torch.allclose(kmeans["model"].dictionary.quantizer[1].weight, random["model"].dictionary.quantizer[1].weight)
    assert torch.equal(kmeans["model"].item_embedding.weight, random["model"].item_embedding.weight)
    used = lambda parts: sum(parts["model"].dictionary_utilisation()["per_level"])
    assert used(kmeans) > used(random)


def test_dataset_without_user_features_or_categories_trains_with_one_warning_each(in_tmp, caplog):
    load_col = {"inter": ["user_id", "item_id", "timestamp"]}
    with caplog.at_level(logging.WARNING):
        _, parts = build(in_tmp, load_col=load_col)
    messages = [r.getMessage() for r in caplog.records if "GemiRec:" in r.getMessage()]
    assert sum("user features" in m for m in messages) == 1
    assert sum("interest_category_field" in m for m in messages) == 1
    model = parts["model"]
    assert model.user_feature_table is None and model.item_category is None
    into_joint_stage(model)
    assert all(torch.isfinite(term) for term in model.calculate_loss(batch_of(parts)))


def test_predicted_retrieval_interests_train_on_the_cached_selection(in_tmp):
    import torch.nn.functional as F

    _, parts = build(in_tmp, retrieval_interests="predicted", interest_weighting="none", user_query=False)
    model = parts["model"].eval()  # no dropout, so the loss can be recomputed by hand
    into_joint_stage(model)
    interaction = batch_of(parts)
    losses = model.calculate_loss(interaction)
    with torch.no_grad():
        chosen = model.select_user_interests(interaction)
        queries = model.fusion(model.dictionary.code_embedding(model.interest_codes(chosen)),
                               model.user_vector(interaction))
        items = interaction[model.POS_ITEM_ID]
        logits = torch.einsum("bkd,nd->bkn", queries, model.item_embedding.weight).max(dim=1).values  # full softmax
        logits[:, 0] = float("-inf")  # padding is no item
        expected = F.cross_entropy(logits, items)
    assert losses[2].item() == pytest.approx(expected.item(), rel=1e-5)
    losses[2].backward()  # the retrieval term alone
    assert all(p.grad is None for p in model.generator.parameters())  # the selection is not differentiated
    assert any(p.grad is not None for p in model.dictionary.quantizer.parameters())


def test_interest_levels_make_the_interest_a_code_prefix(in_tmp):
    _, parts = build(in_tmp, interest_dictionary_sizes=[4, 3, 2], interest_levels=1)
    model = parts["model"]
    into_joint_stage(model)
    assert model.n_interests == 4 and model.generator.head.out_features == 4
    items = torch.arange(1, model.n_items)
    assert torch.equal(model.item_interest_ids(items), model.item_codes(items)[:, 0])
    emb = model.dictionary.code_embedding(model.interest_codes(torch.tensor([2])))
    d = model.dictionary.interest_dim
    assert torch.equal(emb[0, :d], model.dictionary.quantizer[0].weight[2]) and bool((emb[0, d:] == 0).all())
    assert all(torch.isfinite(term) for term in model.calculate_loss(batch_of(parts)))


def test_default_interest_levels_keep_enough_items_per_interest():
    from recbole_gemirec.model.gemirec import default_interest_levels

    assert default_interest_levels([32, 16, 8, 4], 2000) == 1  # 32 interests of ~60 items; 512 would hold ~4
    assert default_interest_levels([8, 4, 4, 2], 1682) == 2
    assert default_interest_levels([32, 16, 8, 4], 10_000_000) == 4
    assert default_interest_levels([32, 16], 10) == 1  # never fewer than one level


def test_frozen_joint_codes_do_not_move_when_the_embeddings_do(in_tmp):
    _, parts = build(in_tmp, joint_codes="frozen", interest_levels=3)
    model = parts["model"]
    model.set_stage("dictionary")
    model.start_dictionary_stage()
    model.set_stage("joint")
    model.start_joint_stage()
    items = torch.arange(1, model.n_items)
    before = model.item_codes(items).clone()
    with torch.no_grad():
        model.item_embedding.weight.mul_(-3.0).add_(torch.randn_like(model.item_embedding.weight))
    assert torch.equal(model.item_codes(items), before)
    live = model.dictionary.codes_for(items, model.item_embedding.weight)
    assert not torch.equal(live, before)  # the live assignment did move
    model.set_stage("retrieval")
    assert not bool(model.codes_frozen)


@pytest.mark.parametrize("weighting", ["log_prob", "log_joint"])
def test_interest_weighting_adds_a_per_query_bias_to_every_score(in_tmp, weighting):
    _, parts = build(in_tmp, interest_weighting=weighting, user_query=False, interest_prior_weight=1.0)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = batch_of(parts)
    with torch.no_grad():
        vectors, items = model.interest_vectors(interaction), model.item_embeddings()
        ids, log_prob = model.cached_interests(interaction)
        queries = model.fusion(model.dictionary.code_embedding(model.interest_codes(ids)), model.user_vector(interaction))
        raw = torch.einsum("bkd,nd->bkn", queries, model.item_embedding.weight)
        bias = log_prob if weighting == "log_prob" else log_prob - torch.logsumexp(raw[:, :, 1:], dim=-1)
        expected = (raw + bias.unsqueeze(-1)).amax(dim=1)
        assert vectors.shape[-1] == items.shape[-1] == model.embedding_size + 1
        assert torch.allclose(model.full_sort_predict(interaction), expected, atol=1e-5)
        assert bool((log_prob <= 0).all())


def test_user_query_scores_with_u_next_to_the_interest_queries(in_tmp):
    _, parts = build(in_tmp, user_query=True, interest_weighting="log_prob", interest_prior_weight=2.0)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = next(iter(parts["test_data"]))[0]  # one row per user (the cache is per user)
    with torch.no_grad():
        vectors = model.interest_vectors(interaction)
        user = model.user_vector(interaction)
        _, log_prob = model.cached_interests(interaction)
    assert vectors.shape[1] == model.interest_num + 1
    assert torch.allclose(vectors[:, 0, :-1], user) and bool((vectors[:, 0, -1] == 0).all())  # u, log-probability 0
    assert torch.allclose(vectors[:, 1:, -1], 2.0 * log_prob)  # tau * log p(m_k)


def test_interest_masking_lets_each_interest_query_score_only_its_own_items(in_tmp):
    from recbole_gemirec.model.gemirec_queries import MASK_PENALTY

    _, parts = build(in_tmp, interest_masking=True, interest_weighting="log_joint", user_query=True,
                     user_query_log_weight=-1.0, interest_prior_weight=1.0)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = next(iter(parts["test_data"]))[0]
    with torch.no_grad():
        vectors, items = model.interest_vectors(interaction), model.item_embeddings()
        ids, log_prob = model.cached_interests(interaction)
        scores = torch.einsum("bkd,nd->bkn", vectors, items)[:, :, 1:]  # without the padding item
        own = ids.unsqueeze(-1) == model.item_interest_ids(torch.arange(1, model.n_items)).view(1, 1, -1)
        merged = model.full_sort_predict(interaction)[:, 1:]
    interest_scores = scores[:, 1:]
    assert bool((interest_scores[~own] < -MASK_PENALTY / 2).all()) and bool((interest_scores[own] > -100).all())  # other interests' items: out
    # within its interest a query's scores are a log-softmax shifted by tau * log p(m_k); u's by its log weight
    in_interest = torch.logsumexp(interest_scores.masked_fill(~own, float("-inf")), dim=-1)
    assert torch.allclose(in_interest, log_prob, atol=1e-4)
    assert torch.allclose(torch.logsumexp(scores[:, 0], dim=-1), torch.full_like(in_interest[:, 0], -1.0), atol=1e-4)
    outside = ~own.any(dim=1)  # items of no cached interest are scored by u alone
    assert torch.allclose(merged[outside], scores[:, 0][outside], atol=1e-5)


def test_masking_item_columns_follow_the_frozen_codes(in_tmp):
    _, parts = build(in_tmp, interest_masking=True, interest_weighting="log_joint", interest_levels=1)
    model = parts["model"].eval()
    into_joint_stage(model)
    model.start_joint_stage()
    width = model.embedding_size + 1

    def expected():
        codes = model.frozen_codes[:, 0]
        return torch.nn.functional.one_hot(codes, int(model.dictionary.sizes[0])).float()

    assert torch.equal(model.item_embeddings()[:, width:], expected())
    with torch.no_grad():
        model.frozen_codes[:, 0] = (model.frozen_codes[:, 0] + 1) % int(model.dictionary.sizes[0])
    assert torch.equal(model.item_embeddings()[:, width:], expected())  # rebuilt, not the stale table
    model.load_state_dict(dict(model.state_dict(), frozen_codes=torch.zeros_like(model.frozen_codes)))
    assert bool((model.item_embeddings()[:, width] == 1).all())  # a loaded checkpoint's codes


def test_fusion_history_reads_the_mean_embedding_of_the_history_items_of_each_interest(in_tmp):
    _, parts = build(in_tmp, fusion_history=True)
    model = parts["model"].eval()
    into_joint_stage(model)
    seq = batch_of(parts)[model.ITEM_SEQ][:4]
    seq_ids = model.item_interest_ids(seq).masked_fill(seq == 0, -1)
    present, absent = int(seq_ids[0, 0]), int(seq_ids.max()) + 1  # an interest of user 0's history, and one of nobody's
    with torch.no_grad():
        summary = model.history_in_interests(torch.tensor([[present, absent]] * 4), seq)
    members = seq[0][seq_ids[0] == present]
    assert torch.allclose(summary[0, 0, :-1], model.item_embedding(members).mean(dim=0), atol=1e-6)
    assert torch.isclose(summary[0, 0, -1], torch.log1p(torch.tensor(float(len(members)))))
    assert bool((summary[:, 1] == 0).all())


def test_generator_history_prior_adds_log_counts_of_the_history_interests(in_tmp):
    _, parts = build(in_tmp, generator_history_prior=True)
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = batch_of(parts)
    with torch.no_grad():
        with_prior = model.interest_scores(interaction)
        model.generator.history_weight.fill_(0.0)
        without = model.interest_scores(interaction)
        seq = interaction[model.ITEM_SEQ]
        ids = model.item_interest_ids(seq).masked_fill(seq == 0, -1)
    counts = torch.zeros_like(without).scatter_add_(1, ids.clamp(min=0), (ids >= 0).float())
    assert torch.allclose(with_prior - without, torch.log1p(counts), atol=1e-5)  # weight starts at 1



def test_repeat_explore_scores_are_log_probabilities_with_the_gates_mass_outside_the_history(in_tmp):
    _, parts = build(in_tmp, interest_distribution="repeat_explore")
    model = parts["model"].eval()
    into_joint_stage(model)
    interaction = batch_of(parts)
    with torch.no_grad():
        log_p = model.interest_scores(interaction)
        seq = interaction[model.ITEM_SEQ]
        ids = model.item_interest_ids(seq).masked_fill(seq == 0, -1)
        state = model.generator.next_interest_state(seq, interaction[model.ITEM_SEQ_LEN],
                                                    model.dictionary.code_embedding(model.item_codes(seq)),
                                                    model.user_features_of(interaction))
        gate = torch.sigmoid(model.generator.explore_gate(state)).squeeze(1)
    seen = torch.zeros_like(log_p, dtype=torch.bool).scatter_(1, ids.clamp(min=0), ids >= 0)
    assert torch.allclose(log_p.exp().sum(dim=1), torch.ones(len(log_p)), atol=1e-5)
    outside = ~seen.all(dim=1)
    assert torch.allclose(log_p.exp().masked_fill(seen, 0).sum(dim=1)[outside], gate[outside], atol=1e-5)
    _, generator_loss, _ = model.calculate_loss(interaction)
    assert torch.isfinite(generator_loss) and generator_loss > 0

@pytest.mark.slow
def test_joint_generator_and_retrieval_terms_fall_on_a_fixed_batch(in_tmp):
    _, parts = build(in_tmp)
    model = parts["model"]
    into_joint_stage(model)
    model.start_joint_stage()
    optimiser = torch.optim.Adam([{"params": g["params"]} for g in model.optimiser_groups(0.01)], lr=0.01)
    interaction = batch_of(parts)
    first = None
    for _ in range(30):
        _, generator, retrieval = model.calculate_loss(interaction)
        first = first or (generator.item(), retrieval.item())
        optimiser.zero_grad()
        (generator + retrieval).backward()
        optimiser.step()
    assert generator.item() < first[0] and retrieval.item() < first[1]
    assert all(p.grad is None for p in model.item_embedding.parameters())  # joint_backbone_lr_scale 0: frozen


def test_unset_item_negatives_is_the_full_softmax_while_its_logits_fit_and_sampled_beyond(in_tmp, caplog):
    from recbole_gemirec.model.layers.losses import FULL_SOFTMAX_MAX_LOGITS, default_negatives

    config, parts = build(in_tmp)  # the YAML's item_negatives: ~ on the tiny catalogue
    assert parts["model"].loss_fct.mode == "full"
    assert parts["model"]._queries_per_example() == config["interest_num"] + 2  # K, u and the target's interest
    assert default_negatives("full", FULL_SOFTMAX_MAX_LOGITS // 512, 512) == "full"
    with caplog.at_level(logging.WARNING):
        assert default_negatives("full", FULL_SOFTMAX_MAX_LOGITS // 512 + 1, 512) == "sampled"
    assert "sampled softmax instead of the full one" in caplog.text
    assert default_negatives("in_batch", 10 ** 9, 512) == "in_batch"
    _, parts = build(in_tmp, train_batch_size=FULL_SOFTMAX_MAX_LOGITS, neg_sample_num=8)  # its logits would not fit
    assert parts["model"].loss_fct.mode == "sampled"


@pytest.mark.parametrize("mode", ["full", "sampled", "in_batch"])
def test_every_item_softmax_trains_all_three_joint_terms(in_tmp, mode):
    _, parts = build(in_tmp, item_negatives=mode, neg_sample_num=8)
    model = parts["model"]
    assert model.loss_fct.mode == mode and (model.loss_fct.log_q is not None) == (mode == "in_batch")
    into_joint_stage(model)
    model.start_joint_stage()
    terms = model.calculate_loss(batch_of(parts))
    assert len(terms) == 3 and all(torch.isfinite(t) and t.item() > 0 for t in terms)
    sum(terms).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.fusion.parameters())


def test_within_interest_target_softmax_ranks_the_target_among_its_interests_items_only(in_tmp):
    _, parts = build(in_tmp, target_softmax="interest", retrieval_interests="target", interest_levels=1)
    model = parts["model"].eval()
    into_joint_stage(model)
    model.start_joint_stage()
    interaction = batch_of(parts)[torch.arange(2)]  # two rows: some items are in neither's interest nor history
    pos = interaction[model.POS_ITEM_ID]
    with torch.no_grad():
        _, _, retrieval = model.calculate_loss(interaction)
        target_ids = model.item_interest_ids(pos)
        query = model.fused_queries(target_ids.unsqueeze(1), model.user_vector(interaction), interaction[model.ITEM_SEQ])[:, 0]
        logits = query @ model.item_embedding.weight.t()
        same = model.item_interest_ids(torch.arange(model.n_items)).unsqueeze(0) == target_ids.unsqueeze(1)
        same[:, 0] = False
        expected = (torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1) - logits.gather(1, pos[:, None])[:, 0]).mean()
        assert torch.isclose(retrieval, expected, atol=1e-5)
        assert bool((same.sum(dim=1) < model.n_items - 1).any())  # some interest is a strict part of the catalogue
        # the items of other interests (and not in a history, which u reads) do not enter the loss
        others = ~same.any(dim=0)
        others[interaction[model.ITEM_SEQ].unique()] = False
        assert bool(others[1:].any())
        model.item_embedding.weight[others] *= 5.0
        assert torch.isclose(model.calculate_loss(interaction)[2], retrieval, atol=1e-5)


@pytest.mark.parametrize("settings", [{}, {"fusion_interest_embedding": True, "fusion_history": True,
                                           "interest_masking": True}])
def test_a_serving_instance_keeps_the_fusions_interest_part_and_computes_the_same_queries(in_tmp, settings):
    _, parts = build(in_tmp, **settings)
    model = parts["model"].eval()
    into_joint_stage(model)
    with torch.no_grad():
        model.item_embedding.weight.normal_()  # a model whose item codes differ from item to item
        model.fusion.mlp[0].bias.normal_()
    from recbole_gemirec.serving.live import query_side

    spec, weights = query_side(model)  # what an export writes
    served = type(model).for_serving(spec["architecture"])
    served.load_state_dict({key: torch.from_numpy(value) for key, value in weights.items()})
    batch = batch_of(parts)
    seq, lengths = batch[model.ITEM_SEQ][:6], batch[model.ITEM_SEQ_LEN][:6]
    features = model.user_features_of(batch[:6]) if hasattr(model, "user_features_of") else None
    with torch.no_grad():
        interests = served.select_interests(served.interest_scores_of(seq, lengths, features))
        before, slots = served.queries_from_history(seq, lengths, features, interests)
        served.freeze_for_serving()
        table = served.serving_interest_hidden
        after, slots_after = served.queries_from_history(seq, lengths, features, interests)
    assert table.shape == (served.n_interests, served.embedding_size)
    assert torch.allclose(after, before, atol=1e-5) and torch.equal(slots_after, slots)
    assert not torch.allclose(before[:, 1], before[:, 2], atol=1e-4)  # distinct interests, distinct queries


def test_another_interest_source_is_rebuilt_on_the_same_backbone_with_fresh_parts_and_the_configured_scoring(in_tmp):
    from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary

    _, parts = build(in_tmp, interest_source="auto", gpt_layers=1)
    model = parts["model"]
    assert model.interest_source == "learned" and isinstance(model.dictionary, InterestDictionary)
    into_joint_stage(model)
    backbone = model.backbone_state()
    assert backbone and all(name.split(".")[0] in ("item_embedding", "tower") for name in backbone)
    model.prior_weight.fill_(4.0)  # as if the learned candidate's scoring choice had picked tau 4

    model.use_interest_source("category", backbone, seed=11)
    assert model.interest_source == "category" and isinstance(model.dictionary, CategoryInterests)
    assert model.stage == "joint" and float(model.prior_weight) == 1.0
    state = model.state_dict()
    for name, value in backbone.items():
        assert torch.equal(state[name], value), name
    generator = {k: v.clone() for k, v in state.items() if k.startswith("generator.")}
    model.use_interest_source("category", backbone, seed=11)  # the same seed builds the same parts
    for name, value in generator.items():
        assert torch.equal(model.state_dict()[name], value), name
    with pytest.raises(ValueError, match="candidates"):
        build(in_tmp, interest_source="learned", gpt_layers=1)[1]["model"].use_interest_source("category", backbone, 1)


def test_within_interest_ranking_by_popularity_scores_the_interests_items_by_their_counted_share(in_tmp):
    """within_interest_ranking: popularity: an interest's items score tau log p(interest) + log of their share of
    the interest's training interactions (counted at the joint stage's start), u keeps its log-softmax, and
    full_sort_predict, RecBole's loader and the item table agree; query and popularity differ."""
    from conftest import train_preset
    from recbole_gemirec.quick_start import load_data_and_model

    result = train_preset(in_tmp, within_interest_ranking="popularity")
    config, model, dataset, train_data, _, test_data = load_data_and_model(str(in_tmp / result["checkpoint"]))
    assert bool(model.popularity_ranking)
    interest_of = model.all_item_interest_ids()
    counts = torch.bincount(train_data.dataset.inter_feat[dataset.iid_field], minlength=model.n_items).double() + 0.5
    counts[0] = 0.0
    for m in interest_of[1:].unique().tolist():
        own = interest_of == m
        own[0] = False
        expected = (counts[own] / counts[own].sum()).log().float()
        assert torch.allclose(model.item_interest_log_share[own], expected, atol=1e-5)
    batch = next(iter(test_data))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(batch).view(len(batch), -1)
        ids, log_prob = model.cached_interests(batch)
        user = model.user_vector(batch)
        table = model.item_embedding.weight
        tau = float(model.prior_weight)
        expected = torch.log_softmax(user @ table[1:].T, dim=-1)
        expected = torch.cat([expected.new_full((len(batch), 1), float("-inf")), expected], dim=1)
        for k in range(ids.shape[1]):
            own = interest_of.unsqueeze(0) == ids[:, k:k + 1]
            own[:, 0] = False
            within = model.item_interest_log_share.unsqueeze(0).masked_fill(~own, float("-inf"))
            expected = torch.maximum(expected, within + tau * log_prob[:, k:k + 1])
        assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-3)
        model.set_scoring(True, tau, popularity=False)  # the queries' own ranking: other scores
        assert not torch.allclose(model.full_sort_predict(batch).view(len(batch), -1)[:, 1:], scores[:, 1:], atol=1e-3)


def test_within_interest_ranking_other_than_query_needs_masking():
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.model.gemirec_config import check_relations

    class Config(dict):
        def __getitem__(self, key):
            return self.get(key)

    base = dict(gpt_hidden=16, gpt_heads=4, embedding_size=64, tower_heads=2, interest_dictionary_sizes=[4, 4],
                interest_source="learned", interest_num=2, interest_levels=None, loss_weights=[1, 1, 1],
                stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1}, interest_category_field=None,
                interest_weighting="log_joint")
    for masking in (False, "auto"):
        with pytest.raises(ConfigError, match="within_interest_ranking"):
            check_relations(Config(base, interest_masking=masking, within_interest_ranking="auto"))


def test_the_factorised_categories_preset_trains_and_scores_as_it_says(in_tmp):
    """properties/presets/GemiRec-factorised-categories.yaml, given after the dataset's file: the category
    interests with the transition predictor's probabilities, each interest query scoring only its interest's
    items, as a log-softmax over them or by their counted share (as chosen on valid); an item's score is then
    tau log p(interest) + log p(item | interest) or u's."""
    from conftest import train_preset
    from recbole_gemirec.quick_start import load_data_and_model
    from recbole_gemirec.model.interest_dictionary import CategoryInterests

    result = train_preset(in_tmp)
    config, model, _, _, _, test_data = load_data_and_model(str(in_tmp / result["checkpoint"]))
    assert isinstance(model.dictionary, CategoryInterests) and model.interest_masking
    assert model.interest_predictor == "transition" and model.target_softmax == "interest"
    batch = next(iter(test_data))[0]
    with torch.no_grad():
        scores = model.full_sort_predict(batch).view(len(batch), -1)
        ids, log_prob = model.cached_interests(batch)
        user = model.user_vector(batch)
        queries = model.fused_queries(ids, user, batch[model.ITEM_SEQ])
        table = model.item_embedding.weight
        interest_of = model.all_item_interest_ids()
        tau = float(model.prior_weight)
        expected = torch.log_softmax(user @ table[1:].T, dim=-1)  # u over the catalogue, log weight 0
        expected = torch.cat([expected.new_full((len(batch), 1), float("-inf")), expected], dim=1)
        for k in range(ids.shape[1]):
            own = interest_of.unsqueeze(0) == ids[:, k:k + 1]  # [B, n_items]
            own[:, 0] = False
            logits = (queries[:, k] @ table.T).masked_fill(~own, float("-inf"))
            ranked = torch.log_softmax(logits, dim=-1)  # the query's own ranking, or the counted one if chosen
            if bool(model.popularity_ranking):
                ranked = model.item_interest_log_share.unsqueeze(0).masked_fill(~own, float("-inf"))
            within = ranked + tau * log_prob[:, k:k + 1]
            expected = torch.maximum(expected, within)
    # the history's interests carry 1 - beta of their share of the history (the transition predictor), alpha of
    # which goes to the interest of the history's last item
    history = model.history_interest_ids(batch[model.ITEM_SEQ])
    share = (history == ids[:, :1]).sum(dim=1) / (history >= 0).sum(dim=1)
    held = share > 0
    last = history.gather(1, (batch[model.ITEM_SEQ_LEN] - 1).unsqueeze(1)).squeeze(1)
    alpha = float(model.current_share)
    share = (1 - alpha) * share + alpha * (last == ids[:, 0]).float()
    beta = float(model.novel_share)
    assert held.any() and torch.allclose(log_prob[held, 0].exp(), (1 - beta) * share[held].float(), atol=1e-3)
    assert torch.allclose(scores[:, 1:], expected[:, 1:], atol=1e-3)


def test_the_default_recipe_is_factorised_where_a_category_field_is_named_and_the_papers_elsewhere(in_tmp, caplog):
    """recipe: auto (the default): with interest_category_field the factorised recipe's values (the preset file's)
    replace the YAML defaults the user left alone, K lowered to the interests the field gives (tiny: 8 categories
    and 'unknown'), and the checkpoint reloads as that model; without a category field it is the paper's GemiRec;
    a key the user sets wins over the recipe."""
    from conftest import train_tiny
    from recbole_gemirec.config import read_config_files
    from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary
    from recbole_gemirec.quick_start import load_data_and_model
    from conftest import PRESET_YAML

    stages = {"retrieval": 1, "dictionary": 0, "joint": 1}
    with caplog.at_level(logging.WARNING):
        result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", stage_epochs=stages)
    assert any("interest_num lowered from 10 to 9" in r.getMessage() for r in caplog.records)
    config, model, *_ = load_data_and_model(str(in_tmp / result["checkpoint"]))
    preset = read_config_files([PRESET_YAML])
    assert config["recipe"] == "factorised" and result["config"]["recipe"] == "factorised"  # the result file says so
    for key, value in preset.items():
        if key != "interest_num":
            assert config[key] == value, key
    assert isinstance(model.dictionary, CategoryInterests) and model.interest_masking
    assert model.interest_predictor == "transition" and model.interest_num == 9

    mine = train_tiny(in_tmp, "GemiRec", interest_category_field="category", stage_epochs=stages,
                      interest_num=3, interest_masking=False, within_interest_ranking="query")
    config, model, *_ = load_data_and_model(str(in_tmp / mine["checkpoint"]))
    assert config["recipe"] == "factorised" and model.interest_num == 3 and not model.interest_masking
    assert model.interest_predictor == "transition"

    paper = train_tiny(in_tmp, "GemiRec", gpt_layers=1, stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
    config, model, *_ = load_data_and_model(str(in_tmp / paper["checkpoint"]))
    assert config["recipe"] == "paper" and isinstance(model.dictionary, InterestDictionary)
    assert model.interest_predictor == "gpt" and not model.interest_masking and model.interest_num == 5


def test_a_checkpoint_from_before_the_recipe_key_reloads_as_the_papers_model(in_tmp):
    """A checkpoint written before ``recipe`` existed has no such key; its configuration is rebuilt with the
    paper's recipe (what it trained with), not with today's auto, even where it names a category field."""
    from conftest import train_tiny
    from recbole_gemirec.quick_start import config_from_checkpoint

    result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", recipe="paper", gpt_layers=1,
                        stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
    state = torch.load(in_tmp / result["checkpoint"], weights_only=True)
    for part in ("final", "external"):
        state["config"][part].pop("recipe", None)
        state["config"][part].pop("within_interest_ranking", None)  # a key newer than such a checkpoint
    config = config_from_checkpoint(state)
    assert config["recipe"] == "paper" and config["interest_source"] == "learned"
    assert config["within_interest_ranking"] == "query" and config.recipe_keys == ()


def test_the_factorised_recipe_steps_back_to_the_papers_where_the_field_is_too_large_for_it(in_tmp, caplog, monkeypatch):
    """A category field with more interests than the transition table allows: under the recipe (not the user's own
    interest_predictor) the run goes on with the paper's recipe and the log says why; the user's own choice of the
    transition predictor is refused with one line instead."""
    from conftest import train_tiny
    from recbole_gemirec.errors import ConfigError
    from recbole_gemirec.model import interest_transitions
    from recbole_gemirec.quick_start import load_data_and_model

    monkeypatch.setattr(interest_transitions, "MAX_TRANSITION_INTERESTS", 4)  # tiny's field gives 9
    stages = {"retrieval": 1, "dictionary": 1, "joint": 1}
    with caplog.at_level(logging.WARNING):
        result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", gpt_layers=1, stage_epochs=stages)
    assert any("the paper's recipe is used" in r.getMessage() for r in caplog.records)
    config, model, *_ = load_data_and_model(str(in_tmp / result["checkpoint"]))
    assert config["recipe"] == "paper" and model.interest_predictor == "gpt" and not model.interest_masking
    with pytest.raises(ConfigError, match="interest_predictor='transition' is not allowed"):
        train_tiny(in_tmp, "GemiRec", interest_category_field="category", interest_predictor="transition",
                   stage_epochs=stages)


def test_the_scoring_choice_reuses_each_querys_normaliser_across_tau_and_the_ranking(in_tmp, monkeypatch):
    """Within reusing_normalisers (the scoring choice) candidates that differ only in tau or the within-interest
    ranking compute each query's catalogue normaliser once, and score exactly as without it; the memo ends with
    the block."""
    from conftest import train_preset
    from recbole_gemirec.model import gemirec_queries
    from recbole_gemirec.quick_start import load_data_and_model

    result = train_preset(in_tmp)
    _, model, _, _, _, test_data = load_data_and_model(str(in_tmp / result["checkpoint"]))
    batch = next(iter(test_data))[0]
    beta, alpha = float(model.novel_share), float(model.current_share)
    candidates = [(True, tau, beta, alpha, popularity) for tau in (0.5, 2.0) for popularity in (False, True)]
    with torch.no_grad():
        plain = []
        for candidate in candidates:
            model.set_scoring(*candidate)
            plain.append(model.full_sort_predict(batch))
        calls = []
        original = gemirec_queries.catalogue_logsumexp
        monkeypatch.setattr(gemirec_queries, "catalogue_logsumexp", lambda *a: calls.append(1) or original(*a))
        with model.reusing_normalisers():
            for candidate, expected in zip(candidates, plain):
                model.set_scoring(*candidate)
                assert torch.equal(model.full_sort_predict(batch), expected)
        assert len(calls) == 1
        model.set_scoring(*candidates[0])
        model.full_sort_predict(batch)
        assert len(calls) == 2  # outside the block nothing is kept


def test_the_factorised_recipe_lowers_k_for_interest_source_auto_too_so_the_categories_are_tried(in_tmp):
    """interest_source: auto under the factorised recipe: the recipe's K (10) is lowered to the 9 interests tiny's
    field gives, so the categories stay a candidate beside the learned dictionary and valid chooses between them."""
    from conftest import train_tiny

    result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", interest_source="auto",
                        stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
    assert set(result["interest_source_valid"]) == {"learned", "category"}
    assert result["model"] == "GemiRec" and result["config"]["recipe"] == "factorised"


def test_a_recipe_value_that_the_users_own_setting_rules_out_gives_way():
    """The factorised recipe's within-interest ranking needs masking, and its masking a bias column: a user who
    turns masking off (or the bias column) gets the values that go with that, not a refusal of keys never set;
    a value the user set that the recipe cannot follow is refused, naming what the recipe set."""
    from recbole_gemirec.config import Config
    from recbole_gemirec.errors import ConfigError

    def config(**settings):
        return Config(model="GemiRec", dataset="tiny", config_file_list=[TINY_YAML],
                      config_dict=tiny_config(interest_category_field="category", **settings))

    unmasked = config(interest_masking=False)
    assert unmasked["within_interest_ranking"] == "query" and unmasked["interest_weighting"] == "log_joint"
    unweighted = config(interest_weighting="none")
    assert unweighted["interest_masking"] is False and unweighted["within_interest_ranking"] == "query"
    assert config()["within_interest_ranking"] == "auto" and config()["interest_masking"] is True
    with pytest.raises(ConfigError, match="within_interest_ranking='popularity' is not allowed") as refused:
        config(interest_masking=False, within_interest_ranking="popularity")
    assert "set by recipe" not in str(refused.value)  # both keys are the user's own


def test_the_factorised_recipe_steps_back_where_its_masking_columns_would_be_too_large(in_tmp, caplog, monkeypatch):
    """The recipe's masking adds one item-table (and index) column per interest: items x interests past
    MASKING_TABLE_CELLS (here lowered below tiny's) sends the run back to the paper's recipe, with the reason."""
    from conftest import train_tiny
    from recbole_gemirec.model import gemirec_config
    from recbole_gemirec.quick_start import load_data_and_model

    monkeypatch.setattr(gemirec_config, "MASKING_TABLE_CELLS", 10)
    with caplog.at_level(logging.WARNING):
        result = train_tiny(in_tmp, "GemiRec", interest_category_field="category", gpt_layers=1,
                            stage_epochs={"retrieval": 1, "dictionary": 1, "joint": 1})
    assert any("one-hot item columns would hold" in r.getMessage() and "the paper's recipe is used" in r.getMessage()
               for r in caplog.records)
    config, model, *_ = load_data_and_model(str(in_tmp / result["checkpoint"]))
    assert config["recipe"] == "paper" and not model.interest_masking and model.interest_predictor == "gpt"
