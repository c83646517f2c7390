"""The results as text: the per-class IoU table with every summary score, its CSV, and the
gates' tuning lines."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from zss.evaluation.metrics import PAPER_KEYS
from zss.inference.variants import gated as gated_variants


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
    gated = next((v for v in gated_variants() if v in scores), None)
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


def format_tuning(tuning: dict[str, Any], tradeoff: dict[str, Any] | None,
                  curves: dict[str, dict[str, Any]] | None = None) -> str:
    """The lines printed beside the results table: the tuning rule, each gate's tuned value
    and objective (or why none was tuned), then the test-set analyses — each gate's own test
    curve against its tuned value (``curves``, :meth:`TestResult.gate_gaps`) and the AUSUC of
    the seen–unseen curve."""
    lines = []
    if "skipped" in tuning:
        lines.append(f"Gates: not tuned — {tuning['skipped']}")
    else:
        rule = tuning.get("rule", {})
        budget = (f" {100 * rule['seen_budget']:g} points" if rule.get("name") == "seen_budget"
                  else "")
        lines.append(f"Gates tuned on {tuning['images']} held-out training images of stage 2 "
                     f"(train_unseen standing in for U), rule {rule.get('name', 'stand_in')}"
                     f"{budget}: {rule.get('criterion', tuning['objective'])}:")
        for g, r in tuning["gates"].items():
            if r["value"] is None:
                lines.append(f"  {g:<14} {r['parameter']:<6}untuned, not evaluated: "
                             f"{r.get('untuned', 'no value was chosen')}")
                continue
            budget = (f" (best {_pct(r['seen_best'])}, budget {100 * r['budget']:g} points)"
                      if "seen_best" in r else "")
            rate = (f"; unseen-branch share {_pct(r['rate'])} (train_unseen {_pct(r['target_rate'])})"
                    if "target_rate" in r else "")
            lines.append(f"  {g:<14} {r['parameter']:<6}= {r['value']:<10.4g} train_seen "
                         f"{_pct(r['miou_train_seen'])}{budget}{rate}, train_unseen "
                         f"{_pct(r['miou_train_unseen'])}; stand-in hIoU {_pct(r['objective'])}")
        untuned = {"szn": "szn (t = 0.5)", "fcn_je": "fcn_je (γ = 0)"}
        for name, o in tuning.get("reference", {}).items():
            lines.append(f"  {untuned[name]:<25} stand-in hIoU {_pct(o)} (untuned, same images)")
    if curves:
        lines.append("Each gate's own test curve (its parameter swept on the TEST split: an "
                     "analysis, not a tuned result): best hIoU vs the tuned value's")
        for g, c in curves.items():
            lines.append(f"  {g:<14} best {_pct(c['best_hiou'])} at {c['parameter']} = "
                         f"{c['best_value']:.5g}; tuned {_pct(c['tuned_hiou'])} (gap "
                         f"{100 * c['gap']:.1f} points)")
    if tradeoff is not None:
        a = tradeoff["ausuc"]
        lines.append("AUSUC (calibrated stacking of S against U, γ swept on the TEST split: an "
                     "analysis, not a tuned result): " + ("n/a" if math.isnan(a) else f"{100 * a:.2f} %"))
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.1f} %"
