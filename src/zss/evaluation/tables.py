"""The results as text: the per-class IoU table with every summary score, and its CSV."""

from __future__ import annotations

import csv
import io
import math

from zss.evaluation.metrics import (
    PAPER_KEYS,
)
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
