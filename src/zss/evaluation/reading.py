"""A short reading of a zero-shot results table, derived from the measured numbers (printed by
``python -m zss.run`` when ``explain=true``, as in ``+experiment=demo``).

It states what the paper's analysis looks for — FCN-JE mapping unseen pixels onto seen
classes, SZN-PS showing that the embedding transfers when the seen/unseen decision is right,
SZN landing between them according to the seenmask's recall on U — and says so only where the
numbers of the run show it; every sentence is chosen by comparing the values.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping

import torch

from zss.data.splits import ClassSplit
from zss.evaluation.metrics import per_class_iou
from zss.inference.gates import GATES
from zss.inference.variants import title

__all__ = ["READINGS", "explain", "explain_gates", "summary", "summary_table",
           "unseen_confusions"]

SUMMARY_KEYS = (("miou", "mIoU"), ("miou_seen", "mIoU S"), ("miou_unseen", "mIoU U"),
                ("hiou", "hIoU"), ("pixel_acc", "pix acc"))
ZS3_KEYS = (("miou_nan0", "mIoU"), ("miou_seen_nan0", "mIoU S"),
            ("miou_unseen_nan0", "mIoU U"), ("hiou_nan0", "hIoU"), ("pixel_acc", "pix acc"))
PAPER_COLUMNS = (("paper/seen/pixel_acc", "S pix"), ("paper/seen/mean_acc", "S mAcc"),
                 ("paper/seen/miou", "S mIoU"), ("paper/seen/fwiou", "S fwIoU"),
                 ("paper/unseen/pixel_acc", "U pix"), ("paper/unseen/mean_acc", "U mAcc"),
                 ("paper/unseen/miou", "U mIoU"), ("paper/unseen/fwiou", "U fwIoU"),
                 ("paper/hiou", "hIoU"))
READINGS = {
    "standard": "standard reading (per-class IoU of the full confusion matrix, means over "
                "S = train_seen ∪ train_unseen and over U = unseen, absent classes left out: "
                "SPNet, CaGNet and later papers)",
    "zs3": "ZS3Net's reading (its Evaluator: a class absent from the test split and never "
           "predicted counts 0 in every mean)",
    "paper": "the original SZN code's reading (the thesis's tables: utils.label_accuracy_score"
             " with unseen=U, one matrix of the pixels whose truth is in S and one of those in"
             " U, each over all classes)",
}
"""The label printed above each summary table: which reading of the matrices it is."""
CLEAR_GAP = 0.10
"""A difference of at least 10 IoU / recall points is called clear."""


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f} %"


def summary_table(scores: Mapping[str, Mapping[str, float]],
                  columns: tuple[tuple[str, str], ...] = SUMMARY_KEYS) -> str:
    """Per variant one row of ``columns`` (``(metric key, title)``; by default mIoU, mIoU
    over S, over U, hIoU and pixel accuracy of the standard reading), in percent."""
    width = max(9, *(len(title) + 2 for _, title in columns))
    lines = [f"{'':<8}" + "".join(f"{title:>{width}}" for _, title in columns)]
    for v, s in scores.items():
        cells = (s.get(k, math.nan) for k, _ in columns)
        lines.append(f"{title(v):<8}" + "".join(
            f"{'nan':>{width}}" if math.isnan(x) else f"{100 * x:{width}.1f}" for x in cells))
    return "\n".join(lines)


def summary(scores: Mapping[str, Mapping[str, float]], protocol: str = "szn") -> str:
    """The summary every run ends with, each table labelled with its reading
    (:data:`READINGS`): the standard reading (``zs3`` protocol: ZS3Net's ``_nan0`` reading,
    the one its numbers use) plus, when SZN was evaluated, the seenmask's line (its recall of
    "unseen" on train_unseen and on U pixels and its precision); under the ``szn`` protocol
    on a split with U, also the original SZN code's seen/unseen reading (``paper/`` keys)."""
    reading = "zs3" if protocol == "zs3" else "standard"
    text = (f"{_wrap(READINGS[reading])}:\n"
            + summary_table(scores, ZS3_KEYS if reading == "zs3" else SUMMARY_KEYS))
    s = scores.get("szn", {})
    if "seenmask_precision" in s:
        text += ("\nseenmask: recall on train_unseen "
                 + ", on U ".join(_num(s[k]) for k in ("seenmask_recall_train_unseen",
                                                       "seenmask_recall_unseen"))
                 + f", precision {_num(s['seenmask_precision'])}")
    if protocol == "szn" and any("paper/hiou" in v for v in scores.values()):
        text += f"\n\n{_wrap(READINGS['paper'])}:\n{summary_table(scores, PAPER_COLUMNS)}"
    return text


def _num(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}"


def unseen_confusions(hist: torch.Tensor, split: ClassSplit) -> tuple[float, dict[str, str]]:
    """From a (C, C) confusion matrix (rows = truth): the share of U pixels predicted as a
    seen class (S = train_seen ∪ train_unseen), NaN without U pixels, and for every U class
    with pixels its most frequent prediction."""
    h = hist.detach().to("cpu", torch.float64)
    u, s = split.unseen_idx, split.seen_idx
    total = h[u].sum() if u else torch.tensor(0.0)
    share = float(h[u][:, s].sum() / total) if total > 0 else math.nan
    top = {split.class_names[c]: split.class_names[int(h[c].argmax())]
           for c in u if h[c].sum() > 0}
    return share, top


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=100, break_on_hyphens=False)


def explain(scores: Mapping[str, Mapping[str, float]], split: ClassSplit,
            hists: Mapping[str, torch.Tensor] | None = None) -> str:
    """The reading of one SZN run's test scores (keys as in ``metrics.json`` per variant).

    Args:
        scores: ``{variant: {metric: value}}`` with fcn_je, szn (including the seenmask_*
            scores) and szn_ps.
        split: the class split.
        hists: ``{variant: (C, C) confusion matrix}``, to say where FCN-JE's U pixels went
            and SZN-PS's IoU per U class (optional).

    Returns:
        text: the seenmask's recalls and precision, and a few sentences, each chosen by
        comparing the values (differences of :data:`CLEAR_GAP` or more count as clear); ""
        without the three variants. (Every run prints :func:`summary` before it.)
    """
    if not {"fcn_je", "szn", "szn_ps"} <= set(scores):
        return ""
    hists = hists or {}
    je, szn, ps = scores["fcn_je"], scores["szn"], scores["szn_ps"]
    r_tu, r_u = szn["seenmask_recall_train_unseen"], szn["seenmask_recall_unseen"]
    prec = szn["seenmask_precision"]
    tu, uu = ", ".join(split.train_unseen), ", ".join(split.unseen)
    lines = [_wrap(f"Seenmask (SZN): says \"unseen\" for {_pct(r_tu)} of the train_unseen "
                        f"pixels ({tu}) and for {_pct(r_u)} of the U pixels ({uu}); "
                        f"{_pct(prec)} of the pixels it calls unseen are not train_seen "
                        "(precision)."), ""]
    x, y, a = je["miou_unseen"], ps["miou_unseen"], szn["miou_unseen"]
    if any(math.isnan(v) for v in (x, y, a, r_tu, r_u)):
        return "\n".join(lines + ["The test split has no U or train_unseen pixels: nothing to "
                                  "read about zero-shot transfer."])
    said = []
    if "fcn_je" in hists:
        share, top = unseen_confusions(hists["fcn_je"], split)
        where = ", ".join(f"{k} mostly as {v}" for k, v in top.items())
        said.append(f"FCN-JE labels {_pct(share)} of the U pixels as classes with training "
                    f"labels ({where}), so its unseen mIoU is {_pct(x)}.")
    else:
        said.append(f"FCN-JE's unseen mIoU is {_pct(x)}.")
    per_class = ""
    if "szn_ps" in hists:
        iou = per_class_iou(hists["szn_ps"])
        per_class = " (" + ", ".join(f"{split.class_names[c]} {_pct(float(iou[c]))}"
                                     for c in split.unseen_idx) + ")"
    if y - x >= CLEAR_GAP and y >= 0.5:
        said.append(f"With the perfect seenmask (SZN-PS) it is {_pct(y)}{per_class}: the "
                    "visual-to-semantic map does transfer to the unseen classes when the "
                    "seen/unseen decision is right.")
    elif y - x >= CLEAR_GAP:
        said.append(f"With the perfect seenmask (SZN-PS) it is {_pct(y)}{per_class}: the "
                    "visual-to-semantic map transfers to the unseen classes, but only partly.")
    else:
        said.append(f"Even SZN-PS reaches only {_pct(y)}{per_class}: in this run the embedding "
                    "does not transfer to the unseen classes (train longer, or check the data and the "
                    "class vectors: random ones, e.g. embedding.pretrained=null, carry nothing "
                    "to transfer).")
    where = ("between the two" if min(x, y) <= a <= max(x, y)
             else "above both" if a > max(x, y) else "below both")
    said.append(f"SZN, with the learned seenmask, gets {_pct(a)}, {where}: it can only be "
                "right on the U pixels its seenmask sends to the unseen branch.")
    n = len(split.train_unseen)
    if r_u < CLEAR_GAP <= r_tu - r_u:
        said.append(f"Its seenmask recalls {_pct(r_tu)} of the train_unseen pixels it was "
                    f"trained on but only {_pct(r_u)} of the U pixels: it learned to recognise "
                    f"{tu} rather than unfamiliar pixels. With {n} train_unseen classes that "
                    "is the paper's finding: the seenmask needs a denser train_unseen set.")
    elif r_tu - r_u >= CLEAR_GAP:
        said.append(f"Its seenmask recalls {_pct(r_u)} of the U pixels, clearly less than the "
                    f"{_pct(r_tu)} of the train_unseen pixels it was trained on: from {n} "
                    "train_unseen classes it generalises only partly to classes it never saw.")
    elif r_u >= 0.5:
        said.append(f"Its seenmask recalls {_pct(r_u)} of the U pixels (train_unseen: "
                    f"{_pct(r_tu)}): it generalises to classes it never saw.")
    else:
        said.append(f"Its seenmask rarely says unseen: {_pct(r_tu)} of the train_unseen and "
                    f"{_pct(r_u)} of the U pixels.")
    if not math.isnan(prec) and prec < 0.5:
        said.append(f"Its precision of {_pct(prec)} means most pixels it calls unseen are "
                    "train_seen pixels, which then lose their seen class.")
    h_ps, h_szn = ps["hiou"], szn["hiou"]
    said.append(f"hIoU: SZN-PS {_pct(h_ps)} " + (">=" if h_ps >= h_szn else "<")
                + f" SZN {_pct(h_szn)}.")
    return "\n".join(lines + [_wrap(t) for t in said])


def explain_gates(scores: Mapping[str, Mapping[str, float]],
                  tuning: Mapping[str, object]) -> str:
    """The reading of the tuned gates against the paper's SZN (keys as in ``metrics.json``).

    Args:
        scores: ``{variant: {metric: value}}`` with ``szn`` or ``fcn_je`` and the gate
            variants (:data:`zss.inference.gates.GATES`).
        tuning: ``metrics.json``'s ``gate_tuning``: per gate its ``parameter``, ``value``,
            and ``miou_train_unseen`` on the held-out training images.

    Returns:
        per gate its tuned value, hIoU, unseen and seen mIoU change against the baseline (SZN,
        or FCN-JE without a seenmask), then which gate did best on hIoU and what it cost in
        seen mIoU — every sentence chosen by comparing the values; ``""`` without gates.
    """
    gates = {g: r for g, r in tuning.get("gates", {}).items()  # type: ignore[union-attr]
             if g in scores}
    if not gates:
        return ""
    base = "szn" if "szn" in scores else "fcn_je"
    ref = scores[base]
    said = []

    def pts(d: float) -> str:
        return f"{100 * d:+.1f} points"

    for g, r in gates.items():
        s = scores[g]
        gate = GATES[g]
        said.append(f"{gate.title}, {gate.description}, {gate.symbol} = "
                    f"{r['value']:.4g} (tuned on held-out training images): hIoU {_pct(s['hiou'])}"
                    f" against {title(base)}'s {_pct(ref['hiou'])}; unseen mIoU "
                    f"{pts(s['miou_unseen'] - ref['miou_unseen'])}, seen mIoU "
                    f"{pts(s['miou_seen'] - ref['miou_seen'])}.")
        tu = r.get("miou_train_unseen", math.nan)
        if gate.needs_seenmask and tu - s["miou_unseen"] >= CLEAR_GAP:
            said.append(f"Its train_unseen mIoU on the tuning images was {_pct(tu)}, its U "
                        f"mIoU on test {_pct(s['miou_unseen'])}: the seenmask was trained on "
                        "the train_unseen classes, so they are an optimistic stand-in for U "
                        "when tuning its threshold.")
    defined = {g: scores[g]["hiou"] for g in gates if not math.isnan(scores[g]["hiou"])}
    if defined and not math.isnan(ref["hiou"]):
        best = max(defined, key=defined.get)
        s = scores[best]
        gain, cost = s["hiou"] - ref["hiou"], ref["miou_seen"] - s["miou_seen"]
        cost_words = (f"it costs {100 * cost:.1f} points of seen mIoU ({_pct(ref['miou_seen'])}"
                      f" -> {_pct(s['miou_seen'])})" if cost > 0 else
                      f"seen mIoU does not drop ({_pct(ref['miou_seen'])} -> "
                      f"{_pct(s['miou_seen'])})")
        if gain > 0:
            how = "clearly" if gain >= CLEAR_GAP else "slightly"
            said.append(f"Best gate on hIoU: {title(best)}, {how} above {title(base)} "
                        f"({_pct(ref['hiou'])} -> {_pct(s['hiou'])}, unseen mIoU "
                        f"{_pct(ref['miou_unseen'])} -> {_pct(s['miou_unseen'])}); {cost_words}.")
        else:
            said.append(f"No tuned gate beats {title(base)} on hIoU ({_pct(ref['hiou'])}); "
                        f"the best, {title(best)}, gets {_pct(s['hiou'])}.")
    return "\n".join(_wrap(t) for t in said)
