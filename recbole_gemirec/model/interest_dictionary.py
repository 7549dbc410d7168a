"""Interest dictionary (IDMM, GemiRec paper §3.2; docs/design.md §2.1).

Every item embedding is residual-quantised into C codes, one per sub-dictionary (default sizes
32 x 16 x 8 x 4). The sub-dictionaries are a vocabulary shared by all users; their Cartesian product
(16,384 interests by default) is the set of *interests*. Because codes are chosen level by level on the
residual, interests that share a first-level code are structurally related and interests with different
codes are structurally separated: this is how GemiRec keeps its K interests from collapsing onto each
other.

    r_1 = z_enc(sg[v]);  m_c = argmin_j ||r_c - e^c_j||^2;  r_{c+1} = r_c - sg[e^c_{m_c}]
    z_quan(v) = concat(e^1_{m_1}, ..., e^C_{m_C});  interest id = mixed-radix number of (m_1, ..., m_C)
    L_IDMM = ||sg[v] - z_dec(z_quan(v))||^2 + sum_c ||sg[r_c] - e^c_{m_c}||^2 + beta ||r_c - sg[e^c_{m_c}]||^2

The decoder reads the quantised interest through the straight-through estimator of VQ-VAE (its value
is the codewords, its gradient goes to the residuals), so the reconstruction term trains the decoder and
the encoder; without it nothing would stop the encoder from collapsing every item onto one code. The
second (embedding) term moves codewords towards the residuals; the third (commitment) term, weighted by
beta, keeps the encoder near its codewords. Item embeddings never receive gradient from this loss; in
the joint stage the codewords also learn from the retrieval loss, through the interest fusion.

Scale: item embeddings start tiny (std 0.02) and grow during training, while Adam moves every codeword
by about the learning rate per step; quantising raw embeddings therefore scrambles the codebooks and
collapses all items onto one code. The dictionary works on layer-normalised embeddings instead
(``v_hat = LN(sg[v])``, zero mean and unit variance per vector, which is also the reconstruction target)
and the encoder ends in a layer norm, so every level sees unit-scale residuals whatever the embedding
scale. This is our reading of ``sg[v]`` in docs/design.md §2.1.

:class:`CategoryInterests` is the GemiRec-I ablation (docs/design.md §2.6): the item category field itself is
the dictionary (one level, one interest per category), nothing is quantised and the loss is zero.
"""

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from recbole_gemirec.model.codebook import ResidualQuantizer, kmeans_centroids


def mixed_radix_weights(sizes):
    """Place values of each level in the interest id: id = sum_c m_c * prod(sizes[c+1:])."""
    weights = []
    for level in range(len(sizes)):
        weights.append(int(np.prod(sizes[level + 1:], dtype=np.int64)))
    return weights


class Interests(nn.Module):
    """What the rest of GemiRec asks of its interests, whoever defines them: the learned dictionary
    (:class:`InterestDictionary`) or preset categories (:class:`CategoryInterests`, GemiRec-I).

    An item has a code of ``levels`` levels (sub-dictionary sizes ``sizes``); a prefix of the first c
    levels is an interest with a mixed-radix id; every code has an embedding of ``code_size`` values.
    Subclasses set ``sizes``, ``levels``, ``code_size`` and ``n_interests``.
    """

    def codes_for(self, items, item_table):
        """Codes ``[..., levels]`` of item ids (``item_table``: the current item embeddings)."""
        raise NotImplementedError

    def code_embedding(self, codes):
        """Embeddings ``[..., code_size]`` of codes or code prefixes ``[..., c]``."""
        raise NotImplementedError

    def n_interests_at(self, levels):
        """How many interests a code prefix of ``levels`` levels distinguishes."""
        raise NotImplementedError

    def interest_ids(self, codes):
        """Interest ids of codes or code prefixes ``[..., c]``."""
        raise NotImplementedError

    def codes_of(self, interest_ids, levels=None):
        """Inverse of :meth:`interest_ids`: ``[...]`` -> ``[..., levels]``."""
        raise NotImplementedError

    def loss(self, item_emb, codes=None):
        """The dictionary's training loss on a batch of item embeddings."""
        raise NotImplementedError

    def utilisation(self, item_emb):
        """``{"per_level": [share of codewords in use], "distinct_codes": n}`` over ``item_emb``."""
        raise NotImplementedError

    def reseed_dead_codes(self, item_emb, seed=0):
        """Revive unused codewords; returns how many moved per level (none to move by default)."""
        return []


class InterestDictionary(Interests):
    """Encoder, C residual sub-dictionaries and decoder (IDMM).

    Args:
        embedding_size: D, the item embedding size.
        sizes: sub-dictionary sizes [M_1, ..., M_C].
        interest_dim: d, the size of each codeword.
        beta: commitment weight.
    """

    def __init__(self, embedding_size, sizes, interest_dim, beta):
        super().__init__()
        self.sizes = [int(s) for s in sizes]
        self.levels = len(self.sizes)
        self.interest_dim = int(interest_dim)
        self.code_size = self.levels * self.interest_dim
        self.beta = float(beta)
        self.n_interests = int(np.prod(self.sizes, dtype=np.int64))
        self.encoder = nn.Sequential(
            nn.Linear(embedding_size, embedding_size), nn.GELU(), nn.Linear(embedding_size, self.interest_dim),
            nn.LayerNorm(self.interest_dim, elementwise_affine=False),
        )
        self.quantizer = ResidualQuantizer(self.sizes, self.interest_dim)
        self.decoder = nn.Sequential(
            nn.Linear(self.code_size, embedding_size), nn.GELU(), nn.Linear(embedding_size, embedding_size)
        )
        self.register_buffer("radix", torch.tensor(mixed_radix_weights(self.sizes), dtype=torch.long))

    # --- quantisation -------------------------------------------------------------------------
    @staticmethod
    def normalise(item_emb):
        """v_hat = LN(sg[v]): the scale-free view of item embeddings the dictionary works on."""
        return F.layer_norm(item_emb.detach(), item_emb.shape[-1:])

    def quantize(self, item_emb, codes=None):
        """Residual-quantise item embeddings.

        ``codes [N, C]`` (optional) fixes the assignment instead of the nearest codeword (the joint stage
        with frozen codes trains the dictionary on the assignment the generator learns).

        Returns:
            :class:`~recbole_gemirec.model.codebook.Quantized`: codes ``[N, C]``, the residuals r_1..r_C
            (gradient to the encoder) and the chosen codewords (gradient to the codebooks).
        """
        return self.quantizer(self.encoder(self.normalise(item_emb)), codes)

    @torch.no_grad()
    def encode(self, item_emb, batch_size=65536):
        """Codes ``[N, C]`` of item embeddings, without gradient, in batches."""
        parts = [self.quantize(item_emb[i:i + batch_size]).codes for i in range(0, item_emb.shape[0], batch_size)]
        return torch.cat(parts, dim=0)

    def codes_for(self, items, item_table):
        """Codes ``[..., C]`` of item ids, quantising their current embeddings (no gradient)."""
        flat = items.reshape(-1)
        return self.encode(item_table[flat]).reshape(*items.shape, self.levels)

    def code_embedding(self, codes):
        """z_quan for code tuples ``[..., c]`` -> ``[..., C * d]`` (concatenated codewords). A prefix (the
        first ``c < C`` levels, see ``interest_levels``) leaves the deeper levels' slots zero."""
        parts = [self.quantizer[level](codes[..., level]) for level in range(codes.shape[-1])]
        if codes.shape[-1] < self.levels:
            parts.append(parts[0].new_zeros(*codes.shape[:-1], (self.levels - codes.shape[-1]) * self.interest_dim))
        return torch.cat(parts, dim=-1)

    def n_interests_at(self, levels):
        """How many interests a code prefix of ``levels`` levels distinguishes (product of their sizes)."""
        return int(np.prod(self.sizes[:levels], dtype=np.int64))

    def interest_ids(self, codes):
        """Mixed-radix interest ids of code tuples or prefixes ``[..., c]`` (radix of the first c levels)."""
        levels = codes.shape[-1]
        radix = self.radix[:levels] // self.radix[levels - 1]
        return (codes * radix).sum(dim=-1)

    def codes_of(self, interest_ids, levels=None):
        """Inverse of :meth:`interest_ids`: ``[...]`` -> ``[..., levels]`` (default all C levels)."""
        levels = self.levels if levels is None else levels
        radix = self.radix[:levels] // self.radix[levels - 1]
        sizes = torch.tensor(self.sizes[:levels], device=interest_ids.device)
        return (interest_ids.unsqueeze(-1) // radix) % sizes

    # --- loss ---------------------------------------------------------------------------------
    def loss_terms(self, item_emb, codes=None):
        """The three parts of L_IDMM (means over items): reconstruction, embedding and commitment (with
        beta); ``codes`` fixes the assignment (see :meth:`quantize`)."""
        target = self.normalise(item_emb)
        codes, residuals, chosen = self.quantize(item_emb, codes)
        straight_through = [r + (e - r).detach() for r, e in zip(residuals, chosen)]
        reconstruction = self.decoder(torch.cat(straight_through, dim=-1))
        terms = {"reconstruction": F.mse_loss(reconstruction, target, reduction="none").sum(-1).mean()}
        terms["embedding"] = sum((r.detach() - e).pow(2).sum(-1).mean() for r, e in zip(residuals, chosen))
        terms["commitment"] = self.beta * sum((r - e.detach()).pow(2).sum(-1).mean() for r, e in zip(residuals, chosen))
        return terms

    def loss(self, item_emb, codes=None):
        """L_IDMM (docs/design.md, interest dictionary) for a batch of item embeddings."""
        return sum(self.loss_terms(item_emb, codes).values())

    # --- initialisation -----------------------------------------------------------------------
    @torch.no_grad()
    def kmeans_init(self, item_emb, seed, categories=None):
        """Initialise every sub-dictionary by k-means on the residuals at its level (docs/design.md §2.1).

        With ``categories`` (one category index per item, -1 for none), the first level starts from the
        category centroids of the encoded items instead (the paper's preset categories): the most frequent
        categories fill the first rows, and k-means centroids fill any rows left over.
        """

        def initialise(level, codebook, residual):
            if level == 0 and categories is not None:
                codebook.set_(self._category_centroids(residual, categories, codebook.size, seed))
            else:
                codebook.set_(kmeans_centroids(residual, codebook.size, seed + level))

        self.quantizer.each_level(self.encoder(self.normalise(item_emb)), initialise)

    @staticmethod
    def _category_centroids(residual, categories, size, seed):
        known = categories >= 0
        values, counts = torch.unique(categories[known], return_counts=True)
        order = values[counts.argsort(descending=True)][:size]
        rows = [residual[categories == value].mean(dim=0) for value in order.tolist()]
        if len(rows) < size:
            rows += list(kmeans_centroids(residual, size - len(rows), seed).to(residual.device))
        return torch.stack(rows).cpu()

    @torch.no_grad()
    def random_init(self, item_emb, seed):
        """Random codewords at the scale of the encoded items (the no-k-means ablation)."""
        generator = torch.Generator().manual_seed(int(seed))
        scale = self.encoder(self.normalise(item_emb)).std().item() or 1.0
        for codebook in self.quantizer:
            codebook.set_(torch.randn(codebook.weight.shape, generator=generator) * scale)

    # --- dead codes -----------------------------------------------------------------------------
    @torch.no_grad()
    def reseed_dead_codes(self, item_emb, seed=0):
        """Move every codeword no item uses onto a badly quantised item; return counts per level.

        Level by level (on the residuals of that level, after the levels above have been re-seeded), each
        dead codeword is set to the residual of the worst-quantised item whose codeword keeps at least one
        other item (:meth:`~recbole_gemirec.model.codebook.Codebook.reseed_dead`); that item then uses the
        re-seeded codeword. ``seed`` breaks ties reproducibly without touching the global generators.
        """
        generator = torch.Generator().manual_seed(int(seed))
        return self.quantizer.each_level(self.encoder(self.normalise(item_emb)),
                                         lambda level, codebook, residual: codebook.reseed_dead(residual, generator))

    # --- reporting ----------------------------------------------------------------------------
    @torch.no_grad()
    def utilisation(self, item_emb):
        """Per level, the share of codewords used by at least one item; and distinct full codes in use."""
        codes = self.encode(item_emb)
        per_level = [torch.unique(codes[:, level]).numel() / size for level, size in enumerate(self.sizes)]
        distinct = torch.unique(self.interest_ids(codes)).numel()
        return {"per_level": per_level, "distinct_codes": int(distinct)}


class CategoryInterests(Interests):
    """GemiRec-I: the item category field is the interest dictionary (one level, no quantisation).

    Each category gets a learned embedding of the same size as a quantised interest, so the rest of the
    model is unchanged; items without a category share one extra "unknown" interest.
    """

    def __init__(self, item_categories, code_size, n_categories=None):
        super().__init__()
        if n_categories is None:  # categories 0..max, plus the "unknown" interest
            n_categories = int(item_categories.max().item()) + 2
        self.register_buffer("item_codes", (item_categories.clamp(min=-1) + 1).long())
        self.sizes = [n_categories]
        self.levels = 1
        self.code_size = int(code_size)
        self.n_interests = n_categories
        self.embedding = nn.Embedding(n_categories, self.code_size)

    def codes_for(self, items, item_table):
        return self.item_codes[items].unsqueeze(-1)

    def code_embedding(self, codes):
        return self.embedding(codes[..., 0])

    def n_interests_at(self, levels):
        return self.n_interests

    def interest_ids(self, codes):
        return codes[..., 0]

    def codes_of(self, interest_ids, levels=None):
        return interest_ids.unsqueeze(-1)

    def loss(self, item_emb, codes=None):
        # Nothing to quantise: a zero that still belongs to the graph, so a dictionary stage run with this
        # ablation can call backward on it.
        return self.embedding.weight.sum() * 0.0

    @torch.no_grad()
    def utilisation(self, item_emb):
        used = torch.unique(self.item_codes[1:]).numel()
        return {"per_level": [used / self.n_interests], "distinct_codes": int(used)}
