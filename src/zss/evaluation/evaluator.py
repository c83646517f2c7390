"""The dataset-level evaluation of every variant (:mod:`zss.inference.variants`) from one
forward pass per test batch.

Every variant that chooses between the branches (SZN and the gates) also gets the seenmask
scores of its decision (:func:`zss.evaluation.metrics.seenmask_scores`; a pixel is "seen" when its
prediction is a train_seen class). With U classes, the test pass also sweeps calibrated
stacking's γ (S = train_seen ∪ train_unseen against U, as Chao et al. define the curve) over
:data:`CURVE_GAMMAS` for the seen–unseen curve and its AUSUC
(:meth:`ZeroShotEvaluator.tradeoff`) — a test-set analysis, never used to choose anything.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torchmetrics.aggregation import SumMetric

from zss.data.splits import ClassSplit
from zss.evaluation.metrics import (
    SeenmaskCounts,
    confusion_matrix_metric,
    per_class_iou,
    seenmask_scores,
    zero_shot_scores,
)
from zss.evaluation.threshold_sweep import ThresholdSweep, ausuc
from zss.inference.gates import GATES, decision
from zss.inference.variants import gated
from zss.inference.variants import variants as known_variants

CURVE_GAMMAS = (-2.05, *GATES["szn_cs"].grid, 2.05)
"""γ of the test pass's seen–unseen curve: beyond ±2 no cosine prediction changes, so the
ends are the seen-only and the unseen-only predictions."""



def curve_inputs(scores: torch.Tensor, split: ClassSplit) -> tuple[torch.Tensor, ...]:
    """Calibrated stacking's ``(z, tie_seen, a, b)`` (:func:`zss.inference.gates.decision`) for
    the test pass's γ sweep, from the batch's :func:`variant_scores`, as Chao et al. (ECCV
    2016, §3 and §4.2) define the seen–unseen curve: γ is subtracted from the scores of the
    classes with training labels, S = train_seen ∪ train_unseen (the curve's seen axis),
    against U (its unseen axis). (The ``szn_cs`` gate calibrates SZN's branches instead,
    train_seen against train_unseen ∪ U, so its operating point need not lie on the curve.)
    γ = 0 is FCN-JE."""
    seen = split.mask(split.seen).to(scores.device)
    return decision("szn_cs", scores, seen, ~seen)


@dataclass
class TestResult:
    """What one evaluation of the test split gives (:meth:`ZeroShotEvaluator.result`), the
    one object the run's files, printout and dashboards are written from
    (:mod:`zss.evaluation.run_files`).

    Attributes:
        scores: ``{variant: {metric: value}}``, every reading (fractions in [0, 1], NaN where
            undefined; :func:`zss.evaluation.metrics.zero_shot_scores`, the seenmask scores of
            the gated variants).
        table: per-class rows: ``class``, ``set`` and ``iou/<variant>`` per variant.
        matrices: ``{variant: int64 (C, C)}`` dataset-level confusion matrices (rows = truth).
        tradeoff: the seen–unseen curve and its AUSUC (:meth:`ZeroShotEvaluator.tradeoff`),
            None without U classes.
        images: test images counted, over all DDP ranks.
        gate_curves: per evaluated gate, its own test curve's best point: ``parameter``,
            ``best_value``, ``best_hiou``, ``best_miou_seen``, ``best_miou_unseen`` (the
            gate's parameter swept on the test split: a test-set analysis, never used to
            choose anything).
    """

    scores: dict[str, dict[str, float]]
    table: list[dict[str, object]]
    matrices: dict[str, torch.Tensor]
    tradeoff: dict[str, object] | None
    images: int
    gate_curves: dict[str, dict[str, float]] = field(default_factory=dict)

    def gate_gaps(self, tuned: dict[str, float]) -> dict[str, dict[str, float]]:
        """Per gate of :attr:`gate_curves`: its curve's best point, the ``tuned`` value's
        test hIoU and the ``gap`` between them (hIoU fractions; a test-set analysis)."""
        out = {}
        for g, c in self.gate_curves.items():
            hiou = self.scores[g]["hiou"]
            out[g] = {**c, "tuned_value": tuned.get(g), "tuned_hiou": hiou,
                      "gap": c["best_hiou"] - hiou}
        return out

    def metrics(self) -> dict[str, float]:
        """The flat ``test/<variant>/<metric>`` keys of ``metrics.json`` (and the AUSUC as
        ``test/fcn_je/ausuc``)."""
        flat = {f"test/{v}/{k}": x for v, s in self.scores.items() for k, x in s.items()}
        if self.tradeoff is not None:
            flat["test/fcn_je/ausuc"] = self.tradeoff["ausuc"]
        return flat


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
        unknown = set(variants) - set(known_variants())
        if unknown:
            raise ValueError(f"unknown variants {sorted(unknown)}; known: {known_variants()}")
        self.split = split
        self.variants = tuple(variants)
        self.matrices = nn.ModuleDict({v: confusion_matrix_metric(split.num_classes)
                                       for v in self.variants})
        self.seenmask = nn.ModuleDict({v: SeenmaskCounts(split.num_classes)
                                       for v in self.variants if v in gated()})
        self.curve = (ThresholdSweep(CURVE_GAMMAS, split.num_classes)
                      if "fcn_je" in variants and split.unseen else None)
        self.gate_curves = nn.ModuleDict({  # each gate's own test curve (an analysis)
            g: ThresholdSweep([GATES[g].threshold(p) for p in GATES[g].grid], split.num_classes)
            for g in self.variants if g in GATES})
        self.images = SumMetric()

    def update(self, preds: dict[str, torch.Tensor], labels: torch.Tensor,
               curve: tuple[torch.Tensor, ...] | None = None,
               decisions: dict[str, tuple[torch.Tensor, ...]] | None = None) -> None:
        """Add a batch: ``preds`` of every variant, int64 (N, H, W) ``labels``, for the γ
        sweep :func:`curve_inputs` of the same batch (when :attr:`curve` is set), and for the
        gates' own test curves their decisions
        (:func:`zss.inference.variants.gate_decisions`)."""
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
        for g, sweep in self.gate_curves.items():
            if decisions is not None and g in decisions:
                sweep.update(*decisions[g], labels)

    def tradeoff(self) -> dict[str, object] | None:
        """The seen–unseen curve of calibrated stacking on this split (None without U; S
        calibrated against U, :func:`curve_inputs`): ``gamma``, ``miou_seen`` (over S) and
        ``miou_unseen`` (over U) per γ of :data:`CURVE_GAMMAS` (NaN where undefined) and its
        ``ausuc`` (:func:`zss.evaluation.threshold_sweep.ausuc`), all fractions in [0, 1]."""
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

    def result(self) -> TestResult:
        """Everything :meth:`compute` and :meth:`tradeoff` give, with the matrices and the
        image count, as one :class:`TestResult` (collective under DDP: every rank calls it)."""
        scores, table = self.compute()
        curves = {}
        for g, sweep in self.gate_curves.items():
            hiou = [zero_shot_scores(h, self.split) for h in sweep.compute()]
            defined = [i for i, s in enumerate(hiou) if not math.isnan(s["hiou"])]
            if defined:
                i = max(defined, key=lambda k: hiou[k]["hiou"])  # the first of equal maxima
                curves[g] = {"parameter": GATES[g].parameter, "best_value": GATES[g].grid[i],
                             "best_hiou": hiou[i]["hiou"], "best_miou_seen": hiou[i]["miou_seen"],
                             "best_miou_unseen": hiou[i]["miou_unseen"]}
        return TestResult(scores, table, {v: m.compute() for v, m in self.matrices.items()},
                          self.tradeoff(), self.num_images(), curves)

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
        for sweep in self.gate_curves.values():
            sweep.reset()
