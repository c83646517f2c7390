"""zss.data.sampling.seeded draws as torch.manual_seed would and restores the outer stream."""

from __future__ import annotations

import torch


def test_seeded_draws_as_manual_seed_and_restores_the_outer_stream():
    from zss.data.sampling import seeded

    torch.manual_seed(7)
    want_outer = torch.rand(4)
    torch.manual_seed(7)
    with seeded(12345):
        inner = torch.rand(5), float(torch.rand(())), torch.randint(0, 100, (3,))
    outer = torch.rand(4)  # the stream outside continues as if nothing had been drawn
    torch.manual_seed(12345)  # what the transforms drew from before (all generators seeded)
    ref = torch.rand(5), float(torch.rand(())), torch.randint(0, 100, (3,))
    assert torch.equal(inner[0], ref[0]) and inner[1] == ref[1] and torch.equal(inner[2], ref[2])
    assert torch.equal(outer, want_outer)
