"""The readings of a run (zss.evaluation.reading): the demo's reading of the table follows the
numbers, whichever way they fall; the gates' reading; the summary's tables per protocol."""

import math

import torch

from zss.data.splits import VOC_CLASSES, split_from_config
from zss.evaluation.reading import explain as _explain
from zss.evaluation.reading import unseen_confusions

SPLIT = split_from_config("voc_17_2_2", "voc",
                          [n for n in VOC_CLASSES if n not in ("aeroplane", "horse", "sheep",
                                                               "train")],
                          ["aeroplane", "horse"], ["sheep", "train"])


def scores(je_u, ps_u, szn_u, r_tu, r_u, prec=0.9):
    def variant(u):
        return {"miou": 0.5, "miou_seen": 0.6, "miou_unseen": u, "hiou": 2 * 0.6 * u / (0.6 + u),
                "pixel_acc": 0.9}

    szn = variant(szn_u) | {"seenmask_recall_train_unseen": r_tu,
                            "seenmask_recall_unseen": r_u, "seenmask_precision": prec}
    return {"fcn_je": variant(je_u), "szn": szn, "szn_ps": variant(ps_u)}


def explain(*args):
    return " ".join(_explain(*args).split())  # the text is wrapped at 100 columns


def test_the_paper_pattern_is_stated_when_the_numbers_show_it():
    text = explain(scores(0.02, 0.7, 0.01, 0.6, 0.0), SPLIT)
    assert "does transfer" in text and "below both" in text
    assert "rather than unfamiliar pixels" in text and "denser train_unseen set" in text
    assert "hIoU: SZN-PS 64.6 % >= SZN 2.0 %" in text


def test_other_outcomes_are_stated_as_they_are():
    text = explain(scores(0.05, 0.08, 0.06, 0.7, 0.65, prec=0.3), SPLIT)
    assert "does not transfer" in text and "between the two" in text
    assert "the class vectors: random ones, e.g. embedding.pretrained=null" in text
    assert "generalises to classes it never saw" in text and "denser" not in text
    assert "most pixels it calls unseen are train_seen" in text
    text = explain(scores(0.0, 0.3, 0.1, 0.5, 0.3), SPLIT)
    assert "only partly" in text and "clearly less than" in text
    text = explain(scores(0.0, 0.6, 0.0, 0.02, 0.01), SPLIT)
    assert "rarely says unseen" in text
    assert "nothing to read" in explain(scores(math.nan, math.nan, math.nan, 0.5, math.nan),
                                        SPLIT)


def test_unseen_confusions_counts_where_u_pixels_went():
    hist = torch.zeros(21, 21, dtype=torch.long)
    sheep, cow, train = (VOC_CLASSES.index(n) for n in ("sheep", "cow", "train"))
    hist[sheep, cow], hist[sheep, sheep], hist[train, train] = 6, 2, 2
    share, top = unseen_confusions(hist, SPLIT)
    assert share == 0.6 and top == {"sheep": "cow", "train": "train"}


def _gate_scores(cs, thr, cos, szn=(0.6, 0.0)):
    def v(seen, unseen):
        h = 0.0 if seen + unseen == 0 else 2 * seen * unseen / (seen + unseen)
        return {"miou_seen": seen, "miou_unseen": unseen, "hiou": h}

    return {"szn": v(*szn), "szn_cs": v(*cs), "szn_threshold": v(*thr),
            "szn_maxcos": v(*cos)}


def _tuning(tu=0.5):
    return {"gates": {"szn_threshold": {"parameter": "t", "value": 0.99, "miou_train_unseen": tu},
                      "szn_cs": {"parameter": "gamma", "value": 0.12, "miou_train_unseen": tu},
                      "szn_maxcos": {"parameter": "tau", "value": 0.3, "miou_train_unseen": tu}}}


def test_the_gates_reading_names_the_best_gate_and_its_cost():
    from zss.evaluation.reading import explain_gates

    text = " ".join(explain_gates(_gate_scores(cs=(0.5, 0.3), thr=(0.58, 0.05),
                                               cos=(0.4, 0.2)), _tuning()).split())
    assert "SZN-CS, calibrated stacking (seen cosines minus γ), γ = 0.12" in text
    assert "unseen mIoU +30.0 points, seen mIoU -10.0 points" in text
    # hIoU 37.5 % against 0: clearly above; the cost 60 -> 50
    assert ("Best gate on hIoU: SZN-CS, clearly above SZN (0.0 % -> 37.5 %, unseen mIoU "
            "0.0 % -> 30.0 %); it costs 10.0 points of seen mIoU (60.0 % -> 50.0 %)") in text
    # t tuned on train_unseen (50 %) but only 5 % on U: the optimistic stand-in is named
    assert "optimistic stand-in" in text
    none = " ".join(explain_gates(_gate_scores(cs=(0.5, 0.1), thr=(0.6, 0.1), cos=(0.4, 0.1),
                                               szn=(0.6, 0.3)), _tuning(tu=0.1)).split())
    assert "No tuned gate beats SZN on hIoU (40.0 %)" in none and "optimistic" not in none
    assert explain_gates({"szn": {}}, {"skipped": "no train_unseen"}) == ""


def test_the_summary_labels_its_readings_per_protocol():
    """szn: the standard table and the original SZN code's seen/unseen table, each under its
    label; zs3: ZS3Net's reading (absent classes 0) instead of the standard one."""
    from zss.evaluation.metrics import zero_shot_scores
    from zss.evaluation.reading import READINGS, summary

    h = torch.zeros(21, 21, dtype=torch.int64)
    h[17, 17], h[17, 10], h[19, 19], h[19, 6], h[10, 10], h[0, 0] = 6, 4, 5, 5, 20, 50
    s = {"fcn_je": zero_shot_scores(h, SPLIT)}
    szn = summary(s, "szn")
    assert READINGS["standard"] in " ".join(szn.split()) and "original SZN code's reading" in szn
    rows = [line.split() for line in szn.splitlines() if line.startswith("FCN-JE")]
    assert len(rows) == 2  # one row per table
    standard, paper = rows
    assert float(standard[3]) == round(100 * s["fcn_je"]["miou_unseen"], 1) == 55.0
    # paper row: S pix, S mAcc, S mIoU, S fwIoU, U pix, U mAcc, U mIoU, U fwIoU, hIoU
    assert float(paper[7]) == round(100 * (0.6 + 0.5) / 4, 1) == 27.5  # U mIoU
    zs3 = summary(s, "zs3")
    assert READINGS["zs3"] in " ".join(zs3.split()) and "original SZN code" not in zs3
    (row,) = [line.split() for line in zs3.splitlines() if line.startswith("FCN-JE")]
    # 15 of the 19 S classes are absent: 0 in ZS3Net's mean, left out of the standard one
    assert float(row[2]) == round(100 * s["fcn_je"]["miou_seen_nan0"], 1)
    assert s["fcn_je"]["miou_seen_nan0"] < s["fcn_je"]["miou_seen"]
    assert "original SZN code" not in summary(s, "spnet")


def _cie_lab(rgb):
    """sRGB (0-255) to CIE L*a*b* (D65), the standard formulas."""
    import numpy as np

    c = np.asarray(rgb, dtype=float) / 255
    c = np.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                        [0.0193, 0.1192, 0.9505]]).T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]),
                     200 * (f[..., 1] - f[..., 2])], axis=-1)


def test_the_class_colours_can_be_told_apart():
    """predictions.png's palette for VOC's 21 classes and void: no two of its 22 colours
    closer than CIE76 ΔE 30 (VOC's own colour map: cat (64,0,0) is 8.8 from background
    black); background black, void white; the 60 classes of context60 all distinct."""
    import numpy as np

    from zss.data.files import voc_colormap
    from zss.data.splits import CONTEXT60_CLASSES, VOC_CLASSES
    from zss.evaluation.predictions_plot import class_palette

    def smallest_gap(colours):
        lab = _cie_lab(colours)
        gaps = np.linalg.norm(lab[:, None] - lab[None], axis=-1)
        return gaps[np.triu_indices(len(colours), 1)].min()

    voc = class_palette(VOC_CLASSES)
    assert tuple(voc[0]) == (0, 0, 0) and tuple(voc[255]) == (255, 255, 255)
    assert smallest_gap(np.concatenate([voc[:21], voc[255:]])) >= 30
    assert smallest_gap(voc_colormap()[:21]) < 10  # what it replaces
    context = class_palette(CONTEXT60_CLASSES)[:60]
    assert len({tuple(c) for c in context}) == 60
