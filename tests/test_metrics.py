"""Metrics against an independent numpy reference: FCN's ``_fast_hist`` +
``label_accuracy_score`` recipe, written out here."""

import math

import numpy as np
import pytest
import torch

from zss.data.splits import VOC_CLASSES, ClassSplit
from zss.metrics import (
    SeenmaskCounts,
    confusion_matrix_metric,
    per_class_iou,
    seenmask_scores,
    segmentation_scores,
    zero_shot_scores,
)

C = len(VOC_CLASSES)
SPLIT = ClassSplit(
    "voc_17_2_2", VOC_CLASSES,
    train_seen=tuple(c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")),
    train_unseen=("aeroplane", "horse"), unseen=("sheep", "train"),
)  # fmt: skip


def fast_hist(a, b, n):
    k = (a >= 0) & (a < n)
    return np.bincount(n * a[k].astype(int) + b[k], minlength=n**2).reshape(n, n)


def label_accuracy_score(label_trues, label_preds, n_class):
    hist = np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds, strict=True):
        hist += fast_hist(lt.flatten(), lp.flatten(), n_class)
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.diag(hist).sum() / hist.sum()
        acc_cls = np.nanmean(np.diag(hist) / hist.sum(axis=1))
        iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
    mean_iu = np.nanmean(iu)
    freq = hist.sum(axis=1) / hist.sum()
    fwavacc = (freq[freq > 0] * iu[freq > 0]).sum()
    return hist, iu, acc, acc_cls, mean_iu, fwavacc


def random_maps(seed, n=6, shape=(37, 53), absent=(2, 17)):
    rng = np.random.default_rng(seed)
    allowed = np.array([c for c in range(C) if c not in absent])
    trues = rng.choice(allowed, size=(n, *shape))
    trues[rng.random(trues.shape) < 0.15] = 255
    preds = np.where(rng.random(trues.shape) < 0.6, trues, rng.integers(0, C, trues.shape))
    preds[preds == 255] = 0  # a prediction is always a class
    # one class absent from both ground truth and prediction -> NaN
    preds[preds == absent[0]] = 1
    return trues, preds


def torch_hist(trues, preds):
    cm = confusion_matrix_metric(C)
    for t, p in zip(trues, preds, strict=True):  # several updates: the matrix is summed
        cm.update(torch.from_numpy(p)[None], torch.from_numpy(t)[None])
    return cm.compute()


@pytest.mark.parametrize("dtype", [torch.int64, torch.uint8])
def test_confusion_matrix_equals_torchmetrics_ignore_index(dtype):
    """The void-as-extra-class matrix (issue 12) holds exactly the counts of torchmetrics'
    ignore-index path (the one zss used before) and of FCN's numpy _fast_hist."""
    from torchmetrics.classification import MulticlassConfusionMatrix

    trues, preds = random_maps(7, n=4)
    old = MulticlassConfusionMatrix(C, ignore_index=255, validate_args=False)
    for t, p in zip(trues, preds, strict=True):
        old.update(torch.from_numpy(p)[None], torch.from_numpy(t)[None])
    new = confusion_matrix_metric(C)
    for t, p in zip(trues, preds, strict=True):
        new.update(torch.from_numpy(p)[None].to(dtype), torch.from_numpy(t)[None].to(dtype))
    hist = new.compute()
    assert hist.shape == (C, C) and hist.dtype == torch.int64
    assert torch.equal(hist, old.compute())
    np.testing.assert_array_equal(hist.numpy(), label_accuracy_score(trues, preds, C)[0])
    assert int(hist.sum()) == int((trues != 255).sum())
    new.reset()
    assert int(new.compute().sum()) == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_scores_match_fcn_reference(seed):
    trues, preds = random_maps(seed)
    hist_ref, iu, acc, acc_cls, mean_iu, fwavacc = label_accuracy_score(trues, preds, C)
    hist = torch_hist(trues, preds)
    np.testing.assert_array_equal(hist.numpy(), hist_ref)
    scores = segmentation_scores(hist)
    # bit-identical to the recipe, not merely close
    assert scores["pixel_acc"] == acc
    assert scores["mean_acc"] == acc_cls
    assert scores["miou"] == mean_iu
    assert scores["fwiou"] == fwavacc
    np.testing.assert_allclose(per_class_iou(hist).numpy(), iu, equal_nan=True)
    # class 2 is absent from truth and prediction: NaN and left out of the mean
    assert math.isnan(per_class_iou(hist)[2])
    # class 17 is absent from the truth but predicted: IoU 0, and it counts
    assert per_class_iou(hist)[17] == 0.0


def test_seen_unseen_means_and_hiou():
    trues, preds = random_maps(3, absent=(2, 5))
    _, iu, *_ = label_accuracy_score(trues, preds, C)
    s = zero_shot_scores(torch_hist(trues, preds), SPLIT)
    seen = [i for i, c in enumerate(VOC_CLASSES) if c not in ("sheep", "train")]
    assert s["miou_seen"] == pytest.approx(np.nanmean(iu[seen]))
    assert s["miou_unseen"] == pytest.approx(np.nanmean(iu[[17, 19]]))
    assert s["miou_train_unseen"] == pytest.approx(np.nanmean(iu[[1, 13]]))
    assert s["miou_train_seen"] == pytest.approx(np.nanmean(iu[[i for i in seen if i not in (1, 13)]]))
    a, b = s["miou_seen"], s["miou_unseen"]
    assert s["hiou"] == pytest.approx(2 * a * b / (a + b))


def test_perfect_and_all_wrong():
    trues, _ = random_maps(4)
    perfect = np.where(trues == 255, 0, trues)
    s = zero_shot_scores(torch_hist(trues, perfect), SPLIT)
    for key in ("pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "hiou"):
        assert s[key] == pytest.approx(1.0), key
    wrong = np.where(trues == 255, 0, (trues + 1) % C)
    s = zero_shot_scores(torch_hist(trues, wrong), SPLIT)
    for key in ("pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "miou_unseen", "hiou"):
        assert s[key] == 0.0, key


def test_void_is_ignored_and_empty_sets_are_nan():
    t = torch.full((1, 4, 4), 255)
    t[0, 0, 0] = 3
    p = torch.full((1, 4, 4), 7)
    p[0, 0, 0] = 3
    cm = confusion_matrix_metric(C)
    cm.update(p, t)
    s = zero_shot_scores(cm.compute(), SPLIT)
    assert s["pixel_acc"] == 1.0 and s["miou"] == 1.0
    assert math.isnan(s["miou_unseen"]) and math.isnan(s["hiou"])
    no_unseen = ClassSplit("all", VOC_CLASSES, VOC_CLASSES)
    assert math.isnan(zero_shot_scores(cm.compute(), no_unseen)["miou_unseen"])


def test_seenmask_scores_against_counting():
    rng = np.random.default_rng(5)
    t = rng.integers(0, C, (3, 20, 20))
    t[rng.random(t.shape) < 0.1] = 255
    d = rng.integers(0, 2, t.shape)
    m = SeenmaskCounts(C)
    m.update(torch.from_numpy(d), torch.from_numpy(t))
    s = seenmask_scores(m.compute(), SPLIT)
    valid = t != 255
    truly_unseen = np.isin(t, [1, 13, 17, 19]) & valid
    said_unseen = (d == 0) & valid
    assert s["seenmask_acc"] == pytest.approx(((said_unseen == truly_unseen) & valid).sum() / valid.sum())
    assert s["seenmask_precision"] == pytest.approx((said_unseen & truly_unseen).sum() / said_unseen.sum())
    assert s["seenmask_recall"] == pytest.approx((said_unseen & truly_unseen).sum() / truly_unseen.sum())
    u = np.isin(t, [17, 19])
    assert s["seenmask_recall_unseen"] == pytest.approx((said_unseen & u).sum() / u.sum())
    tu = np.isin(t, [1, 13])
    assert s["seenmask_recall_train_unseen"] == pytest.approx((said_unseen & tu).sum() / tu.sum())


def test_miou_unseen_nan0_counts_absent_unseen_classes_as_zero():
    """ZS3Net's reading (np.nanmean(np.nan_to_num(iou[unseen]))) beside zss's nanmean: with
    sheep (17) absent from truth and prediction, its IoU is NaN -- left out of miou_unseen,
    counted as 0 in miou_unseen_nan0."""
    trues, preds = random_maps(6, absent=(2, 17))
    preds[preds == 17] = 0  # sheep never predicted either: empty union
    _, iu, *_ = label_accuracy_score(trues, preds, C)
    s = zero_shot_scores(torch_hist(trues, preds), SPLIT)
    assert math.isnan(iu[17]) and not math.isnan(iu[19])
    assert s["miou_unseen"] == pytest.approx(iu[19])
    assert s["miou_unseen_nan0"] == pytest.approx(iu[19] / 2)
    present = random_maps(7, absent=(2, 5))  # sheep and train present: the readings agree
    s = zero_shot_scores(torch_hist(*present), SPLIT)
    assert s["miou_unseen_nan0"] == pytest.approx(s["miou_unseen"])
    no_unseen = ClassSplit("all", VOC_CLASSES, VOC_CLASSES)
    assert math.isnan(zero_shot_scores(torch_hist(*present), no_unseen)["miou_unseen_nan0"])
