"""Evaluation of every model variant from one forward pass (FCN-S, FCN-JE, SZN, SZN-PS).

Candidate sets (DESIGN §1):

- FCN-S: argmax over train_seen (it only knows those classes).
- FCN-JE: nearest class embedding among **all** classes.
- SZN: the seenmask picks, per pixel, the nearest train_seen class ("seen") or the nearest
  of train_unseen ∪ U ("unseen").
- SZN-PS: the same with the seenmask taken from the ground truth (upper bound).
"""

from __future__ import annotations

import csv
import io
import math

import torch
from torch import nn
from torchmetrics.aggregation import SumMetric

from zss.data.splits import ClassSplit
from zss.metrics import (
    SeenmaskCounts,
    confusion_matrix_metric,
    per_class_iou,
    seenmask_scores,
    zero_shot_scores,
)
from zss.models.predict import (
    cosine_scores,
    masked_argmax,
    predict_fcn_je,
    predict_szn,
    predict_szn_ps,
)

VARIANTS = ("fcn_s", "fcn_je", "szn", "szn_ps")


def predict_variants(out: dict[str, torch.Tensor], labels: torch.Tensor,
                     class_embeddings: torch.Tensor | None, split: ClassSplit,
                     variants: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Label maps of the requested variants from one network output.

    Args:
        out: network outputs: ``"logits"`` (N, C, H, W) for FCN-S, ``"embedding"``
            (N, j, H, W) for the embedding variants, ``"seenmask"`` (N, 2, H, W) for SZN.
        labels: int64 (N, H, W) ground truth (255 = void); used only by SZN-PS.
        class_embeddings: float (C, j) class vectors, or None for FCN-S alone.
        split: the class split fixing the candidate sets.
        variants: names among :data:`VARIANTS`.

    Returns:
        ``{variant: int64 (N, H, W)}`` predicted class indices.
    """
    dev = labels.device
    train_seen = split.mask(split.train_seen).to(dev)
    everything = torch.ones_like(train_seen)
    preds = {}
    if "fcn_s" in variants:
        preds["fcn_s"] = masked_argmax(out["logits"], train_seen)
    if set(variants) & {"fcn_je", "szn", "szn_ps"}:
        scores = cosine_scores(out["embedding"], class_embeddings)
        if "fcn_je" in variants:
            preds["fcn_je"] = predict_fcn_je(scores, everything)
        if "szn" in variants:
            preds["szn"] = predict_szn(scores, out["seenmask"], train_seen, ~train_seen)
        if "szn_ps" in variants:
            preds["szn_ps"] = predict_szn_ps(scores, labels, train_seen, ~train_seen)
    return preds


class ZeroShotEvaluator(nn.Module):
    """Dataset-level confusion matrices for each variant, plus the seenmask's counts and the
    number of images evaluated.

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
        self.seenmask = SeenmaskCounts(split.num_classes) if "szn" in variants else None
        self.images = SumMetric()

    def update(self, preds: dict[str, torch.Tensor], labels: torch.Tensor,
               seenmask_logits: torch.Tensor | None = None) -> None:
        for v in self.variants:
            self.matrices[v].update(preds[v], labels)
        self.images.update(labels.shape[0])
        if self.seenmask is not None and seenmask_logits is not None:
            self.seenmask.update(seenmask_logits.argmax(1), labels)

    def compute(self) -> tuple[dict[str, dict[str, float]], list[dict[str, object]]]:
        """Returns ``({variant: scores}, per-class rows)``; each row has ``class``, ``set``
        (train_seen / train_unseen / unseen) and ``iou/<variant>`` for every variant."""
        scores, table = {}, []
        ious = {}
        for v in self.variants:
            hist = self.matrices[v].compute()
            scores[v] = zero_shot_scores(hist, self.split)
            ious[v] = per_class_iou(hist)
        if self.seenmask is not None:
            scores["szn"].update(seenmask_scores(self.seenmask.compute(), self.split))
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
        if self.seenmask is not None:
            self.seenmask.reset()


def format_table(scores: dict[str, dict[str, float]], table: list[dict[str, object]]) -> str:
    """Human-readable per-class IoU table followed by the summary scores, in percent."""
    variants = list(scores)
    head = f"{'class':<14}{'set':<14}" + "".join(f"{v:>9}" for v in variants)
    lines = [head, "-" * len(head)]

    def pct(x: float) -> str:
        return f"{'nan':>9}" if math.isnan(x) else f"{100 * x:9.1f}"

    for row in table:
        lines.append(f"{row['class']:<14}{row['set']:<14}"
                     + "".join(pct(row[f"iou/{v}"]) for v in variants))
    lines.append("-" * len(head))
    keys = ["pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "miou_unseen",
            "miou_train_seen", "miou_train_unseen", "hiou", "miou_unseen_nan0"]
    if "szn" in scores:
        keys += [k for k in scores["szn"] if k.startswith("seenmask_")]
    for k in keys:
        lines.append(f"{k:<28}" + "".join(pct(scores[v].get(k, math.nan)) for v in variants))
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
