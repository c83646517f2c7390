"""The evaluation variants of SZN at test time and their predictions from one network output
(FCN-S, FCN-JE, SZN, SZN-PS and one variant per gate of :data:`zss.inference.gates.GATES`).

Candidate sets:

- FCN-S: argmax over train_seen (it only knows those classes).
- FCN-JE: nearest class embedding among **all** classes.
- SZN: the seenmask picks, per pixel, the nearest train_seen class ("seen") or the nearest
  of train_unseen ∪ U ("unseen").
- SZN-PS: the same with the seenmask taken from the ground truth (upper bound).
- ``szn_threshold``, ``szn_cs``, ``szn_maxcos``: SZN's two branches with another gate
  (:mod:`zss.inference.gates`), its parameter tuned on held-out training images
  (:mod:`zss.evaluation.tuning`).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from zss.data.splits import ClassSplit
from zss.inference.gates import GATES, decision, take_branch
from zss.inference.nearest import (
    cosine_scores,
    masked_argmax,
    predict_fcn_je,
    predict_szn,
    predict_szn_ps,
)

TITLES = {"fcn_s": "FCN-S", "fcn_je": "FCN-JE", "szn": "SZN", "szn_ps": "SZN-PS"}
"""The paper's variants and their names in tables, plots and readings; each gate of
:data:`zss.inference.gates.GATES` adds its own (:func:`title`)."""


def variants() -> tuple[str, ...]:
    """Every evaluation variant: the paper's (:data:`TITLES`), then one per registered gate."""
    return (*TITLES, *GATES)


def gated() -> tuple[str, ...]:
    """The variants whose prediction is one of SZN's two branches, chosen by a gate: SZN
    (its seenmask) and every registered gate."""
    return ("szn", *GATES)


def title(variant: str) -> str:
    """A variant's name in tables, plots and readings (``szn_cs`` -> ``SZN-CS``); an unknown
    name is returned as it is."""
    if variant in GATES:
        return GATES[variant].title
    return TITLES.get(variant, variant)


def predict_variants(out: dict[str, torch.Tensor], labels: torch.Tensor,
                     scores: torch.Tensor | None, split: ClassSplit,
                     variants: tuple[str, ...],
                     gates: Mapping[str, float] | None = None,
                     decisions: Mapping[str, tuple[torch.Tensor, ...]] | None = None,
                     ) -> dict[str, torch.Tensor]:
    """Label maps of the requested variants from one network output.

    Args:
        out: network outputs: ``"logits"`` (N, C, H, W) for FCN-S, ``"embedding"``
            (N, j, H, W) for the embedding variants, ``"seenmask"`` (N, 2, H, W) for SZN.
        labels: int64 (N, H, W) ground truth (255 = void); used only by SZN-PS.
        scores: float (N, C, H, W) cosine scores of ``out["embedding"]`` against the class
            vectors (:func:`variant_scores`), or None for FCN-S alone.
        split: the class split fixing the candidate sets.
        variants: names among :func:`variants`.
        gates: ``{gate variant: parameter value}`` (t, γ or τ) for the gate variants asked
            for (:data:`zss.inference.gates.GATES`).
        decisions: the gates' :func:`gate_decisions` of this batch, when computed already.

    Returns:
        ``{variant: int64 (N, H, W)}`` predicted class indices.

    Raises:
        KeyError: a gate variant without its parameter in ``gates``.
    """
    dev = labels.device
    train_seen = split.mask(split.train_seen).to(dev)
    everything = torch.ones_like(train_seen)
    preds = {}
    if "fcn_s" in variants:
        preds["fcn_s"] = masked_argmax(out["logits"], train_seen)
    if set(variants) & {"fcn_je", *gated(), "szn_ps"}:
        if "fcn_je" in variants:
            preds["fcn_je"] = predict_fcn_je(scores, everything)
        if "szn" in variants:
            preds["szn"] = predict_szn(scores, out["seenmask"], train_seen, ~train_seen)
        if "szn_ps" in variants:
            preds["szn_ps"] = predict_szn_ps(scores, labels, train_seen, ~train_seen)
        if decisions is None:
            decisions = gate_decisions(out, scores, split, variants)
        for v, (z, tie, a, b) in decisions.items():
            preds[v] = take_branch(z, tie, GATES[v].threshold((gates or {})[v]), a, b)
    return preds


def gate_decisions(out: dict[str, torch.Tensor], scores: torch.Tensor, split: ClassSplit,
                   variants: tuple[str, ...]) -> dict[str, tuple[torch.Tensor, ...]]:
    """``{gate variant: (z, tie_seen, a, b)}`` (:func:`zss.inference.gates.decision`) for the
    gate variants among ``variants``, SZN's branches as at test: seen = train_seen, unseen =
    every other class. Computed once per batch for the predictions and the test-set curves."""
    train_seen = split.mask(split.train_seen).to(scores.device)
    return {v: decision(v, scores, train_seen, ~train_seen, out.get("seenmask"))
            for v in variants if v in GATES}


def variant_scores(out: dict[str, torch.Tensor],
                   class_embeddings: torch.Tensor | None) -> torch.Tensor | None:
    """The float (N, C, H, W) cosine scores every embedding variant and the γ sweep read
    (computed once per batch), or None for FCN-S (no class vectors)."""
    if class_embeddings is None:
        return None
    return cosine_scores(out["embedding"], class_embeddings)
