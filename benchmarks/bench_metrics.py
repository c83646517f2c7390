"""Benchmark 2: zss's dataset-level metrics vs FCN's numpy recipe and scikit-learn.

On 100 label maps of 375 x 500 (VOC's landscape size) with 21 and with 60 classes, each
including void (255) pixels, a class absent from ground truth and predictions (IoU NaN) and
one that is only predicted (IoU 0), three paths compute the dataset confusion matrix map by
map and then the scores:

- ``zss``: ``confusion_matrix_metric(C).update(pred, label)`` per map (torch int64 tensors),
  ``compute()``, then ``zero_shot_scores(hist, split)`` (FCN's four scores + the seen/unseen
  means);
- ``torchmetrics``: the same with ``MulticlassConfusionMatrix(C, ignore_index=255,
  validate_args=False)``, what ``confusion_matrix_metric`` returned before the void column (now:
  torchmetrics over C + 1 classes, void counted as class C and dropped in ``compute``);
- ``numpy (FCN)``: FCN's ``_fast_hist`` + ``label_accuracy_score`` (``score.py`` of the FCN
  code / pytorch-fcn ``utils.py``), written out below;
- ``sklearn``: ``sklearn.metrics.confusion_matrix`` per map (void removed first) + the same
  ``label_accuracy_score``.

Goal: zss at least as fast as numpy (ratio <= 1) and bit-identical scores. The script exits
non-zero when the matrices differ or a score differs by more than 1e-12; a difference in the
last bits is reported as a missed goal.

    .venv/bin/python benchmarks/bench_metrics.py [--reps 5] [--maps 100]
"""

from __future__ import annotations

import argparse
import sys
from functools import partial

import numpy as np
import torch
from _common import alternate, header, median, ratio_line, show
from sklearn.metrics import confusion_matrix
from torchmetrics.classification import MulticlassConfusionMatrix

from zss.data.splits import ClassSplit
from zss.evaluation.metrics import confusion_matrix_metric, per_class_iou, zero_shot_scores

H, W = 375, 500


# ---- FCN's recipe (Long et al., score.py; wkentaro/pytorch-fcn torchfcn/utils.py) --------
def _fast_hist(label_true: np.ndarray, label_pred: np.ndarray, n_class: int) -> np.ndarray:
    mask = (label_true >= 0) & (label_true < n_class)
    return np.bincount(n_class * label_true[mask].astype(int) + label_pred[mask],
                       minlength=n_class ** 2).reshape(n_class, n_class)


def label_accuracy_score(hist: np.ndarray) -> tuple[float, float, float, float]:
    """FCN's four scores from an accumulated histogram (float64, as FCN's ``np.zeros``)."""
    acc = np.diag(hist).sum() / hist.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc_cls = np.diag(hist) / hist.sum(axis=1)
    acc_cls = np.nanmean(acc_cls)
    with np.errstate(divide="ignore", invalid="ignore"):
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    mean_iu = np.nanmean(iu)
    freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return acc, acc_cls, mean_iu, fwavacc


def numpy_scores(labels: list[np.ndarray], preds: list[np.ndarray], c: int):
    hist = np.zeros((c, c))
    for lt, lp in zip(labels, preds, strict=True):
        hist += _fast_hist(lt.flatten(), lp.flatten(), c)
    return hist, label_accuracy_score(hist)


def sklearn_scores(labels: list[np.ndarray], preds: list[np.ndarray], c: int):
    hist = np.zeros((c, c))
    classes = np.arange(c)
    for lt, lp in zip(labels, preds, strict=True):
        valid = lt != 255
        hist += confusion_matrix(lt[valid], lp[valid], labels=classes)
    return hist, label_accuracy_score(hist)


def zss_scores(labels: list[torch.Tensor], preds: list[torch.Tensor], split: ClassSplit,
               metric_factory=confusion_matrix_metric):
    metric = metric_factory(split.num_classes)
    for lt, lp in zip(labels, preds, strict=True):
        metric.update(lp, lt)
    hist = metric.compute()
    return hist, zero_shot_scores(hist, split)


# ---- inputs --------------------------------------------------------------------------------
def make_maps(n: int, c: int, seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Blocky int64 label maps (3 classes each from 0..c-3, a 255 band at block borders) and
    predictions (the labels with 20 % of pixels replaced by random classes 0..c-2; class c-2
    appears only in predictions, class c-1 nowhere)."""
    rng = np.random.default_rng(seed)
    labels, preds = [], []
    for _ in range(n):
        present = rng.choice(c - 2, size=3, replace=False)
        blocks = present[rng.integers(0, 3, size=(6, 8))]
        lab = np.kron(blocks, np.ones((H // 6 + 1, W // 8 + 1), dtype=np.int64))[:H, :W]
        edge = np.zeros((H, W), dtype=bool)
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        edge[1:] |= lab[1:] != lab[:-1]
        edge |= np.roll(edge, 1, 0) | np.roll(edge, 1, 1) | np.roll(edge, -1, 1)
        lab = np.where(edge, 255, lab).astype(np.int64)
        noise = rng.random((H, W)) < 0.2
        pred = np.where(noise | (lab == 255), rng.integers(0, c - 1, size=(H, W)), lab)
        labels.append(lab)
        preds.append(pred.astype(np.int64))
    return labels, preds


def split_for(c: int) -> ClassSplit:
    if c == 21:
        from zss.data.splits import VOC_CLASSES

        names = VOC_CLASSES
        return ClassSplit("voc_17_2_2", names,
                          tuple(n for n in names if n not in ("aeroplane", "horse", "sheep",
                                                              "train")),
                          ("aeroplane", "horse"), ("sheep", "train"))
    names = tuple(f"class{i:02d}" for i in range(c))
    return ClassSplit(f"synthetic_{c}", names, names[:-4], names[-4:-2], names[-2:])


def multiclass_confusion_matrix(num_classes: int) -> MulticlassConfusionMatrix:
    return MulticlassConfusionMatrix(num_classes, ignore_index=255, validate_args=False)


def bits_equal(a: float, b: float) -> bool:
    return np.float64(a).tobytes() == np.float64(b).tobytes()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--maps", type=int, default=100)
    args = ap.parse_args()
    header(f"2. metrics: {args.maps} label maps of {H} x {W}, confusion matrix + all scores")
    ok = True
    for c in (21, 60):
        labels, preds = make_maps(args.maps, c)
        t_labels = [torch.from_numpy(x) for x in labels]
        t_preds = [torch.from_numpy(x) for x in preds]
        split = split_for(c)
        print(f"-- {c} classes ({sum((x == 255).sum() for x in labels) / (args.maps * H * W):.1%}"
              " void pixels)")
        times = alternate({
            "zss (confusion_matrix_metric + zero_shot_scores)": partial(
                zss_scores, t_labels, t_preds, split),
            "torchmetrics (MulticlassConfusionMatrix + zero_shot_scores)": partial(
                zss_scores, t_labels, t_preds, split, multiclass_confusion_matrix),
            "numpy (FCN _fast_hist + label_accuracy_score)":
                partial(numpy_scores, labels, preds, c),
            "sklearn (confusion_matrix + label_accuracy_score)":
                partial(sklearn_scores, labels, preds, c),
        }, reps=args.reps)
        show(times, unit="ms", scale=1000)
        med = {k.split(" ")[0]: median(v) for k, v in times.items()}
        ratio_line(f"metrics {c} classes zss / numpy", med["zss"] / med["numpy"], 1.0)
        ratio_line(f"metrics {c} classes torchmetrics / numpy", med["torchmetrics"] / med["numpy"],
                   None)
        ratio_line(f"metrics {c} classes sklearn / numpy", med["sklearn"] / med["numpy"], None)

        hist_z, got = zss_scores(t_labels, t_preds, split)
        hist_t, old = zss_scores(t_labels, t_preds, split, multiclass_confusion_matrix)
        hist_n, ref = numpy_scores(labels, preds, c)
        hist_s, _ = sklearn_scores(labels, preds, c)
        same_hist = (np.array_equal(hist_z.numpy(), hist_n) and np.array_equal(hist_s, hist_n)
                     and torch.equal(hist_z, hist_t) and got == old)
        keys = ("pixel_acc", "mean_acc", "miou", "fwiou")
        diffs = {k: (got[k], float(r)) for k, r in zip(keys, ref, strict=True)
                 if not bits_equal(got[k], r)}
        worst = max((abs(a - b) for a, b in diffs.values()), default=0.0)
        print(f"check: matrices equal (zss, torchmetrics ignore_index, numpy, sklearn) and "
              f"zss scores == torchmetrics': {same_hist}; class IoUs NaN: "
              f"{int(np.isnan(got_iou := per_class_iou(hist_z).numpy()).sum())}, zero: "
              f"{int((got_iou == 0).sum())}")
        print(f"GOAL metrics {c} classes scores bit-identical to numpy: "
              f"{'met' if not diffs else f'MISSED (differ: {diffs}, max |diff| {worst:.1e})'}")
        ok &= same_hist and worst <= 1e-12
    if not ok:
        sys.exit("metrics differ between zss and the numpy reference beyond rounding")


if __name__ == "__main__":
    main()
