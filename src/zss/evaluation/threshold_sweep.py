"""Confusion matrices of a threshold gate over a whole grid of thresholds in one pass, and the
area under the seen–unseen curve (AUSUC).

A gate (:mod:`zss.inference.gates`) takes the seen prediction ``a`` of a pixel when its decision
score ``z > θ`` (or ``z == θ`` with its tie flag), else the unseen prediction ``b``. With the
grid θ_0 < … < θ_{G−1} and ``k`` the number of grid values below ``z`` (at or below it, for a
tie-seen pixel), the pixel adds (label, a) to the matrices i < k and (label, b) to those
i ≥ k. So two count tensors indexed by ``k`` and a cumulative sum give all G matrices exactly,
whatever G: no pass per threshold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics import Metric

from zss.data.splits import IGNORE_INDEX

__all__ = ["ThresholdSweep", "ausuc"]


class ThresholdSweep(Metric):
    """Dataset-level (G, C, C) confusion matrices (rows = ground truth, columns = prediction,
    void 255 ignored) of a threshold gate at every θ of a grid, summed over batches and DDP
    ranks.

    Args:
        thresholds: the grid θ, strictly increasing (±inf allowed).
        num_classes: C.

    ``update(z, tie_seen, a, b, target)``: float z, bool tie_seen, int64 a, b (seen / unseen
    predictions) and int64 target, all (N, H, W). ``compute()`` -> int64 (G, C, C).

    Raises:
        ValueError: an empty or non-increasing grid.
    """

    full_state_update = False

    def __init__(self, thresholds: Sequence[float], num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        grid = torch.as_tensor(list(thresholds), dtype=torch.float64)
        if grid.numel() == 0 or (grid.numel() > 1 and not bool((grid.diff() > 0).all())):
            raise ValueError("thresholds must be a non-empty, strictly increasing grid")
        self.num_classes = num_classes
        self.register_buffer("grid", grid, persistent=False)
        g, c = grid.numel(), num_classes
        self.add_state("seen_counts", torch.zeros(g + 1, c, c, dtype=torch.long),
                       dist_reduce_fx="sum")
        self.add_state("unseen_counts", torch.zeros(g + 1, c, c, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, z: torch.Tensor, tie_seen: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
               target: torch.Tensor) -> None:
        valid = target != IGNORE_INDEX
        z, tie = z[valid].double(), tie_seen[valid]
        t, a, b = target[valid], a[valid], b[valid]
        grid = self.grid.to(z.device)
        k = torch.where(tie, torch.searchsorted(grid, z, right=True),
                        torch.searchsorted(grid, z, right=False))
        c, n = self.num_classes, (self.grid.numel() + 1) * self.num_classes ** 2
        base = k * c * c + t * c
        self.seen_counts += torch.bincount(base + a, minlength=n).view_as(self.seen_counts)
        self.unseen_counts += torch.bincount(base + b, minlength=n).view_as(self.unseen_counts)

    def compute(self) -> torch.Tensor:
        # matrix i = sum_{k > i} seen_counts[k] + sum_{k <= i} unseen_counts[k]
        seen_above = self.seen_counts.flip(0).cumsum(0).flip(0)[1:]
        unseen_upto = self.unseen_counts.cumsum(0)[:-1]
        return seen_above + unseen_upto


def ausuc(miou_unseen: Sequence[float], miou_seen: Sequence[float]) -> float:
    """Area under the seen–unseen curve (Chao et al., ECCV 2016, §4.2), with mIoU in place of
    accuracy.

    Chao et al.'s accuracy curve is monotone (raising γ only moves pixels to unseen classes);
    an mIoU curve is not — past some γ the unseen classes' false positives lower their IoU
    again, and the curve turns back. So the area is taken under its upper frontier: the
    points not dominated by another (one with an unseen *and* a seen mIoU at least as high),
    in order of unseen mIoU, joined by the trapezoid rule, and held at its first point's seen
    mIoU down to unseen mIoU 0. For a monotone curve from the seen axis that is the curve
    itself, as in the paper. Points with a NaN coordinate are left out.

    Args:
        miou_unseen, miou_seen: the curve's coordinates in [0, 1], same length (any order).

    Returns:
        the area, in [0, 1]; NaN with fewer than two defined points.

    Raises:
        ValueError: different lengths.
    """
    x, y = np.asarray(miou_unseen, dtype=float), np.asarray(miou_seen, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"ausuc: {x.size} unseen and {y.size} seen values")
    keep = ~(np.isnan(x) | np.isnan(y))
    if keep.sum() < 2:
        return math.nan
    x, y = x[keep], y[keep]
    order = np.lexsort((-y, -x))  # unseen mIoU descending, then seen descending
    frontier, best = [], -math.inf
    for xi, yi in zip(x[order], y[order], strict=True):
        if yi > best:
            frontier.append((xi, yi))
            best = yi
    fx, fy = np.array(frontier[::-1]).T
    if fx[0] > 0:  # left of the frontier the best seen mIoU is its first point's
        fx, fy = np.concatenate([[0.0], fx]), np.concatenate([[fy[0]], fy])
    return float(np.sum((fx[1:] - fx[:-1]) * (fy[1:] + fy[:-1]) / 2))
