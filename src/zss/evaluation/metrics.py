"""Dataset-level segmentation metrics for zero-shot evaluation (docs/evaluation.md, "Metrics").

One confusion matrix (rows = ground truth, columns = prediction) is summed over the whole
split with torchmetrics' ``MulticlassConfusionMatrix`` (void counted as an extra class and
dropped, :func:`confusion_matrix_metric`); under DDP
torchmetrics sums it across ranks. Every score is then a pure function of that matrix,
following FCN's ``label_accuracy_score`` (Long et al., ``score.py`` of the FCN code):

- pixel accuracy      ``diag.sum() / hist.sum()``
- mean class accuracy ``nanmean(diag / hist.sum(1))``
- mIoU                ``nanmean(diag / (hist.sum(1) + hist.sum(0) - diag))``
- frequency-weighted IoU ``sum(freq[freq > 0] * iou[freq > 0])``, ``freq = hist.sum(1) / hist.sum()``

A class with an empty union has IoU NaN and is left out of the means; a class that is
predicted but absent from the ground truth has IoU 0 and counts. Means over an empty set of
classes are NaN.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics import Metric
from torchmetrics.classification import MulticlassConfusionMatrix

from zss.data.splits import IGNORE_INDEX, ClassSplit

__all__ = [
    "per_class_iou", "per_class_accuracy", "segmentation_scores", "zero_shot_scores",
    "paper_scores", "PAPER_KEYS", "seenmask_scores", "harmonic_mean", "confusion_matrix_metric", "SeenmaskCounts",
]  # fmt: skip


def _as_f64(hist: torch.Tensor) -> torch.Tensor:
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"expected a square (C, C) confusion matrix, got {tuple(hist.shape)}")
    return hist.detach().to("cpu", torch.float64)


def per_class_iou(hist: torch.Tensor) -> torch.Tensor:
    """Per-class intersection over union.

    Args:
        hist: (C, C) confusion matrix of pixel counts, rows = ground truth, columns =
            prediction (any numeric dtype).

    Returns:
        float64 (C,), values in [0, 1]; NaN where a class's union is empty.

    Raises:
        ValueError: ``hist`` is not square.
    """
    h = _as_f64(hist)
    diag = h.diagonal()
    union = h.sum(1) + h.sum(0) - diag
    return diag / union  # 0/0 -> NaN, the FCN convention


def per_class_accuracy(hist: torch.Tensor) -> torch.Tensor:
    """Per-class pixel accuracy (recall): float64 (C,), NaN for classes absent from the
    ground truth. ``hist`` as in :func:`per_class_iou`."""
    h = _as_f64(hist)
    return h.diagonal() / h.sum(1)


def _nanmean(x: torch.Tensor) -> float:
    # numpy's pairwise summation, as FCN's np.nanmean: scores bit-identical to the recipe
    x = x.numpy()
    return float(np.nanmean(x)) if (~np.isnan(x)).any() else math.nan


def _check_split(hist: torch.Tensor, split: ClassSplit) -> None:
    if hist.shape[0] != split.num_classes:
        raise ValueError(f"confusion matrix has {hist.shape[0]} classes, split "
                         f"'{split.name}' has {split.num_classes}")


def harmonic_mean(a: float, b: float) -> float:
    """Harmonic mean ``2ab / (a + b)`` (hIoU); NaN if either is NaN, 0 if both are 0."""
    if math.isnan(a) or math.isnan(b):
        return math.nan
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def segmentation_scores(hist: torch.Tensor) -> dict[str, float]:
    """FCN's four scores from a dataset-level confusion matrix.

    Args:
        hist: (C, C) pixel counts, rows = ground truth, columns = prediction.

    Returns:
        ``pixel_acc``, ``mean_acc``, ``miou``, ``fwiou``: floats in [0, 1] (NaN when the
        matrix is empty). Recipe: FCN ``score.py:label_accuracy_score``.
    """
    h = _as_f64(hist)
    iou = per_class_iou(h)
    mean_acc, miou = _nanmean(per_class_accuracy(h)), _nanmean(iou)
    h, iou = h.numpy(), iou.numpy()  # the reductions in numpy, exactly as FCN writes them
    total = h.sum()
    if total == 0:
        return {"pixel_acc": math.nan, "mean_acc": mean_acc, "miou": miou, "fwiou": math.nan}
    freq = h.sum(axis=1) / total
    return {
        "pixel_acc": float(np.diag(h).sum() / total),
        "mean_acc": mean_acc,
        "miou": miou,
        "fwiou": float((freq[freq > 0] * iou[freq > 0]).sum()),
    }


def zero_shot_scores(hist: torch.Tensor, split: ClassSplit) -> dict[str, float]:
    """FCN's four scores plus the seen/unseen means of every reading zss reports.

    Three readings of one dataset-level confusion matrix, each labelled by its keys:

    - **standard** (SPNet, CaGNet and later papers): per-class IoU of the full matrix;
      ``miou_seen`` is the mean over S = train_seen ∪ train_unseen, ``miou_unseen`` over U,
      plus ``miou_train_seen``, ``miou_train_unseen`` and ``hiou`` (harmonic mean of
      ``miou_seen`` and ``miou_unseen``); means over the classes whose IoU is defined (NaN for
      an empty set).
    - **ZS3Net's** (``_nan0`` keys): every class with an undefined IoU (empty union: absent
      from the ground truth and never predicted) counts as 0 in every mean, as ZS3Net's
      ``Evaluator.Mean_Intersection_over_Union`` does (``np.nanmean(np.nan_to_num(iou))``
      overall, over its seen and over its unseen indices; valeoai/ZS3
      ``zs3/utils/metrics.py``): ``miou_nan0``, ``miou_seen_nan0``, ``miou_unseen_nan0`` and
      ``hiou_nan0`` (their harmonic mean). NaN over an empty class set.
    - **the original SZN code's** (``paper/`` keys, :func:`paper_scores`): one matrix of the
      pixels whose ground truth is in S and one of those in U; only on a split with U.

    Args:
        hist: (C, C) pixel counts over ``split.class_names``, rows = ground truth.
        split: the class split.

    Returns:
        :func:`segmentation_scores` plus the keys above; floats in [0, 1] or NaN.

    Raises:
        ValueError: the matrix size differs from the split's class count.
    """
    _check_split(hist, split)
    iou = per_class_iou(hist)
    out = segmentation_scores(hist)
    for key, idx in (("miou_seen", split.seen_idx), ("miou_unseen", split.unseen_idx),
                     ("miou_train_seen", split.train_seen_idx),
                     ("miou_train_unseen", split.train_unseen_idx)):
        out[key] = _nanmean(iou[idx]) if idx else math.nan
    out["hiou"] = harmonic_mean(out["miou_seen"], out["miou_unseen"])
    iou0 = np.nan_to_num(iou.numpy(), nan=0.0)
    for key, idx in (("miou_nan0", list(range(split.num_classes))),
                     ("miou_seen_nan0", split.seen_idx), ("miou_unseen_nan0", split.unseen_idx)):
        out[key] = float(iou0[idx].mean()) if idx else math.nan
    out["hiou_nan0"] = harmonic_mean(out["miou_seen_nan0"], out["miou_unseen_nan0"])
    if split.unseen:
        out.update(paper_scores(hist, split))
    return out


PAPER_KEYS = tuple(f"paper/{part}/{k}" for part in ("seen", "unseen")
                   for k in ("pixel_acc", "mean_acc", "miou", "fwiou")) + ("paper/hiou",)
"""The keys of :func:`paper_scores`, in the order the original code prints them."""


def paper_scores(hist: torch.Tensor, split: ClassSplit) -> dict[str, float]:
    """The original SZN code's seen and unseen scores (the thesis's tables).

    Its ``utils.label_accuracy_score(label_trues, label_preds, n_class, unseen=U)``
    (RohanDoshi2018/ZeroshotSemanticSegmentation, ``utils.py``, called by
    ``trainer_fcn.py`` with the test-time unseen classes) builds one confusion matrix of the
    pixels whose ground truth is seen (every class not in U, i.e. S = train_seen ∪
    train_unseen) and one of the pixels whose ground truth is in U, **each over all
    classes**, and turns each into FCN's four scores (``_hist_to_metrics``: ``nanmean`` over
    every class whose accuracy / IoU is defined in that matrix). So in the unseen matrix a
    seen class that received U pixels has IoU 0 and enters the unseen mean, which the
    standard reading (``miou_unseen``) leaves out. Both matrices are rows of the full one:
    no second pass over the data.

    Args:
        hist: (C, C) pixel counts over ``split.class_names``, rows = ground truth.
        split: the class split.

    Returns:
        ``paper/seen/{pixel_acc,mean_acc,miou,fwiou}``, the same under ``paper/unseen/``,
        and ``paper/hiou`` (harmonic mean of the two mIoUs, which the original does not
        print); floats in [0, 1], NaN for a matrix without pixels.

    Raises:
        ValueError: the matrix size differs from the split's class count.
    """
    _check_split(hist, split)
    h = _as_f64(hist)
    out = {}
    for part, rows in (("seen", split.seen_idx), ("unseen", split.unseen_idx)):
        sub = torch.zeros_like(h)
        sub[rows] = h[rows]  # the pixels whose ground truth is in this set, every prediction
        out.update({f"paper/{part}/{k}": v for k, v in segmentation_scores(sub).items()})
    out["paper/hiou"] = harmonic_mean(out["paper/seen/miou"], out["paper/unseen/miou"])
    return out


def seenmask_scores(counts: torch.Tensor, split: ClassSplit) -> dict[str, float]:
    """How well the seenmask separates train_seen pixels from all others.

    The seenmask answers "unseen" (channel 0) or "seen" (channel 1, a train_seen class).
    A pixel is truly "unseen" when its class is not in train_seen (train_unseen or U).

    Args:
        counts: (C, 2) pixel counts, rows = ground-truth class, columns = seenmask decision
            (0 = unseen, 1 = seen), void excluded.
        split: the class split.

    Returns:
        ``seenmask_acc`` (fraction of pixels decided correctly), ``seenmask_precision`` and
        ``seenmask_recall`` of the "unseen" decision, ``seenmask_recall_train_unseen`` and
        ``seenmask_recall_unseen`` (recall restricted to train_unseen / U pixels). Floats in
        [0, 1]; NaN where a denominator is 0.
    """
    c = counts.detach().to("cpu", torch.float64)
    truly_unseen = torch.ones(split.num_classes, dtype=torch.bool)
    truly_unseen[split.train_seen_idx] = False

    def ratio(num: torch.Tensor, den: torch.Tensor) -> float:
        return float(num / den) if den > 0 else math.nan

    said_unseen = c[:, 0]
    out = {
        "seenmask_acc": ratio(said_unseen[truly_unseen].sum() + c[~truly_unseen, 1].sum(),
                              c.sum()),
        "seenmask_precision": ratio(said_unseen[truly_unseen].sum(), said_unseen.sum()),
        "seenmask_recall": ratio(said_unseen[truly_unseen].sum(), c[truly_unseen].sum()),
    }
    for key, idx in (("seenmask_recall_train_unseen", split.train_unseen_idx),
                     ("seenmask_recall_unseen", split.unseen_idx)):
        out[key] = ratio(said_unseen[idx].sum(), c[idx].sum()) if idx else math.nan
    return out


class _VoidColumnConfusionMatrix(MulticlassConfusionMatrix):
    """torchmetrics' ``MulticlassConfusionMatrix`` over C + 1 classes without an ignore
    index, void counted as class C and its row and column dropped in :meth:`compute`.

    The same counts as ``MulticlassConfusionMatrix(C, ignore_index=255)``, without its
    boolean indexing (``target != 255`` then ``preds[idx]``, ``target[idx]``: a nonzero, two
    gathers and, on a GPU, a host sync per update): one clamp and torchmetrics' own
    ``bincount`` of ``target * (C + 1) + preds``.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__(num_classes + 1, validate_args=False)
        self.void_class = num_classes

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        # labels are in [0, C) or 255 (checked when read): clamping sends void to C
        super().update(preds, target.clamp(max=self.void_class))

    def compute(self) -> torch.Tensor:
        c = self.void_class
        return super().compute()[:c, :c].contiguous()


def confusion_matrix_metric(num_classes: int) -> MulticlassConfusionMatrix:
    """The dataset-level confusion matrix of ``num_classes`` classes, void (255) ignored, no
    normalisation, summed over batches (and over DDP ranks at ``compute()``): torchmetrics'
    ``MulticlassConfusionMatrix`` over ``num_classes + 1`` classes, void counted as the
    extra class and dropped in ``compute()`` (:class:`_VoidColumnConfusionMatrix`; the same
    counts as ``ignore_index=255``, faster and without a host sync).

    ``update(preds, target)`` takes integer (N, H, W) predictions in [0, num_classes) and
    labels in [0, num_classes) ∪ {255}; ``compute()`` returns int64 (num_classes,
    num_classes), rows = ground truth, columns = prediction."""
    return _VoidColumnConfusionMatrix(num_classes)


class SeenmaskCounts(Metric):
    """(C, 2) pixel counts of ground-truth class × seenmask decision, summed over batches and
    DDP ranks. ``update(decision, target)``: decision int64 (N, H, W) in {0, 1} (1 = seen),
    target int64 (N, H, W) class labels with 255 = void (ignored)."""

    full_state_update = False

    def __init__(self, num_classes: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.num_classes = num_classes
        self.add_state("counts", torch.zeros(num_classes, 2, dtype=torch.long),
                       dist_reduce_fx="sum")

    def update(self, decision: torch.Tensor, target: torch.Tensor) -> None:
        valid = target != IGNORE_INDEX
        idx = target[valid] * 2 + decision[valid]
        self.counts += torch.bincount(idx, minlength=2 * self.num_classes).view(-1, 2)

    def compute(self) -> torch.Tensor:
        return self.counts
