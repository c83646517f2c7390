"""``python -m zss.report DIR``: the tables and plots of one run or a whole sweep.

Reads every job under ``DIR`` (``DIR`` itself for a single run; ``DIR/<n>/`` for a Hydra
multirun): its ``metrics.json`` (scores, status, embedding source, protocol), its
``.hydra/overrides.yaml`` (what the job changed) and its ``.hydra/config.yaml``; writes into
``DIR/report/``:

- ``results.csv``: one row per job x variant (FCN-S, FCN-JE, SZN, SZN-PS, and any other
  variant the run evaluated), scores in percent: pixel accuracy, mean accuracy, mIoU, fwIoU,
  mIoU over seen (S = train_seen ∪ train_unseen) and unseen (U) classes, hIoU; the split,
  the protocol, the embedding source, its width j (``embed_dim``) and the seed;
- ``results.md``: the same in the paper's layout, jobs that differ only in ``seed`` merged
  into mean ± std (n), then every failed, skipped and unfinished job with its reason;
- plots (PNG): mIoU (overall, S, U) against j when the jobs differ in ``model.embed_dim``
  (log x axis), bars per value when they differ in ``model.loss`` or ``optimizer``, bars per
  source and width when they differ in ``embedding`` (``embedding_sources.png``), and the
  training curves of every job (its CSV log, ``csv/version_*/metrics.csv``).

Nothing else is written, and nothing of the runs is changed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from zss.evaluation.sweep_plots import plots
from zss.evaluation.sweep_tables import find_jobs, results_csv, results_md


def report(root: str | Path) -> tuple[Path, str]:
    """Write ``root/report/`` (results.csv, results.md, the plots); return the folder and the
    markdown text.

    Raises:
        FileNotFoundError: ``root`` holds no run.
    """
    root = Path(root)
    jobs = find_jobs(root)
    out = root / "report"
    out.mkdir(exist_ok=True)
    (out / "results.csv").write_text(results_csv(jobs))
    text = results_md(jobs)
    written = plots(jobs, out)
    if written:
        text += "\nPlots: " + ", ".join(p.name for p in written) + "\n"
    if (not any(p.name == "training_curves.png" for p in written)
            and any(j.path.glob("csv/version_*/metrics.csv") for j in jobs)):
        text += ("No training_curves.png: no job logged a training loss (each ran fewer steps "
                 "than trainer.log_every_n_steps).\n")
    (out / "results.md").write_text(text)
    return out, text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m zss.report",
        description="Tables (results.md, results.csv) and plots of a zss run or sweep, "
                    "written into DIR/report/.")
    parser.add_argument("dir", help="the folder of a run (outputs/...) or a sweep "
                                    "(multirun/<task_name>/<timestamp>)")
    args = parser.parse_args(argv)
    try:
        out, text = report(args.dir)
    except FileNotFoundError as err:
        sys.exit(f"zss.report: error: {err}")
    print(text)
    print(f"Written to {out}/")


if __name__ == "__main__":
    main()
