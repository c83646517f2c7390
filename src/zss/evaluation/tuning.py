"""Tuning the gates' parameters on held-out training images — never on the test split.

Each gate of :data:`zss.inference.gates.GATES` has one parameter (t, γ, τ). It is chosen on the
held-out images of stage 2 (:meth:`zss.data.ZSSDataModule.gate_tuning_dataloader`: training
images never trained on by stage 2, with no U pixel — checked on every item), with
**train_unseen standing in for the unseen classes**: the seen branch is train_seen, the
unseen branch train_unseen alone (U is not a candidate, and no U pixel is there), which is
the role the paper gives the train_unseen classes (docs/evaluation.md, "Gates tuned without
unseen data").

Objective: the harmonic mean of ``miou_train_seen`` and ``miou_train_unseen`` on those images
(the hIoU of the stand-in split), computed from dataset-level confusion matrices
(:class:`zss.evaluation.threshold_sweep.ThresholdSweep`) at every value of the gate's fixed grid in one pass. The
harmonic mean, as hIoU at test, rewards a gate only for getting both sides right; pixel
accuracy would favour never saying "unseen" (train_seen pixels are the majority). Among
equally good values the middle one of the maximisers (in grid order) is taken.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from zss.data.splits import ClassSplit
from zss.evaluation.metrics import harmonic_mean, zero_shot_scores
from zss.inference.gates import GATES

__all__ = ["OBJECTIVE", "choose", "format_tuning", "gates_for", "tuning_objective"]

OBJECTIVE = "hmean(miou_train_seen, miou_train_unseen)"
"""The tuning objective, as recorded in ``metrics.json``."""


def tuning_objective(hist: torch.Tensor, split: ClassSplit) -> tuple[float, float, float]:
    """``(objective, miou_train_seen, miou_train_unseen)`` of a (C, C) confusion matrix of
    held-out training images; NaN where a class set has no defined IoU."""
    s = zero_shot_scores(hist, split)
    ts, tu = s["miou_train_seen"], s["miou_train_unseen"]
    return harmonic_mean(ts, tu), ts, tu


def choose(matrices: torch.Tensor, grid: tuple[float, ...], split: ClassSplit) -> dict[str, Any]:
    """The best grid value from the (G, C, C) matrices of a sweep.

    Returns:
        ``{"value", "objective", "miou_train_seen", "miou_train_unseen"}`` at the chosen
        value (the middle maximiser in grid order). A gate with nothing to tune is
        **untuned**: ``value`` None and ``untuned`` the reason, when the objective is NaN
        everywhere (no train_seen or no train_unseen pixel; the scores NaN) or the same at
        every grid value where it is defined (e.g. 0.0 at all 201 τ: the objective carries
        no signal, so no value is better than another; the scores are that constant's).
    """
    rows = [tuning_objective(h, split) for h in matrices]
    objectives = [r[0] for r in rows]
    defined = [o for o in objectives if not math.isnan(o)]
    if not defined:
        return {"value": None, "objective": math.nan, "miou_train_seen": math.nan,
                "miou_train_unseen": math.nan,
                "untuned": "the objective is undefined at every value (the held-out images "
                           "lack train_seen or train_unseen pixels)"}
    best = max(defined)
    winners = [i for i, o in enumerate(objectives) if o == best]
    i = winners[len(winners) // 2]
    chosen = {"value": grid[i], "objective": rows[i][0], "miou_train_seen": rows[i][1],
              "miou_train_unseen": rows[i][2]}
    if best == min(defined):
        chosen.update(value=None, untuned=(
            f"the objective is {100 * best:.1f} % at every value of the grid where it is "
            "defined: it carries no signal, so no value was chosen"))
    return chosen


def gates_for(seenmask: bool) -> tuple[str, ...]:
    """The gates a model can use: all of them with a seenmask head, else those that read
    only the cosine scores."""
    return tuple(g for g, gate in GATES.items() if seenmask or not gate.needs_seenmask)


def format_tuning(tuning: dict[str, Any], tradeoff: dict[str, Any] | None) -> str:
    """The lines printed beside the results table: each gate's tuned value and objective
    (or why none was tuned), and the AUSUC of the test split's seen–unseen curve."""
    lines = []
    if "skipped" in tuning:
        lines.append(f"Gates: not tuned — {tuning['skipped']}")
    else:
        lines.append(f"Gates tuned on {tuning['images']} held-out training images of stage 2 "
                     f"(train_unseen standing in for U; objective {tuning['objective']}):")
        for g, r in tuning["gates"].items():
            if r["value"] is None:
                lines.append(f"  {g:<14} {r['parameter']:<6}untuned, not evaluated: "
                             f"{r.get('untuned', 'no value was chosen')}")
                continue
            lines.append(f"  {g:<14} {r['parameter']:<6}= {r['value']:<10.4g} objective "
                         f"{_pct(r['objective'])} (train_seen {_pct(r['miou_train_seen'])}, "
                         f"train_unseen {_pct(r['miou_train_unseen'])})")
        untuned = {"szn": "szn (t = 0.5)", "fcn_je": "fcn_je (γ = 0)"}
        for name, o in tuning.get("reference", {}).items():
            lines.append(f"  {untuned[name]:<25} objective {_pct(o)} (untuned, same images)")
    if tradeoff is not None:
        a = tradeoff["ausuc"]
        lines.append("AUSUC (calibrated stacking of S against U, γ swept on the TEST split: an "
                     "analysis, not a tuned result): " + ("n/a" if math.isnan(a) else f"{100 * a:.2f} %"))
    return "\n".join(lines)


def _pct(x: float) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
