"""Codebook and the residual loop over codebooks (model/codebook.py)."""

import torch

from recbole_gemirec.model.codebook import Codebook, Quantized, ResidualQuantizer


def test_nearest_is_the_closest_codeword_and_carries_no_gradient():
    torch.manual_seed(0)
    book = Codebook(7, 3)
    points = torch.randn(50, 3, requires_grad=True)
    distance, code = book.nearest(points)
    brute = ((points.detach()[:, None, :] - book.weight.detach()[None]) ** 2).sum(-1)
    assert torch.equal(code, brute.argmin(dim=1))
    assert torch.allclose(distance, brute.min(dim=1).values.sqrt(), atol=1e-5)
    assert not distance.requires_grad and book(code).shape == (50, 3)


def test_dead_codewords_are_moved_onto_data_and_no_codeword_is_emptied():
    torch.manual_seed(1)
    book = Codebook(8, 2)
    points = torch.randn(200, 2)
    book.set_(torch.cat([points[:4], torch.full((4, 2), 100.0)]))  # four codewords far from every point
    assert torch.unique(book.nearest(points)[1]).numel() == 4
    moved = book.reseed_dead(points, torch.Generator().manual_seed(0))
    assert moved >= 4
    assert torch.unique(book.nearest(points)[1]).numel() == 8  # every codeword has an item now


def test_residual_levels_quantise_what_the_levels_above_left():
    torch.manual_seed(2)
    quantizer = ResidualQuantizer([6, 4, 3], 5)
    points = torch.randn(40, 5)
    out = quantizer(points)
    assert isinstance(out, Quantized) and out.codes.shape == (40, 3)
    assert torch.equal(out.residuals[0], points)
    for level in range(1, 3):
        assert torch.allclose(out.residuals[level], out.residuals[level - 1] - out.codewords[level - 1])
        assert torch.equal(out.codes[:, level], quantizer[level].nearest(out.residuals[level])[1])
    fixed = torch.zeros(40, 3, dtype=torch.long)
    assert torch.equal(quantizer(points, fixed).codes, fixed)  # a given assignment is kept
    seen = quantizer.each_level(points, lambda level, book, residual: (level, residual.shape[0]))
    assert seen == [(0, 40), (1, 40), (2, 40)]
