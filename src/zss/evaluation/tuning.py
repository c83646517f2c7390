"""Tuning the gates' parameters on held-out training images — never on the test split, never
with a U pixel — by a rule chosen with ``gates.tuning`` (:data:`TUNING_RULES`).

Each gate of :data:`zss.inference.gates.GATES` has one parameter (t, γ, τ), and its grid runs
from seen-leaning to unseen-leaning (the pixel is "seen" when z > θ, so a larger θ sends more
pixels to the unseen branch). The tuning pass (:class:`zss.stages.gate_tuning.GateTuning`)
counts, on the held-out images of stage 2 (training images stage 2 never trained on, with no
U pixel — checked on every item), one dataset-level confusion matrix per grid value
(:class:`zss.evaluation.threshold_sweep.ThresholdSweep`); the train_unseen classes stand in
for the unseen ones. A rule then picks one value from those matrices:

- ``stand_in`` (the rule of earlier zss versions): the unseen branch holds train_unseen alone;
  maximise the harmonic mean of ``miou_train_seen`` and ``miou_train_unseen`` (the stand-in
  split's hIoU; the middle of equal maximisers).
- ``all_names``: the same objective with the unseen branch holding every unseen-side class
  name known at test time, train_unseen ∪ U *vectors* (inductive generalised zero-shot
  evaluation gives the model every class name; the held-out images still hold no U pixel), so
  the train_unseen pixels compete with the U vectors as they will at test.
- ``seen_budget`` (the default): unseen branch as ``all_names``; the largest value (the most
  unseen-leaning) whose held-out ``miou_train_seen`` stays within ``gates.seen_budget`` (IoU
  fraction, 0.05 = 5 points) of its best over the grid. A threshold set by the error tolerated
  on the known classes, as novelty detectors set theirs at a fixed true-positive rate on
  in-distribution data (Hendrycks & Gimpel, ICLR 2017, "FPR at 95 % TPR"): the stand-in
  objective measures the unseen side on two train_unseen classes the seenmask was trained
  on, which over-calibrates; the seen side is measured on the held-out images faithfully.
- ``unseen_rate``: unseen branch as ``all_names``; the value whose share of held-out pixels
  sent to the unseen branch is closest to the share of train_unseen pixels among them (prior
  matching).

A gate with nothing to tune is **untuned** (value None, not evaluated; the reason recorded):
its criterion is undefined everywhere, or no grid value is better than another.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from zss.data.splits import ClassSplit
from zss.evaluation.metrics import harmonic_mean, zero_shot_scores
from zss.inference.gates import GATES

__all__ = ["OBJECTIVE", "TUNING_RULES", "TuningRule", "choose", "choose_seen_budget",
           "choose_unseen_rate", "gates_for", "tuning_objective"]

OBJECTIVE = "hmean(miou_train_seen, miou_train_unseen)"
"""The stand-in objective, reported for every gate under every rule (``tune/<gate>/objective``)
and maximised by ``stand_in`` and ``all_names``."""
ALL_NAMES = "train_unseen + U names"
"""The unseen branch of the rules that give it every unseen-side class name known at test."""


def tuning_objective(hist: torch.Tensor, split: ClassSplit) -> tuple[float, float, float]:
    """``(objective, miou_train_seen, miou_train_unseen)`` of a (C, C) confusion matrix of
    held-out training images; NaN where a class set has no defined IoU."""
    s = zero_shot_scores(hist, split)
    ts, tu = s["miou_train_seen"], s["miou_train_unseen"]
    return harmonic_mean(ts, tu), ts, tu


def _at(rows: list, grid: tuple[float, ...], i: int, **extra: Any) -> dict[str, Any]:
    return {"value": grid[i], "objective": rows[i][0], "miou_train_seen": rows[i][1],
            "miou_train_unseen": rows[i][2], **extra}


def _untuned(reason: str, rows: list | None = None, i: int = 0) -> dict[str, Any]:
    nan = (math.nan, math.nan, math.nan)
    row = rows[i] if rows else nan
    return {"value": None, "objective": row[0], "miou_train_seen": row[1],
            "miou_train_unseen": row[2], "untuned": reason}


def choose(matrices: torch.Tensor, grid: tuple[float, ...], split: ClassSplit,
           budget: float = 0.0) -> dict[str, Any]:
    """The stand-in rule (``stand_in`` and ``all_names``): the grid value of the largest
    :data:`OBJECTIVE` over the (G, C, C) matrices of a sweep (the middle maximiser in grid
    order; ``budget`` unused).

    Returns:
        ``{"value", "objective", "miou_train_seen", "miou_train_unseen"}`` at the chosen
        value. **Untuned** (``value`` None, ``untuned`` the reason) when the objective is NaN
        everywhere (no train_seen or no train_unseen pixel; the scores NaN) or the same at
        every grid value where it is defined (e.g. 0.0 at all 201 τ: it carries no signal;
        the scores are that constant's).
    """
    rows = [tuning_objective(h, split) for h in matrices]
    objectives = [r[0] for r in rows]
    defined = [o for o in objectives if not math.isnan(o)]
    if not defined:
        return _untuned("the objective is undefined at every value (the held-out images "
                        "lack train_seen or train_unseen pixels)")
    best = max(defined)
    winners = [i for i, o in enumerate(objectives) if o == best]
    i = winners[len(winners) // 2]
    if best == min(defined):
        return _untuned(f"the objective is {100 * best:.1f} % at every value of the grid where "
                        "it is defined: it carries no signal, so no value was chosen", rows, i)
    return _at(rows, grid, i)


def choose_seen_budget(matrices: torch.Tensor, grid: tuple[float, ...], split: ClassSplit,
                       budget: float = 0.05) -> dict[str, Any]:
    """The ``seen_budget`` rule: the largest grid value whose held-out ``miou_train_seen`` is
    at least its best over the grid minus ``budget`` (an IoU fraction in [0, 1)).

    Returns:
        as :func:`choose`, plus ``seen_best`` (that best) and ``budget``. Untuned when
        ``miou_train_seen`` is undefined everywhere or the same at every grid value (the
        gate changes nothing there, or the model gets no train_seen pixel right).
    """
    rows = [tuning_objective(h, split) for h in matrices]
    seen = [r[1] for r in rows]
    defined = [s for s in seen if not math.isnan(s)]
    if not defined:
        return _untuned("the held-out images have no train_seen pixel")
    best = max(defined)
    if best == min(defined):  # e.g. the gate changes nothing, or train_seen IoU 0 throughout
        return _untuned(f"the held-out train_seen mIoU is {100 * best:.1f} % at every value "
                        "of the grid where it is defined: no budget can be measured on it, "
                        "so no value was chosen", rows)
    i = max(i for i, s in enumerate(seen) if not math.isnan(s) and s >= best - budget)
    return _at(rows, grid, i, seen_best=best, budget=budget)


def choose_unseen_rate(matrices: torch.Tensor, grid: tuple[float, ...], split: ClassSplit,
                       budget: float = 0.0) -> dict[str, Any]:
    """The ``unseen_rate`` rule: the grid value whose share of held-out pixels predicted
    outside train_seen (the unseen branch) is closest to the share of train_unseen pixels
    among them (the middle of equally close values; ``budget`` unused).

    Returns:
        as :func:`choose`, plus ``target_rate`` and ``rate``. Untuned without held-out
        pixels or without train_unseen pixels.
    """
    rows = [tuning_objective(h, split) for h in matrices]
    m = matrices.double()
    total = float(m[0].sum())
    outside = ~split.mask(split.train_seen)
    target = float(m[0][split.train_unseen_idx].sum()) / total if total else math.nan
    if not total or not target:
        return _untuned("the held-out images have no train_unseen pixel to match")
    rates = [float(h[:, outside].sum()) / total for h in m]
    gaps = [abs(r - target) for r in rates]
    closest = [i for i, d in enumerate(gaps) if d == min(gaps)]
    i = closest[len(closest) // 2]
    return _at(rows, grid, i, target_rate=target, rate=rates[i])


@dataclass(frozen=True)
class TuningRule:
    """A way to choose a gate's parameter on held-out training images.

    Attributes:
        name: its ``gates.tuning`` value.
        unseen_branch: ``"train_unseen"`` (the unseen branch holds the stand-in classes
            alone) or ``"train_unseen + U names"`` (every unseen-side class name known at
            test time; no U pixel is read).
        choose: ``(matrices (G, C, C), grid, split, budget) -> result`` (:func:`choose`).
        criterion: one line for ``metrics.json`` and the printout.
    """

    name: str
    unseen_branch: str
    choose: Callable[..., dict[str, Any]]
    criterion: str


TUNING_RULES: dict[str, TuningRule] = {r.name: r for r in (
    TuningRule("stand_in", "train_unseen", choose,
               f"max {OBJECTIVE}, unseen branch train_unseen (earlier zss versions' rule)"),
    TuningRule("all_names", ALL_NAMES, choose,
               f"max {OBJECTIVE}, unseen branch train_unseen + U names"),
    TuningRule("seen_budget", ALL_NAMES, choose_seen_budget,
               "the most unseen-leaning value whose miou_train_seen stays within the budget "
               "of its best, unseen branch train_unseen + U names"),
    TuningRule("unseen_rate", ALL_NAMES, choose_unseen_rate,
               "the share of pixels sent to the unseen branch closest to the share of "
               "train_unseen pixels, unseen branch train_unseen + U names"),
)}
"""The tuning rules by ``gates.tuning``; ``seen_budget`` is the default (``conf/config.yaml``,
chosen on the demo and checked unchanged on demo_density: docs/evaluation.md)."""


def gates_for(seenmask: bool) -> tuple[str, ...]:
    """The gates a model can use: all of them with a seenmask head, else those that read
    only the cosine scores."""
    return tuple(g for g, gate in GATES.items() if seenmask or not gate.needs_seenmask)
