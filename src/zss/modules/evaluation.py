"""Evaluation of every model variant from one forward pass (FCN-S, FCN-JE, SZN, SZN-PS and
the tuned gates SZN-thr, SZN-CS, SZN-cos).

Candidate sets (DESIGN §1):

- FCN-S: argmax over train_seen (it only knows those classes).
- FCN-JE: nearest class embedding among **all** classes.
- SZN: the seenmask picks, per pixel, the nearest train_seen class ("seen") or the nearest
  of train_unseen ∪ U ("unseen").
- SZN-PS: the same with the seenmask taken from the ground truth (upper bound).
- ``szn_threshold``, ``szn_cs``, ``szn_maxcos``: SZN's two branches with another gate
  (:mod:`zss.models.gates`), its parameter tuned on held-out training images
  (:mod:`zss.modules.tuning`).

Every variant that chooses between the branches (SZN and the gates) also gets the seenmask
scores of its decision (:func:`zss.metrics.seenmask_scores`; a pixel is "seen" when its
prediction is a train_seen class). With U classes, the test pass also sweeps calibrated
stacking's γ (S = train_seen ∪ train_unseen against U, as Chao et al. define the curve) over
:data:`CURVE_GAMMAS` for the seen–unseen curve and its AUSUC
(:meth:`ZeroShotEvaluator.tradeoff`) — a test-set analysis, never used to choose anything.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping

import torch
from torch import nn
from torchmetrics.aggregation import SumMetric

from zss.data.splits import ClassSplit
from zss.metrics import (
    PAPER_KEYS,
    SeenmaskCounts,
    confusion_matrix_metric,
    per_class_iou,
    seenmask_scores,
    zero_shot_scores,
)
from zss.models.gates import GATES, decision, take_branch
from zss.models.predict import (
    cosine_scores,
    masked_argmax,
    predict_fcn_je,
    predict_szn,
    predict_szn_ps,
)
from zss.sweep import ThresholdSweep, ausuc

VARIANTS = ("fcn_s", "fcn_je", "szn", "szn_ps", *GATES)
GATED = ("szn", *GATES)
"""The variants whose prediction is one of SZN's two branches, chosen by a gate."""
CURVE_GAMMAS = (-2.05, *GATES["szn_cs"].grid, 2.05)
"""γ of the test pass's seen–unseen curve: beyond ±2 no cosine prediction changes, so the
ends are the seen-only and the unseen-only predictions."""


def predict_variants(out: dict[str, torch.Tensor], labels: torch.Tensor,
                     scores: torch.Tensor | None, split: ClassSplit,
                     variants: tuple[str, ...],
                     gates: Mapping[str, float] | None = None) -> dict[str, torch.Tensor]:
    """Label maps of the requested variants from one network output.

    Args:
        out: network outputs: ``"logits"`` (N, C, H, W) for FCN-S, ``"embedding"``
            (N, j, H, W) for the embedding variants, ``"seenmask"`` (N, 2, H, W) for SZN.
        labels: int64 (N, H, W) ground truth (255 = void); used only by SZN-PS.
        scores: float (N, C, H, W) cosine scores of ``out["embedding"]`` against the class
            vectors (:func:`variant_scores`), or None for FCN-S alone.
        split: the class split fixing the candidate sets.
        variants: names among :data:`VARIANTS`.
        gates: ``{gate variant: parameter value}`` (t, γ or τ) for the gate variants asked
            for (:data:`zss.models.gates.GATES`).

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
    if set(variants) & {"fcn_je", *GATED, "szn_ps"}:
        if "fcn_je" in variants:
            preds["fcn_je"] = predict_fcn_je(scores, everything)
        if "szn" in variants:
            preds["szn"] = predict_szn(scores, out["seenmask"], train_seen, ~train_seen)
        if "szn_ps" in variants:
            preds["szn_ps"] = predict_szn_ps(scores, labels, train_seen, ~train_seen)
        for v in (v for v in variants if v in GATES):
            z, tie, a, b = decision(v, scores, train_seen, ~train_seen, out.get("seenmask"))
            preds[v] = take_branch(z, tie, GATES[v].threshold((gates or {})[v]), a, b)
    return preds


def variant_scores(out: dict[str, torch.Tensor],
                   class_embeddings: torch.Tensor | None) -> torch.Tensor | None:
    """The float (N, C, H, W) cosine scores every embedding variant and the γ sweep read
    (computed once per batch), or None for FCN-S (no class vectors)."""
    if class_embeddings is None:
        return None
    return cosine_scores(out["embedding"], class_embeddings)


def curve_inputs(scores: torch.Tensor, split: ClassSplit) -> tuple[torch.Tensor, ...]:
    """Calibrated stacking's ``(z, tie_seen, a, b)`` (:func:`zss.models.gates.decision`) for
    the test pass's γ sweep, from the batch's :func:`variant_scores`, as Chao et al. (ECCV
    2016, §3 and §4.2) define the seen–unseen curve: γ is subtracted from the scores of the
    classes with training labels, S = train_seen ∪ train_unseen (the curve's seen axis),
    against U (its unseen axis). (The ``szn_cs`` gate calibrates SZN's branches instead,
    train_seen against train_unseen ∪ U, so its operating point need not lie on the curve.)
    γ = 0 is FCN-JE."""
    seen = split.mask(split.seen).to(scores.device)
    return decision("szn_cs", scores, seen, ~seen)


class ZeroShotEvaluator(nn.Module):
    """Dataset-level confusion matrices for each variant, plus the seenmask counts of every
    gated variant, the γ sweep of calibrated stacking (with FCN-JE, on a split with U
    classes) and the number of images evaluated.

    ``update`` once per batch, ``compute`` at the end of the split (sums across DDP ranks),
    ``reset`` before the next split. ``num_images()`` is the number of images counted over
    all ranks: under DDP every image must be counted exactly once (the data module shards
    val/test without padding).
    """

    def __init__(self, split: ClassSplit, variants: tuple[str, ...]) -> None:
        super().__init__()
        unknown = set(variants) - set(VARIANTS)
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}; known: {VARIANTS}")
        self.split = split
        self.variants = tuple(variants)
        self.matrices = nn.ModuleDict({v: confusion_matrix_metric(split.num_classes)
                                       for v in self.variants})
        self.seenmask = nn.ModuleDict({v: SeenmaskCounts(split.num_classes)
                                       for v in self.variants if v in GATED})
        self.curve = (ThresholdSweep(CURVE_GAMMAS, split.num_classes)
                      if "fcn_je" in variants and split.unseen else None)
        self.images = SumMetric()

    def update(self, preds: dict[str, torch.Tensor], labels: torch.Tensor,
               curve: tuple[torch.Tensor, ...] | None = None) -> None:
        """Add a batch: ``preds`` of every variant, int64 (N, H, W) ``labels``, and for the γ
        sweep :func:`curve_inputs` of the same batch (when :attr:`curve` is set)."""
        for v in self.variants:
            self.matrices[v].update(preds[v], labels)
        self.images.update(labels.shape[0])
        if self.seenmask:
            train_seen = self.split.mask(self.split.train_seen).to(labels.device)
            for v, counts in self.seenmask.items():  # "seen" = a train_seen prediction
                counts.update(train_seen[preds[v]].long(), labels)
        if self.curve is not None and curve is not None:
            z, tie, a, b = curve
            self.curve.update(z, tie, a, b, labels)

    def tradeoff(self) -> dict[str, object] | None:
        """The seen–unseen curve of calibrated stacking on this split (None without U; S
        calibrated against U, :func:`curve_inputs`): ``gamma``, ``miou_seen`` (over S) and
        ``miou_unseen`` (over U) per γ of :data:`CURVE_GAMMAS` (NaN where undefined) and its
        ``ausuc`` (:func:`zss.sweep.ausuc`), all fractions in [0, 1]."""
        if self.curve is None:
            return None
        scores = [zero_shot_scores(h, self.split) for h in self.curve.compute()]
        seen = [s["miou_seen"] for s in scores]
        unseen = [s["miou_unseen"] for s in scores]
        return {"gamma": list(CURVE_GAMMAS), "miou_seen": seen, "miou_unseen": unseen,
                "ausuc": ausuc(unseen, seen)}

    def compute(self) -> tuple[dict[str, dict[str, float]], list[dict[str, object]]]:
        """Returns ``({variant: scores}, per-class rows)``; each row has ``class``, ``set``
        (train_seen / train_unseen / unseen) and ``iou/<variant>`` for every variant."""
        scores, table = {}, []
        ious = {}
        for v in self.variants:
            hist = self.matrices[v].compute()
            scores[v] = zero_shot_scores(hist, self.split)
            ious[v] = per_class_iou(hist)
        for v, counts in self.seenmask.items():
            scores[v].update(seenmask_scores(counts.compute(), self.split))
        for i, name in enumerate(self.split.class_names):
            group = ("train_seen" if name in self.split.train_seen else
                     "train_unseen" if name in self.split.train_unseen else "unseen")
            table.append({"class": name, "set": group,
                          **{f"iou/{v}": float(ious[v][i]) for v in self.variants}})
        return scores, table

    def num_images(self) -> int:
        """Images counted since the last reset, summed over DDP ranks."""
        return int(self.images.compute())

    def reset(self) -> None:
        for m in self.matrices.values():
            m.reset()
        self.images.reset()
        for counts in self.seenmask.values():
            counts.reset()
        if self.curve is not None:
            self.curve.reset()


def format_table(scores: dict[str, dict[str, float]], table: list[dict[str, object]]) -> str:
    """Human-readable per-class IoU table followed by the summary scores, in percent."""
    variants = list(scores)
    widths = {v: max(9, len(v) + 2) for v in variants}  # (szn_threshold is 13 letters)
    head = f"{'class':<14}{'set':<14}" + "".join(f"{v:>{widths[v]}}" for v in variants)
    lines = [head, "-" * len(head)]

    def pct(x: float, v: str) -> str:
        return f"{'nan':>{widths[v]}}" if math.isnan(x) else f"{100 * x:{widths[v]}.1f}"

    for row in table:
        lines.append(f"{row['class']:<14}{row['set']:<14}"
                     + "".join(pct(row[f"iou/{v}"], v) for v in variants))
    lines.append("-" * len(head))
    keys = ["pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "miou_unseen",
            "miou_train_seen", "miou_train_unseen", "hiou", "miou_nan0", "miou_seen_nan0",
            "miou_unseen_nan0", "hiou_nan0"]
    if any("paper/hiou" in s for s in scores.values()):
        keys += list(PAPER_KEYS)
    gated = next((v for v in GATED if v in scores), None)
    if gated:  # the seenmask scores of SZN and of every gate
        keys += [k for k in scores[gated] if k.startswith("seenmask_")]
    for k in keys:
        lines.append(f"{k:<28}" + "".join(pct(scores[v].get(k, math.nan), v) for v in variants))
    return "\n".join(lines)


def table_csv(table: list[dict[str, object]]) -> str:
    """The per-class rows of :meth:`ZeroShotEvaluator.compute` as CSV text, in the units of
    the printed table: columns ``class``, ``set``, then ``iou_percent/<variant>`` (IoU × 100,
    full precision; empty for NaN, a class absent from prediction and ground truth)."""
    f = io.StringIO(newline="")
    rows = [{k.replace("iou/", "iou_percent/", 1): (v if not k.startswith("iou/") else
                                                     "" if math.isnan(v) else 100 * v)
             for k, v in row.items()} for row in table]
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return f.getvalue()
