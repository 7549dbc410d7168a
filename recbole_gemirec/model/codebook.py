"""One sub-dictionary of the interest dictionary, and the residual loop over several (docs/design.md §2.1).

:class:`Codebook` is M codewords of size d with what a codebook needs on its own: the nearest codeword of
each residual, k-means or random initialisation, and re-seeding of codewords no item uses.
:class:`ResidualQuantizer` walks C codebooks level by level, each quantising what the levels above left
(``r_{c+1} = r_c - sg[e^c_{m_c}]``). The encoder, decoder and loss around them are
:class:`~recbole_gemirec.model.interest_dictionary.InterestDictionary`'s. (lucidrains' ``ResidualVQ`` and
``Codebook`` are the same split; this one adds initialisation from data and dead-code re-seeding.)
"""

from typing import List, NamedTuple

import numpy as np
import torch
import torch.nn as nn


class Quantized(NamedTuple):
    """The result of quantising N vectors with C levels."""

    codes: torch.Tensor  # [N, C] long, the chosen codeword per level
    residuals: List[torch.Tensor]  # C x [N, d], r_1..r_C (r_c carries gradient to whatever produced r_1)
    codewords: List[torch.Tensor]  # C x [N, d], the chosen codewords (gradient to the codebooks)


def kmeans_centroids(points, k, seed, niter=20):
    """k-means centroids of ``points`` (``[N, d]`` tensor) with faiss; ``k`` rows even when N < k.

    When there are fewer distinct points than ``k`` the missing centroids are points plus small noise,
    so every codeword starts near data instead of at an arbitrary place.
    """
    import faiss

    data = np.ascontiguousarray(points.detach().cpu().numpy().astype(np.float32))
    rng = np.random.default_rng(seed)
    if data.shape[0] >= k:
        kmeans = faiss.Kmeans(data.shape[1], k, niter=niter, seed=int(seed), verbose=False,
                              min_points_per_centroid=1, max_points_per_centroid=100000)
        kmeans.train(data)
        centroids = kmeans.centroids
    else:
        picks = rng.integers(0, max(len(data), 1), size=k)
        centroids = data[picks] + rng.normal(0, 1e-3, size=(k, data.shape[1])).astype(np.float32)
    return torch.from_numpy(np.array(centroids, dtype=np.float32))


class Codebook(nn.Module):
    """M codewords of size d (``weight [M, d]``)."""

    RESEED_PASSES = 4

    def __init__(self, size, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(int(size), int(dim)) * 0.1)

    @property
    def size(self):
        return self.weight.shape[0]

    def forward(self, code):
        """The codewords of ``code`` (any shape of indices) -> ``[..., d]``."""
        return self.weight[code]

    def nearest(self, residual):
        """``(distance [N], code [N])``: each residual's nearest codeword (Euclidean), without gradient."""
        return torch.cdist(residual.detach().unsqueeze(0), self.weight.detach().unsqueeze(0)).squeeze(0).min(dim=1)

    @torch.no_grad()
    def set_(self, codewords):
        self.weight.data.copy_(codewords.to(self.weight.device))

    @torch.no_grad()
    def reseed_dead(self, residual, generator):
        """Move every codeword no residual uses onto a badly quantised residual; returns how many moved.

        Why: during joint training the encoder and codebooks drift, and a codeword that loses its last item
        receives no gradient from the embedding term again - it stays dead and utilisation only decays. A
        moved codeword can attract items of a neighbour and empty it, so passes repeat until none is dead
        (each pass that moves anything revives at least one codeword, so this is bounded).
        """
        moved = 0
        for _ in range(max(self.RESEED_PASSES, self.size)):
            step = self._reseed_pass(residual, generator)
            moved += step
            if step == 0:
                break
        return moved

    def _reseed_pass(self, residual, generator):
        """Each dead codeword takes the residual of the worst-quantised item among those whose codeword
        has at least two items (ties broken by ``generator``), so no codeword is emptied by the move. An
        item sitting exactly on its codeword is never taken: after an upper level was re-seeded onto an
        item, that item's lower residuals are exactly zero, and a codeword placed on a duplicate would tie
        and stay dead."""
        error, code = self.nearest(residual)
        counts = torch.bincount(code, minlength=self.size)
        jitter = torch.rand(error.shape, generator=generator) * 1e-6
        available = error > 1e-6
        moved = 0
        for row in (counts == 0).nonzero().flatten().tolist():
            candidates = available & (counts[code] >= 2)
            if not bool(candidates.any()):
                break
            pick = int(torch.where(candidates, error + jitter, torch.full_like(error, -1.0)).argmax())
            self.weight.data[row] = residual[pick]
            available[pick] = False
            counts[code[pick]] -= 1
            counts[row] += 1
            code[pick] = row
            moved += 1
        return moved


class ResidualQuantizer(nn.Module):
    """C codebooks applied in turn to the residual the levels above leave."""

    def __init__(self, sizes, dim):
        super().__init__()
        self.codebooks = nn.ModuleList([Codebook(size, dim) for size in sizes])

    def __len__(self):
        return len(self.codebooks)

    def __getitem__(self, level):
        return self.codebooks[level]

    def __iter__(self):
        return iter(self.codebooks)

    def forward(self, residual, codes=None):
        """Quantise ``residual [N, d]`` level by level; ``codes [N, C]`` (optional) fixes the assignment
        instead of the nearest codeword. Returns :class:`Quantized`."""
        chosen_codes, residuals, chosen = [], [], []
        for level, codebook in enumerate(self.codebooks):
            code = codebook.nearest(residual)[1] if codes is None else codes[:, level]
            codeword = codebook(code)
            chosen_codes.append(code)
            residuals.append(residual)
            chosen.append(codeword)
            residual = residual - codeword.detach()
        return Quantized(torch.stack(chosen_codes, dim=1), residuals, chosen)

    @torch.no_grad()
    def each_level(self, residual, visit):
        """``visit(level, codebook, residual)`` for every level in turn, each on the residual left by the
        levels above *after* the visits above changed them (initialisation, re-seeding); returns the
        visits' results."""
        results = []
        for level, codebook in enumerate(self.codebooks):
            results.append(visit(level, codebook, residual))
            residual = residual - codebook(codebook.nearest(residual)[1])
        return results
