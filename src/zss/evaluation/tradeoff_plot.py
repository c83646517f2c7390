"""The seen–unseen trade-off curve of calibrated stacking as a PNG (matplotlib), with the
operating point of every variant marked. A test-set analysis: the title says so."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

__all__ = ["save_tradeoff_png"]


def save_tradeoff_png(tradeoff: Mapping[str, object], points: Mapping[str, tuple[float, float]],
                      path: str | Path, title: str = "") -> Path:
    """Draw the curve and the operating points.

    Args:
        tradeoff: :meth:`zss.evaluation.evaluator.ZeroShotEvaluator.tradeoff` — ``miou_seen``,
            ``miou_unseen`` per γ and ``ausuc``, values in [0, 1] (NaN points are skipped);
            drawn in percent, the AUSUC too (the area as a percentage of the unit square).
        points: ``{label: (miou_unseen, miou_seen)}``, e.g. every gate variant's test scores.
        path: the PNG file to write.
        title: first title line (e.g. the split); the second says it is a test-set analysis.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display; before pyplot is imported
    import matplotlib.pyplot as plt

    defined = [(100 * x, 100 * y) for x, y in zip(tradeoff["miou_unseen"],
                                                  tradeoff["miou_seen"], strict=True)
               if not (math.isnan(x) or math.isnan(y))]
    xs, ys = [x for x, _ in defined], [y for _, y in defined]
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    ausuc = float(tradeoff["ausuc"])  # type: ignore[arg-type]
    ax.plot(xs, ys, "-", color="0.4",  # the area in the axes' unit: percent x percent / 100
            label=f"calibrated stacking of S vs U, γ swept (AUSUC {100 * ausuc:.2f} %)")
    markers = "os^vDPX*"
    for i, (name, (x, y)) in enumerate(points.items()):
        if not (math.isnan(x) or math.isnan(y)):
            ax.plot(100 * x, 100 * y, markers[i % len(markers)], markersize=8, label=name)
    ax.set_xlabel("unseen mIoU (U), %")
    ax.set_ylabel("seen mIoU (train_seen ∪ train_unseen), %")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title((title + "\n" if title else "")
                 + "TEST-SET ANALYSIS: curve swept on the test split, not a tuned result",
                 fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
