"""Metrics against an independent numpy reference: FCN's ``_fast_hist`` +
``label_accuracy_score`` recipe, written out here."""

import math

import numpy as np
import pytest
import torch

from zss.data.splits import VOC_CLASSES, ClassSplit
from zss.evaluation.metrics import (
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
    """The void-as-extra-class matrix holds exactly the counts of torchmetrics'
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


def zs3_evaluator(hist, seen, unseen):
    """ZS3Net's Evaluator (valeoai/ZS3 zs3/utils/metrics.py, Mean_Intersection_over_Union),
    written out: every NaN IoU is 0 in the overall, the seen and the unseen mean."""
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
    return (np.nanmean(np.nan_to_num(iou)), np.nanmean(np.nan_to_num(iou[seen])),
            np.nanmean(np.nan_to_num(iou[unseen])))


def test_the_nan0_reading_is_zs3nets_evaluator():
    """miou_nan0, miou_seen_nan0, miou_unseen_nan0 and hiou_nan0 against ZS3Net's formulas:
    with bicycle (2) and sheep (17) absent from truth and prediction, both count 0."""
    trues, preds = random_maps(8, absent=(2, 17))
    preds[preds == 17] = 0
    hist = torch_hist(trues, preds)
    seen = [i for i in range(C) if i not in (17, 19)]
    overall, seen_m, unseen_m = zs3_evaluator(hist.numpy().astype(float), seen, [17, 19])
    s = zero_shot_scores(hist, SPLIT)
    assert s["miou_nan0"] == pytest.approx(overall) and s["miou_nan0"] < s["miou"]
    assert s["miou_seen_nan0"] == pytest.approx(seen_m) and s["miou_seen_nan0"] < s["miou_seen"]
    assert s["miou_unseen_nan0"] == pytest.approx(unseen_m)
    assert s["hiou_nan0"] == pytest.approx(2 * seen_m * unseen_m / (seen_m + unseen_m))


def original_label_accuracy_score(label_trues, label_preds, n_class, unseen):
    """The original SZN code's reading, written from its description (utils.py of
    RohanDoshi2018/ZeroshotSemanticSegmentation): per image, a matrix of the pixels whose
    (valid) ground truth is not in ``unseen`` and one of those whose ground truth is in it,
    each over all classes; each turned into FCN's four scores with nanmean."""
    seen_hist, unseen_hist = np.zeros((n_class, n_class)), np.zeros((n_class, n_class))
    for lt, lp in zip(label_trues, label_preds, strict=True):
        lt, lp = lt.ravel(), lp.ravel()
        valid = (lt >= 0) & (lt < n_class)
        is_unseen = np.isin(lt, unseen)
        for hist, keep in ((seen_hist, valid & ~is_unseen), (unseen_hist, valid & is_unseen)):
            hist += np.bincount(n_class * lt[keep].astype(int) + lp[keep],
                                minlength=n_class**2).reshape(n_class, n_class)

    def scores(hist):
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = np.diag(hist).sum() / hist.sum()
            acc_cls = np.nanmean(np.diag(hist) / hist.sum(axis=1))
            iu = np.diag(hist) / (hist.sum(axis=1) + hist.sum(axis=0) - np.diag(hist))
            freq = hist.sum(axis=1) / hist.sum()
        return acc, acc_cls, np.nanmean(iu), (freq[freq > 0] * iu[freq > 0]).sum()

    return scores(seen_hist), scores(unseen_hist)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_the_paper_reading_is_the_original_codes(seed):
    """paper/{seen,unseen}/* from one confusion matrix against the original's two matrices
    built from the label arrays (void and absent classes included). Seed 0..3 with sheep
    (17) or bicycle (2) absent from the truth."""
    trues, preds = random_maps(seed, absent=(2, 17) if seed % 2 else (2, 5))
    if seed == 3:  # U pixels mostly predicted as seen classes (sheep -> cow, train -> bus)
        preds = np.where((trues == 19) & (np.random.default_rng(3).random(trues.shape) < 0.8),
                         6, preds)
    unseen = [17, 19]
    ref_seen, ref_unseen = original_label_accuracy_score(trues, preds, C, unseen)
    s = zero_shot_scores(torch_hist(trues, preds), SPLIT)
    for part, ref in (("seen", ref_seen), ("unseen", ref_unseen)):
        for key, value in zip(("pixel_acc", "mean_acc", "miou", "fwiou"), ref, strict=True):
            assert s[f"paper/{part}/{key}"] == pytest.approx(value, rel=1e-12), (part, key)
    a, b = ref_seen[2], ref_unseen[2]
    assert s["paper/hiou"] == pytest.approx(2 * a * b / (a + b))
    # the readings differ: a seen class that received U pixels is 0 in the unseen mean
    assert s["paper/unseen/miou"] < s["miou_unseen"]


def test_the_paper_reading_by_hand():
    """Two U classes (sheep 17, train 19), 10 pixels each: sheep 6 right, 4 as cow (10);
    train 5 right, 5 as bus (6); 20 cow pixels all right. Unseen matrix: sheep IoU 6/10,
    train 5/10, cow 0/4, bus 0/5 -> mean 0.275; the standard miou_unseen (full matrix) 0.55."""
    h = torch.zeros(C, C, dtype=torch.int64)
    h[17, 17], h[17, 10], h[19, 19], h[19, 6], h[10, 10] = 6, 4, 5, 5, 20
    s = zero_shot_scores(h, SPLIT)
    assert s["paper/unseen/miou"] == pytest.approx((0.6 + 0.5 + 0 + 0) / 4)
    assert s["paper/unseen/pixel_acc"] == pytest.approx(11 / 20)
    assert s["paper/unseen/mean_acc"] == pytest.approx((0.6 + 0.5) / 2)
    assert s["paper/seen/miou"] == pytest.approx(1.0)  # cow: 20 / 20 in the seen matrix
    assert s["miou_unseen"] == pytest.approx(0.55)
    # full matrix: cow's union holds the 4 sheep pixels, bus (0 / 5) counts in S
    assert s["miou_seen"] == pytest.approx((20 / 24 + 0) / 2)
    no_unseen = ClassSplit("all", VOC_CLASSES, VOC_CLASSES)
    assert not any(k.startswith("paper/") for k in zero_shot_scores(h, no_unseen))
