"""Interest dictionary (IDMM, docs/design.md §2.1)."""

import itertools

import pytest
import torch

from recbole_gemirec.model.interest_dictionary import CategoryInterests, InterestDictionary, mixed_radix_weights

SIZES = [8, 4, 3, 2]


def clustered(n=600, dim=32, clusters=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(clusters, dim, generator=g)
    labels = torch.randint(0, clusters, (n,), generator=g)
    return centres[labels] + 0.1 * torch.randn(n, dim, generator=g), labels


def make(dim=32, sizes=SIZES, d=6, beta=0.25, seed=0):
    torch.manual_seed(seed)
    return InterestDictionary(dim, sizes, d, beta)


def test_codes_are_in_range_and_ids_round_trip():
    items, _ = clustered()
    dictionary = make()
    dictionary.kmeans_init(items, seed=1)
    codes = dictionary.encode(items)
    assert codes.shape == (len(items), len(SIZES))
    for level, size in enumerate(SIZES):
        assert int(codes[:, level].min()) >= 0 and int(codes[:, level].max()) < size
    all_codes = torch.tensor(list(itertools.product(*[range(s) for s in SIZES])))
    ids = dictionary.interest_ids(all_codes)
    assert sorted(ids.tolist()) == list(range(dictionary.n_interests))
    assert torch.equal(dictionary.codes_of(ids), all_codes)
    assert mixed_radix_weights([32, 16, 8, 4]) == [512, 32, 4, 1]


def test_residual_norm_shrinks_level_by_level():
    items, _ = clustered()
    dictionary = make()
    dictionary.kmeans_init(items, seed=1)
    with torch.no_grad():
        _, residuals, chosen = dictionary.quantize(items)
    norms = [r.norm(dim=1).mean().item() for r in residuals]
    norms.append((residuals[-1] - chosen[-1]).norm(dim=1).mean().item())
    assert all(a > b for a, b in zip(norms, norms[1:])), norms


def test_quantised_interest_is_the_concatenated_codewords():
    items, _ = clustered(n=50)
    dictionary = make()
    codes, _, chosen = dictionary.quantize(items)
    expected = torch.cat([dictionary.quantizer[c](codes[:, c]) for c in range(len(SIZES))], dim=1)
    assert torch.equal(dictionary.code_embedding(codes), expected)
    assert torch.equal(torch.cat(chosen, dim=1), expected)


def _grads(module, loss):
    module.zero_grad()
    loss.backward(retain_graph=True)
    touched = lambda params: any(p.grad is not None and p.grad.abs().sum() > 0 for p in params)
    return {
        "encoder": touched(module.encoder.parameters()),
        "codebooks": touched(module.quantizer.parameters()),
        "decoder": touched(module.decoder.parameters()),
    }


def test_each_loss_term_sends_gradient_only_where_the_design_says():
    items, _ = clustered(n=200)
    items.requires_grad_(True)
    dictionary = make()
    dictionary.kmeans_init(items.detach(), seed=1)
    terms = dictionary.loss_terms(items)
    # reconstruction: decoder, and the encoder through the straight-through estimator; not the codebooks
    assert _grads(dictionary, terms["reconstruction"]) == {"encoder": True, "codebooks": False, "decoder": True}
    # embedding term ||sg[r] - e||^2: the codebooks only
    assert _grads(dictionary, terms["embedding"]) == {"encoder": False, "codebooks": True, "decoder": False}
    # commitment term beta ||r - sg[e]||^2: the encoder only
    assert _grads(dictionary, terms["commitment"]) == {"encoder": True, "codebooks": False, "decoder": False}
    dictionary.loss(items).backward()
    assert items.grad is None  # sg[v]: item embeddings never learn from the dictionary


def test_commitment_term_is_weighted_by_beta():
    items, _ = clustered(n=100)
    low, high = make(beta=0.25), make(beta=1.0)
    high.load_state_dict(low.state_dict())
    ratio = high.loss_terms(items)["commitment"] / low.loss_terms(items)["commitment"]
    assert ratio.item() == pytest.approx(4.0, rel=1e-5)


def test_kmeans_initialisation_uses_the_dictionary_better_than_random():
    items, _ = clustered(n=1000, clusters=40)
    kmeans, random = make(), make()
    random.load_state_dict(kmeans.state_dict())
    kmeans.kmeans_init(items, seed=3)
    random.random_init(items, seed=3)
    used_kmeans = kmeans.utilisation(items)
    used_random = random.utilisation(items)
    assert min(used_kmeans["per_level"]) >= 0.9
    assert sum(used_kmeans["per_level"]) > sum(used_random["per_level"])
    assert used_kmeans["distinct_codes"] > used_random["distinct_codes"]


def test_first_level_starts_from_category_centroids():
    items, labels = clustered(n=400, clusters=5)
    dictionary = make()
    dictionary.kmeans_init(items, seed=1, categories=labels)
    with torch.no_grad():
        encoded = dictionary.encoder(dictionary.normalise(items))
    counts = torch.bincount(labels)
    for rank, category in enumerate(counts.argsort(descending=True).tolist()):
        centroid = encoded[labels == category].mean(dim=0)
        assert torch.allclose(dictionary.quantizer[0].weight[rank], centroid, atol=1e-5)


def test_category_interests_are_the_category_field():
    categories = torch.tensor([-1, 0, 2, 2, 1, -1])
    interests = CategoryInterests(categories, code_size=8)
    items = torch.tensor([1, 2, 3, 4, 5])
    codes = interests.codes_for(items, item_table=None)
    assert codes.squeeze(-1).tolist() == [1, 3, 3, 2, 0]  # 0 = no category
    assert interests.n_interests == 4
    assert interests.loss(torch.randn(3, 8)).item() == 0.0
