"""The plots of ``python -m zss.report``: mIoU (overall, S, U) against j, bars per loss or
optimiser, bars per embedding source and width, and every job's training curves."""

from __future__ import annotations

import csv
import math
import statistics
from pathlib import Path

from zss.evaluation.sweep_tables import PLOTTED_AXES, Job, common_overrides
from zss.inference.variants import title


def _swept(jobs: list[Job]) -> dict[str, list[str]]:
    values: dict[str, set[str]] = {}
    for job in jobs:
        for key, value in job.settings.items():
            values.setdefault(key, set()).add(value)
    return {k: sorted(v) for k, v in values.items() if len(v) > 1}


def source_plot(jobs: list[Job], out: Path) -> Path | None:
    """``embedding_sources.png`` when the finished jobs differ in ``embedding`` (the config
    of the class vectors, e.g. conf/experiment/ablation_embedding_source.yaml): one panel per
    variant, one group of bars (mIoU, mIoU S, mIoU U; mean over seeds) per source and width
    j, labelled ``<embedding>`` and ``j=<width>``. None (nothing written) otherwise."""
    import matplotlib.pyplot as plt

    finished = [j for j in jobs if j.status == "finished"]
    groups: dict[tuple[str, int | None], list[Job]] = {}
    for job in finished:
        groups.setdefault((job.settings.get("embedding", "?"), job.embed_dim), []).append(job)
    if len({source for source, _ in groups}) < 2:
        return None
    keys = sorted(groups, key=lambda k: (k[0], k[1] or 0))
    variants = list(dict.fromkeys(v for j in finished for v in j.scores()))
    fig, axes = plt.subplots(1, len(variants), figsize=(max(4.5, 1.1 * len(keys)) * len(variants),
                                                        3.8), squeeze=False)
    for ax, variant in zip(axes[0], variants, strict=True):
        for metric, label, offset in (("miou", "mIoU", -0.27), ("miou_seen", "mIoU S", 0.0),
                                      ("miou_unseen", "mIoU U", 0.27)):
            xs, ys = [], []
            for i, key in enumerate(keys):
                vals = [j.scores().get(variant, {}).get(metric, math.nan) for j in groups[key]]
                vals = [v for v in vals if not math.isnan(v)]
                if vals:
                    xs.append(i + offset)
                    ys.append(100 * statistics.mean(vals))
            if ys:
                ax.bar(xs, ys, width=0.27, label=label)
        ax.set_xticks(range(len(keys)), [f"{s}\nj={j}" for s, j in keys], fontsize=7)
        ax.set_xlabel("embedding source and width")
        ax.set_title(title(variant))
        ax.set_ylabel("percent")
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = out / "embedding_sources.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plots(jobs: list[Job], out: Path) -> list[Path]:
    """The PNGs of ``python -m zss.report`` for ``jobs``, written into ``out``; their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    finished = [j for j in jobs if j.status == "finished"]
    for key, values in _swept(jobs).items():
        kind = PLOTTED_AXES.get(key)
        if kind is None or len(finished) < 2:
            continue
        variants = list(dict.fromkeys(v for j in finished for v in j.scores()))
        fig, axes = plt.subplots(1, len(variants), figsize=(4.5 * len(variants), 3.6),
                                 squeeze=False)
        for ax, variant in zip(axes[0], variants, strict=True):
            for metric, label in (("miou", "mIoU"), ("miou_seen", "mIoU S"),
                                  ("miou_unseen", "mIoU U")):
                xs, ys = [], []
                for value in values:
                    runs = [j for j in finished if j.settings.get(key) == value]
                    vals = [j.scores().get(variant, {}).get(metric, math.nan) for j in runs]
                    vals = [v for v in vals if not math.isnan(v)]
                    if vals:
                        xs.append(value)
                        ys.append(100 * statistics.mean(vals))
                if not ys:
                    continue
                if kind == "line":
                    ax.plot([float(x) for x in xs], ys, marker="o", label=label)
                else:
                    offset = {"miou": -0.27, "miou_seen": 0.0, "miou_unseen": 0.27}[metric]
                    ax.bar([values.index(x) + offset for x in xs], ys, width=0.27, label=label)
            if kind == "line":
                ax.set_xscale("log")
                ax.set_xlabel("embedding dimension j")
            else:
                ax.set_xticks(range(len(values)), values)
                ax.set_xlabel(key)
            ax.set_title(title(variant))
            ax.set_ylabel("percent")
            ax.legend(fontsize=8)
        skipped = sorted({str(j.settings.get(key)) for j in jobs if j.status == "skipped"},
                         key=lambda v: (len(v), v))
        if skipped:
            fig.suptitle(f"skipped ({key}): {', '.join(skipped)}", fontsize=9)
        fig.tight_layout()
        path = out / f"{'miou_vs_j' if key == 'model.embed_dim' else key.replace('.', '_')}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    sources = source_plot(jobs, out)
    if sources is not None:
        written.append(sources)
    curves = [(j, sorted(j.path.glob("csv/version_*/metrics.csv"))) for j in finished]
    curves = [(j, c) for j, c in curves if c]
    common = common_overrides(jobs)
    if curves:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        drawn = 0
        for job, files in curves:
            steps, losses = [], []
            for file in files:
                with open(file, newline="") as f:
                    for row in csv.DictReader(f):
                        loss = next((row[k] for k in row if k.startswith("train/")
                                     and k.endswith("/loss") and "seenmask" not in k
                                     and row[k]), None)
                        if loss is not None:
                            steps.append(int(row["step"]))
                            losses.append(float(loss))
            if losses:
                ax.plot(steps, losses, label=job.name(common=common)[:60])
                drawn += 1
        ax.set_xlabel("stage-1 training step")
        ax.set_ylabel("training loss")
        if drawn:  # (a run shorter than trainer.log_every_n_steps logs no training loss)
            ax.legend(fontsize=7)
            fig.tight_layout()
            path = out / "training_curves.png"
            fig.savefig(path, dpi=100)
            written.append(path)
        plt.close(fig)
    return written
