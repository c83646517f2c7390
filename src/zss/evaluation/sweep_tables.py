"""The jobs of a run or a sweep and their results as tables (``python -m zss.report``):
``results.csv``, one row per job × variant, and ``results.md``, jobs that differ only in
``seed`` merged into mean ± std (n), then every failed, skipped or unfinished job."""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zss.inference.variants import title

COLUMNS = (("pixel_acc", "pix acc"), ("mean_acc", "mean acc"), ("miou", "mIoU"),
           ("fwiou", "fwIoU"), ("miou_seen", "mIoU S"), ("miou_unseen", "mIoU U"),
           ("hiou", "hIoU"))
PLOTTED_AXES = {"model.embed_dim": "line", "model.loss": "bars", "optimizer": "bars"}


@dataclass
class Job:
    """One run folder: its overrides, status and per-variant scores (fractions)."""

    path: Path
    overrides: list[str]
    status: str
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> dict[str, str]:
        """``{key: value}`` of the job's command-line overrides (``+``/``~`` stripped)."""
        out = {}
        for o in self.overrides:
            key, _, value = o.lstrip("+~").partition("=")
            out[key] = value
        return out

    def name(self, without: tuple[str, ...] = (), common: frozenset[str] = frozenset()) -> str:
        """The job's overrides, as typed, without the keys in ``without`` and the overrides
        in ``common`` (those every job of the sweep shares)."""
        kept = [o for o in self.overrides if o.lstrip("+~").partition("=")[0] not in without
                and o not in common]
        return " ".join(kept) or "(the shared settings)"

    @property
    def embed_dim(self) -> int | None:
        """j, the class vectors' width the job ran with (``model.embed_dim`` of its recorded
        ``config.yaml``; None for FCN-S or a job without one)."""
        if self.payload.get("embedding_source") is None:
            return None
        path = self.path / "config.yaml"
        cfg = yaml.safe_load(path.read_text()) if path.is_file() else None
        return ((cfg or {}).get("model") or {}).get("embed_dim")

    def scores(self) -> dict[str, dict[str, float]]:
        """``{variant: {metric: value}}`` of the test split from ``metrics.json`` (None ->
        NaN); its held-out ``val/`` and ``tune/`` scores are not results."""
        out: dict[str, dict[str, float]] = {}
        for key, value in self.payload.get("metrics", {}).items():
            stage, variant, metric = key.split("/", 2)
            if stage != "test":
                continue
            out.setdefault(variant, {})[metric] = math.nan if value is None else float(value)
        return out


def find_jobs(root: str | Path) -> list[Job]:
    """Every job folder under ``root`` (a folder with Hydra's ``.hydra/`` record or a
    ``metrics.json``), in the order of their paths (job numbers sorted as numbers).

    Raises:
        FileNotFoundError: ``root`` does not exist or holds no job.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (give the folder of a run or a sweep)")
    folders = {p.parent for p in root.rglob(".hydra")} | {p.parent for p in
                                                          root.rglob("metrics.json")}
    folders = {f for f in folders if "report" not in f.relative_to(root).parts}

    def order(p: Path):
        return [int(x) if x.isdigit() else x for x in p.relative_to(root).parts]

    jobs = [_read_job(f) for f in sorted(folders, key=order)]
    if not jobs:
        raise FileNotFoundError(f"{root} holds no zss run (no .hydra/ or metrics.json "
                                "below it)")
    return jobs


def _read_job(folder: Path) -> Job:
    overrides_file = folder / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    overrides = [o for o in overrides or [] if not o.startswith(("hydra.", "paths."))]
    metrics = folder / "metrics.json"
    if not metrics.is_file():
        return Job(folder, overrides, "unfinished",
                   "no metrics.json: still running, killed, or stopped before it started "
                   "(`python -m zss.run resume=DIR` continues a killed run)")
    try:
        payload = json.loads(metrics.read_text())
    except ValueError as err:
        return Job(folder, overrides, "unreadable", f"metrics.json: {err}")
    status = payload.get("status", "finished")
    reason = payload.get("error") or payload.get("reason") or ""
    return Job(folder, overrides, status, reason, payload)


def _pct(x: float) -> str:
    return "" if math.isnan(x) else f"{100 * x:.2f}"


def results_csv(jobs: list[Job]) -> str:
    """One row per finished job x variant; scores in percent (empty when undefined)."""
    f = io.StringIO(newline="")
    writer = csv.writer(f)
    writer.writerow(["job", "folder", "variant", *(f"{k}_percent" for k, _ in COLUMNS),
                     "split", "protocol", "embedding_source", "embed_dim", "seed"])
    for job in jobs:
        if job.status != "finished":
            continue
        for variant, s in job.scores().items():
            writer.writerow([job.name(), str(job.path), title(variant),
                             *(_pct(s.get(k, math.nan)) for k, _ in COLUMNS),
                             job.payload.get("split"), job.payload.get("protocol", "szn"),
                             job.payload.get("embedding_source"), job.embed_dim,
                             job.payload.get("seed")])
    return f.getvalue()


def _mean_std(values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * statistics.mean(values):.1f} ± {100 * statistics.stdev(values):.1f}"


def common_overrides(jobs: list[Job]) -> frozenset[str]:
    """The overrides every job shares (all of them for a single job)."""
    sets = [set(j.overrides) for j in jobs]
    return frozenset(set.intersection(*sets)) if len(sets) > 1 else frozenset()


def _in_order(jobs: list[Job], overrides: frozenset[str]) -> str:
    """``overrides`` in the order the first job was given them (the order of ``+`` config
    groups matters to Hydra: ``+experiment=... +debug=...``)."""
    return " ".join(o for o in jobs[0].overrides if o in overrides)


def results_md(jobs: list[Job]) -> str:
    """The paper-layout table (seeds merged into mean ± std (n)) and the jobs without
    results."""
    finished = [j for j in jobs if j.status == "finished"]
    common = common_overrides(jobs)
    groups: dict[str, list[Job]] = {}
    for job in finished:
        groups.setdefault(job.name(without=("seed",), common=common), []).append(job)
    head = ["configuration", "variant", "n", *(t for _, t in COLUMNS), "protocol",
            "embedding source", "j"]
    lines = ["Scores in percent; mean ± std over the seeds of a configuration (n runs)."
             + (f" Every job: `{_in_order(jobs, common)}`." if common else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for config, members in groups.items():
        variants = list(members[0].scores())
        for variant in variants:
            cells = [_mean_std([m.scores().get(variant, {}).get(k, math.nan)
                                for m in members]) for k, _ in COLUMNS]
            first = members[0].payload
            lines.append("| " + " | ".join([config, title(variant),
                                            str(len(members)), *cells,
                                            str(first.get("protocol", "szn")),
                                            str(first.get("embedding_source")),
                                            str(members[0].embed_dim)]) + " |")
    rest = [j for j in jobs if j.status != "finished"]
    if rest:
        lines += ["", "Jobs without results:", ""]
        lines += [f"- {j.status}: `{j.name(common=common)}` ({j.path}): {j.reason}"
                  for j in rest]
    return "\n".join(lines) + "\n"
