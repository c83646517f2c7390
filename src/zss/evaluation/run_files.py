"""A run's result files, written from its :class:`~zss.evaluation.evaluator.TestResult` (by
global rank 0 only, each atomically): ``per_class_iou.csv``, ``confusion_matrices.json``,
``tradeoff.png`` (the seen–unseen curve, a test-set analysis), ``predictions.png``
(``visualize=N``), ``results.txt`` (what the run prints at the end: the per-class table, the
gates' tuning, the summary in each reading, the reading of ``explain=true``, the machine),
and ``metrics.json`` (the scores and everything the run recorded about itself)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from zss.data.splits import ClassSplit
from zss.evaluation.evaluator import TestResult
from zss.evaluation.predictions_plot import save_test_predictions
from zss.evaluation.reading import explain, explain_gates, summary
from zss.evaluation.tables import format_table, format_tuning, table_csv
from zss.evaluation.tradeoff_plot import save_tradeoff_png
from zss.inference.variants import title
from zss.runtime.checkpointing import write_atomic

__all__ = ["run_metrics", "write_metrics_json", "write_test_files"]

AUSUC_NOTE = {
    "note": "test-set analysis: calibrated stacking with gamma swept on the test split; not a "
            "tuned result",
    "definition": "Chao et al. 2016: gamma subtracted from the cosines of S = train_seen + "
                  "train_unseen, against U; area under miou_seen (S) over miou_unseen (U)"}


GAPS_NOTE = {"note": "test-set analysis: each gate's parameter swept on the test split "
                     "against the value tuned on held-out training images; never used to "
                     "choose anything"}


def run_metrics(result: TestResult | None, tuning: dict[str, Any],
                selected: dict[str, float]) -> dict[str, float]:
    """``metrics.json``'s flat scores: the held-out score of each trained stage's selected
    checkpoint (``selected``: ``val/...``), the tuned gates (``tune/<gate>/<parameter>``,
    ``tune/<gate>/objective``: an untuned gate's too, null when undefined) and the test split
    (``test/<variant>/<metric>``, :meth:`TestResult.metrics`; none without a test)."""
    tuned: dict[str, float] = {}
    for g, r in tuning.get("gates", {}).items():
        if r["value"] is not None:
            tuned[f"tune/{g}/{r['parameter']}"] = r["value"]
        tuned[f"tune/{g}/objective"] = r["objective"]  # untuned too; null when undefined
    return {**selected, **tuned, **(result.metrics() if result is not None else {})}


def write_test_files(out: Path, result: TestResult, meta: dict[str, Any], split: ClassSplit,
                     test_set: str, explain_it: bool = False, visualize: int = 0,
                     module: Any = None, test_dataset: Any = None) -> str:
    """Write the test's files into ``out`` and return the text the run prints (also
    ``results.txt``); records the test image count, the curve (``ausuc``) and the PNGs'
    paths in ``meta``.

    Args:
        out: the run directory.
        result: the test pass's result.
        meta: what ``metrics.json`` records (``gate_tuning``, ``protocol``,
            ``embedding_source``, ``machine``, ``seed`` are read from it).
        split: the class split; test_set: the test list's name.
        explain_it: add the reading of the table (:mod:`zss.evaluation.reading`).
        visualize: draw this many test images into ``predictions.png`` (with ``module`` and
            ``test_dataset``); 0 for none.
    """
    meta["test_images"] = result.images
    meta.setdefault("images", {})["test"] = result.images
    tuning = meta.get("gate_tuning", {})
    write_atomic(out / "per_class_iou.csv", table_csv(result.table))
    write_atomic(out / "confusion_matrices.json", json.dumps({
        "classes": list(split.class_names), "test_images": result.images,
        "rows": "ground truth", "columns": "prediction", "ignore_index": 255,
        "matrices": {v: h.tolist() for v, h in result.matrices.items()}}))
    source = meta.get("embedding_source")
    source = f" (class embeddings: {source})" if source else ""
    parts = [f"Test split '{test_set}' ({result.images} images), {split.name}, protocol "
             f"{meta['protocol']}{source}, IoU in percent:\n"
             f"{format_table(result.scores, result.table)}"]
    tuned = {g: r["value"] for g, r in tuning.get("gates", {}).items()}
    gaps = result.gate_gaps(tuned)
    if gaps:
        meta["gate_test_curves"] = {**GAPS_NOTE, **gaps}
    if tuning or result.tradeoff is not None:
        parts.append(format_tuning(tuning, result.tradeoff, gaps))
    parts.append(f"Summary (percent; {split.name}, protocol {meta['protocol']}):\n"
                 f"{summary(result.scores, meta['protocol'])}")
    if result.tradeoff is not None:
        points = {title(v): (s["miou_unseen"], s["miou_seen"]) for v, s in result.scores.items()}
        png = save_tradeoff_png(result.tradeoff, points, out / "tradeoff.png",
                                f"{split.name}, test '{test_set}'")
        meta["ausuc"] = {**AUSUC_NOTE, **result.tradeoff, "png": str(png)}
        parts.append(f"Seen-unseen curve (test-set analysis): {png}")
    if explain_it:
        reading = [explain(result.scores, split, result.matrices)]
        if tuning.get("gates"):
            reading.append(explain_gates(result.scores, tuning))
        parts += [r for r in reading if r]
    if visualize:
        png = save_test_predictions(module, test_dataset, visualize, out / "predictions.png")
        meta["predictions_png"] = str(png)
        parts.append(f"Predictions of {visualize} test images: {png}")
    text = "\n\n".join(parts)
    m = meta["machine"]
    write_atomic(out / "results.txt", f"{text}\n\nMachine: {m['cpu']} ({m['cpu_cores']} "
                 f"logical cores), GPU {m['gpu'] or 'none'}, torch {m['torch']}; seed "
                 f"{meta['seed']}. Runs repeat exactly on one machine; the last digits may "
                 "differ on another CPU model or a GPU.\n")
    return text


def write_metrics_json(out: Path, payload: dict[str, Any]) -> None:
    """Write ``metrics.json`` as strict JSON: an undefined score (NaN, e.g. no unseen class
    present) is ``null``."""
    write_atomic(out / "metrics.json", json.dumps(_strict(payload), indent=2, allow_nan=False))


def _strict(x: Any) -> Any:
    """``x`` with every NaN float replaced by None (strict JSON)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    return x
