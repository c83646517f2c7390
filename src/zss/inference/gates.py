"""Seen/unseen gates: per pixel, the best seen candidate or the best unseen one (pure functions).

Every gate chooses between the two branches of SZN — the nearest seen candidate
``a`` (train_seen) and the nearest unseen candidate ``b`` (train_unseen ∪ U at test) — from
what the frozen model already computes. Each is written as a *decision score* ``z`` per pixel
and a threshold θ: the pixel takes the seen branch when ``z > θ``, or when ``z == θ`` and
its tie flag is set. Written this way, one pass can count the confusion matrices of a whole
grid of θ at once (:class:`zss.evaluation.threshold_sweep.ThresholdSweep`).

=====================  =====================  =============================  =============
variant                z                      seen when                      tie
=====================  =====================  =============================  =============
``szn`` (not tuned)    l_seen − l_unseen      z > 0 (the head's argmax)      unseen
``szn_threshold``      l_seen − l_unseen      P(seen) > t, i.e. z > logit t  unseen
``szn_cs``             cos_a − cos_b          cos_a − γ > cos_b              lowest index
``szn_maxcos``         cos_a                  cos_a ≥ τ                      seen
=====================  =====================  =============================  =============

The last three are the registered gates (:data:`GATES`, their decision rules
``_seenmask_score``, ``_stacking_score``, ``_max_cosine_score``; the convenience functions
:func:`seenmask_threshold`, :func:`calibrated_stacking`, :func:`max_cosine`); ``szn`` is the
paper's seenmask, :func:`zss.inference.nearest.predict_szn`.

Sources: ``seenmask`` is the paper's SZN (its 2-channel head, argmax); ``seenmask_threshold``
moves the same head's decision boundary; ``calibrated_stacking`` is Chao et al., "An Empirical
Study and Analysis of Generalized Zero-Shot Learning for Object Recognition in the Wild"
(ECCV 2016), §3: subtract γ from the seen classes' scores before the argmax over all classes
(SPNet's calibration, Xian et al. CVPR 2019, applies it to segmentation); ``max_cosine`` is
the novelty threshold of open-set recognition: "unseen" when the pixel is far from every
train_seen class vector (max cosine below τ). Calibrated stacking keeps the argmax's tie rule
(the lowest class index wins), so γ = 0 is exactly FCN-JE.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from zss.inference.nearest import _check_candidates, masked_argmax, predict_szn

__all__ = [
    "GATES", "Gate", "branches", "calibrated_stacking", "decision", "max_cosine",
    "register_gate", "seenmask", "seenmask_threshold", "take_branch",
]  # fmt: skip


Branches = tuple[Tensor, Tensor, Tensor, Tensor]
"""``(a, score_a, b, score_b)`` of :func:`branches`: the nearest seen and unseen candidates
and their cosine scores, each (N, H, W)."""
ScoreFn = Callable[[Branches, Tensor | None], tuple[Tensor, Tensor]]
"""A gate's decision rule: ``(branches, seenmask_logits or None) -> (z, tie_seen)``, float32
and bool (N, H, W); the pixel takes the seen branch when ``z > θ`` or ``z == θ & tie_seen``."""


@dataclass(frozen=True)
class Gate:
    """A tunable gate: its evaluation variant, its decision rule, its parameter and the
    fixed tuning grid, and how tables and readings name it.

    Attributes:
        variant: the evaluation variant (``szn_threshold``, ``szn_cs``, ``szn_maxcos``, …).
        title: its name in tables, plots and readings (``SZN-CS``).
        description: a phrase for the reading (``calibrated stacking (seen cosines minus γ)``).
        parameter: the parameter's name (``t``, ``gamma``, ``tau``), in ``metrics.json``.
        symbol: the parameter as printed (``t``, ``γ``, ``τ``).
        grid: the parameter values tried when tuning, strictly increasing.
        score: the decision rule (:data:`ScoreFn`).
        needs_seenmask: the rule reads the seenmask head (a stage-2 model).
        to_threshold: the parameter value -> θ of ``z > θ`` (identity by default).
    """

    variant: str
    title: str
    description: str
    parameter: str
    symbol: str
    grid: tuple[float, ...]
    score: ScoreFn
    needs_seenmask: bool = False
    to_threshold: Callable[[float], float] = float

    def threshold(self, value: float) -> float:
        """θ of the decision ``z > θ`` for a parameter value."""
        return self.to_threshold(value)


GATES: dict[str, Gate] = {}
"""The tunable gates, by evaluation variant (``szn`` itself has no parameter); every table
title, reading, plot and tuning pass reads this table (:func:`register_gate`)."""


def register_gate(gate: Gate) -> Gate:
    """Add a gate to :data:`GATES` (tuned on held-out training images and evaluated beside
    SZN by every run with train_unseen classes); returns it.

    Raises:
        ValueError: a variant name that is taken (by another gate or a base variant), or a
            grid that is empty or not strictly increasing.
    """
    if gate.variant in GATES or gate.variant in ("fcn_s", "fcn_je", "szn", "szn_ps"):
        raise ValueError(f"gate variant {gate.variant!r} is already taken")
    if not gate.grid or any(b <= a for a, b in zip(gate.grid, gate.grid[1:], strict=False)):
        raise ValueError(f"gate {gate.variant!r}: the grid must be non-empty and increasing")
    GATES[gate.variant] = gate
    return gate


def _grid(lo: float, hi: float, step: float) -> tuple[float, ...]:
    n = round((hi - lo) / step)
    return tuple(round(lo + i * step, 6) for i in range(n + 1))


def _logit(t: float) -> float:
    return -math.inf if t <= 0 else math.inf if t >= 1 else math.log(t / (1 - t))


def _seenmask_score(branches: Branches, seenmask_logits: Tensor | None) -> tuple[Tensor, Tensor]:
    if seenmask_logits is None or seenmask_logits.shape[1] != 2:
        raise ValueError("szn_threshold needs the seenmask logits (N, 2, H, W)")
    z = (seenmask_logits[:, 1] - seenmask_logits[:, 0]).float()
    return z, torch.zeros_like(z, dtype=torch.bool)  # a tie is unseen, as the head's argmax


def _stacking_score(branches: Branches, _: Tensor | None) -> tuple[Tensor, Tensor]:
    a, sa, b, sb = branches
    return (sa - sb).float(), a < b  # the argmax's rule on a tie: the lowest class index


def _max_cosine_score(branches: Branches, _: Tensor | None) -> tuple[Tensor, Tensor]:
    z = branches[1].float()
    return z, torch.ones_like(z, dtype=torch.bool)  # cos_a >= τ is seen


# t = sigmoid(x), x from -10 to 10 by 0.05: P(seen) from 4.5e-5 to 1 - 4.5e-5
register_gate(Gate("szn_threshold", "SZN-thr", "the seenmask with a tuned threshold t on "
                   "P(seen)", "t", "t",
                   tuple(1 / (1 + math.exp(-x)) for x in _grid(-10, 10, 0.05)),
                   _seenmask_score, needs_seenmask=True, to_threshold=_logit))
# cos_a - cos_b lies in [-2, 2]: outside it no prediction changes
register_gate(Gate("szn_cs", "SZN-CS", "calibrated stacking (seen cosines minus γ)", "gamma",
                   "γ", _grid(-2, 2, 0.01), _stacking_score))
# cosines lie in [-1, 1]: τ = -1 never says unseen
register_gate(Gate("szn_maxcos", "SZN-cos", "the max-cosine novelty threshold τ", "tau", "τ",
                   _grid(-1, 1, 0.01), _max_cosine_score))


def branches(scores: Tensor, seen: Tensor, unseen: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two candidates of every pixel.

    Args:
        scores: float (N, C, H, W), e.g. :func:`zss.inference.nearest.cosine_scores`.
        seen: bool (C,), the seen branch's classes (train_seen).
        unseen: bool (C,), the unseen branch's classes (train_unseen, plus U at test).

    Returns:
        ``(a, score_a, b, score_b)``: int64 (N, H, W) nearest seen class and its float score,
        the same for the unseen branch (ties: lowest class index, as
        :func:`~zss.inference.nearest.masked_argmax`).

    Raises:
        ValueError: an empty or malformed candidate set.
    """
    c = scores.shape[1]
    _check_candidates(seen, c, "seen_candidates")
    _check_candidates(unseen, c, "unseen_candidates")
    a, b = masked_argmax(scores, seen), masked_argmax(scores, unseen)
    return a, scores.gather(1, a[:, None])[:, 0], b, scores.gather(1, b[:, None])[:, 0]


def decision(gate: str, scores: Tensor, seen: Tensor, unseen: Tensor,
             seenmask_logits: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The decision score of a gate, its tie flags and the two branches' predictions.

    Args:
        gate: a variant of :data:`GATES`.
        scores, seen, unseen: as in :func:`branches`.
        seenmask_logits: float (N, 2, H, W) (channel 1 = seen), for a gate that reads them.

    Returns:
        ``(z, tie_seen, a, b)``: float32 z and bool tie flags (N, H, W) — seen branch when
        ``z > θ | (z == θ & tie_seen)`` — and the int64 seen / unseen predictions.

    Raises:
        ValueError: an unknown gate, or a gate that reads the seenmask without its logits.
    """
    if gate not in GATES:
        raise ValueError(f"unknown gate '{gate}'; known: {sorted(GATES)}")
    a, sa, b, sb = branches(scores, seen, unseen)
    z, tie = GATES[gate].score((a, sa, b, sb), seenmask_logits)
    return z, tie, a, b


def take_branch(z: Tensor, tie_seen: Tensor, theta: float, a: Tensor, b: Tensor) -> Tensor:
    """``a`` where ``z > θ`` (or ``z == θ`` and ``tie_seen``), else ``b``; all (N, H, W)."""
    is_seen = (z > theta) | ((z == theta) & tie_seen)
    return torch.where(is_seen, a, b)


def seenmask(scores: Tensor, seenmask_logits: Tensor, seen: Tensor, unseen: Tensor) -> Tensor:
    """The paper's gate (SZN): the seenmask head's argmax (a tie counts as unseen).
    Shapes as :func:`zss.inference.nearest.predict_szn`, which it is."""
    return predict_szn(scores, seenmask_logits, seen, unseen)


def seenmask_threshold(scores: Tensor, seenmask_logits: Tensor, seen: Tensor, unseen: Tensor,
                       t: float) -> Tensor:
    """The seenmask head with a moved boundary: "seen" when P(seen) = softmax(logits)[1] > t.

    Compared in logit space (``l_seen − l_unseen > log(t / (1 − t))``), so t = 0.5 is exactly
    :func:`seenmask`; t ≤ 0 is seen everywhere, t ≥ 1 unseen everywhere.

    Args:
        scores: float (N, C, H, W); seenmask_logits: float (N, 2, H, W), channel 1 = seen;
        seen, unseen: bool (C,) branch classes; t: threshold on P(seen).

    Returns:
        int64 (N, H, W) class indices.
    """
    z, tie, a, b = decision("szn_threshold", scores, seen, unseen, seenmask_logits)
    return take_branch(z, tie, GATES["szn_threshold"].threshold(t), a, b)


def calibrated_stacking(scores: Tensor, seen: Tensor, unseen: Tensor, gamma: float) -> Tensor:
    """Calibrated stacking (Chao et al., ECCV 2016): the argmax over seen ∪ unseen candidates
    after subtracting γ from the seen classes' scores; ties go to the lowest class index, so
    γ = 0 is FCN-JE over those candidates. γ > 2 (cosines) never picks a seen class, γ < −2
    always does.

    Args:
        scores: float (N, C, H, W) cosine scores; seen, unseen: bool (C,); gamma: float.

    Returns:
        int64 (N, H, W) class indices.
    """
    z, tie, a, b = decision("szn_cs", scores, seen, unseen)
    return take_branch(z, tie, float(gamma), a, b)


def max_cosine(scores: Tensor, seen: Tensor, unseen: Tensor, tau: float) -> Tensor:
    """Novelty threshold: "unseen" when the highest cosine to the seen (train_seen) classes is
    below τ, else the nearest seen class. τ = −1 never says unseen (cosines ≥ −1), τ > 1
    always does.

    Args:
        scores: float (N, C, H, W) cosine scores in [−1, 1]; seen, unseen: bool (C,);
        tau: float.

    Returns:
        int64 (N, H, W) class indices.
    """
    z, tie, a, b = decision("szn_maxcos", scores, seen, unseen)
    return take_branch(z, tie, float(tau), a, b)
