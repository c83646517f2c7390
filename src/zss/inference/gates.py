"""Seen/unseen gates: per pixel, the best seen candidate or the best unseen one (pure functions).

Every gate chooses between the two branches of SZN (DESIGN §1) — the nearest seen candidate
``a`` (train_seen) and the nearest unseen candidate ``b`` (train_unseen ∪ U at test) — from
what the frozen model already computes. Each is written as a *decision score* ``z`` per pixel
and a threshold θ: the pixel takes the seen branch when ``z > θ``, or when ``z == θ`` and
its tie flag is set. Written this way, one pass can count the confusion matrices of a whole
grid of θ at once (:class:`zss.evaluation.threshold_sweep.ThresholdSweep`).

============================  =====================  =============================  ========
gate (variant)                 z                      seen when                      tie
============================  =====================  =============================  ========
``seenmask`` (``szn``)         l_seen − l_unseen      z > 0 (the head's argmax)      unseen
``seenmask_threshold``         l_seen − l_unseen      P(seen) > t, i.e. z > logit t  unseen
(``szn_threshold``)
``calibrated_stacking``        cos_a − cos_b          cos_a − γ > cos_b              lowest
(``szn_cs``)                                                                         index
``max_cosine`` (``szn_maxcos``) cos_a                 cos_a ≥ τ                      seen
============================  =====================  =============================  ========

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
from dataclasses import dataclass

import torch
from torch import Tensor

from zss.inference.nearest import _check_candidates, masked_argmax, predict_szn

__all__ = [
    "GATES", "Gate", "branches", "calibrated_stacking", "decision", "max_cosine",
    "seenmask", "seenmask_threshold", "take_branch",
]  # fmt: skip


@dataclass(frozen=True)
class Gate:
    """A tunable gate: its evaluation variant, its parameter and the fixed tuning grid.

    Attributes:
        variant: the evaluation variant (``szn_threshold``, ``szn_cs``, ``szn_maxcos``).
        parameter: the parameter's name (``t``, ``gamma``, ``tau``).
        grid: the parameter values tried when tuning, increasing.
        needs_seenmask: the gate reads the seenmask head (a stage-2 model).
    """

    variant: str
    parameter: str
    grid: tuple[float, ...]
    needs_seenmask: bool = False

    def threshold(self, value: float) -> float:
        """θ of the decision ``z > θ`` for a parameter value (``logit t`` for ``t``)."""
        if self.parameter == "t":
            return -math.inf if value <= 0 else math.inf if value >= 1 else math.log(
                value / (1 - value))
        return float(value)


def _grid(lo: float, hi: float, step: float) -> tuple[float, ...]:
    n = round((hi - lo) / step)
    return tuple(round(lo + i * step, 6) for i in range(n + 1))


GATES: dict[str, Gate] = {
    # t = sigmoid(θ), θ from -10 to 10 by 0.05: P(seen) from 4.5e-5 to 1 - 4.5e-5
    "szn_threshold": Gate("szn_threshold", "t",
                          tuple(1 / (1 + math.exp(-x)) for x in _grid(-10, 10, 0.05)),
                          needs_seenmask=True),
    # cos_a - cos_b lies in [-2, 2]: outside it no prediction changes
    "szn_cs": Gate("szn_cs", "gamma", _grid(-2, 2, 0.01)),
    # cosines lie in [-1, 1]: τ = -1 never says unseen
    "szn_maxcos": Gate("szn_maxcos", "tau", _grid(-1, 1, 0.01)),
}
"""The tunable gates, by evaluation variant (``szn`` itself has no parameter)."""


def branches(scores: Tensor, seen: Tensor, unseen: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The two candidates of every pixel.

    Args:
        scores: float (N, C, H, W), e.g. :func:`zss.models.cosine_scores`.
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
        seenmask_logits: float (N, 2, H, W) (channel 1 = seen); needed by ``szn_threshold``.

    Returns:
        ``(z, tie_seen, a, b)``: float32 z and bool tie flags (N, H, W) — seen branch when
        ``z > θ | (z == θ & tie_seen)`` — and the int64 seen / unseen predictions.

    Raises:
        ValueError: an unknown gate, or ``szn_threshold`` without seenmask logits.
    """
    a, sa, b, sb = branches(scores, seen, unseen)
    if gate == "szn_threshold":
        if seenmask_logits is None or seenmask_logits.shape[1] != 2:
            raise ValueError("szn_threshold needs the seenmask logits (N, 2, H, W)")
        z = (seenmask_logits[:, 1] - seenmask_logits[:, 0]).float()
        tie = torch.zeros_like(z, dtype=torch.bool)
    elif gate == "szn_cs":
        z, tie = (sa - sb).float(), a < b
    elif gate == "szn_maxcos":
        z = sa.float()
        tie = torch.ones_like(z, dtype=torch.bool)
    else:
        raise ValueError(f"unknown gate '{gate}'; known: {sorted(GATES)}")
    return z, tie, a, b


def take_branch(z: Tensor, tie_seen: Tensor, theta: float, a: Tensor, b: Tensor) -> Tensor:
    """``a`` where ``z > θ`` (or ``z == θ`` and ``tie_seen``), else ``b``; all (N, H, W)."""
    is_seen = (z > theta) | ((z == theta) & tie_seen)
    return torch.where(is_seen, a, b)


def seenmask(scores: Tensor, seenmask_logits: Tensor, seen: Tensor, unseen: Tensor) -> Tensor:
    """The paper's gate (SZN): the seenmask head's argmax (a tie counts as unseen).
    Shapes as :func:`zss.models.predict_szn`, which it is."""
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
