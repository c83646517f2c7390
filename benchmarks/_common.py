"""Helpers shared by the benchmark scripts: the machine line, alternating repetitions, medians,
ratios against a goal, and the shared sample data's location.

Every script runs the zss path and its baseline in one process (or one invocation), alternating
them repetition by repetition with the order rotated, so that a change of machine load hits
both sides alike; it prints the medians and one ``RATIO`` line per comparison.
"""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ZSS_SHARED_DATA", REPO.parent / "shared" / "data"))
VOC_SAMPLE = SHARED_DATA / "voc2012-sample"


def load_avg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def machine_line() -> str:
    """One line: nproc, CPU model, Python, torch (when already imported), load averages."""
    torch = sys.modules.get("torch")
    # here, not at the top: zss.runtime.run_record imports torch, which the memory children of
    # bench_embeddings.py (they import this module) must not load
    from zss.runtime.run_record import cpu_model  # the model name runs record in metrics.json

    parts = [f"nproc={os.cpu_count()}", f"cpu={cpu_model()!r}", f"python={platform.python_version()}"]
    if torch is not None:
        parts += [f"torch={torch.__version__}", f"torch_threads={torch.get_num_threads()}"]
    parts.append(f"load(1/5/15 min)={load_avg()}")
    return "machine: " + ", ".join(parts)


def status_mib(field: str) -> float:
    """``VmHWM`` (peak) or ``VmRSS`` (now) of this process from /proc, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status (Linux only)")


def reset_peak_rss() -> float:
    """Reset this process's peak RSS to its current RSS and return that, in MiB.

    ``ru_maxrss`` cannot be used: a child started by fork + exec inherits its parent's peak
    in it, so every child reported the parent's. Writing 5 to /proc/self/clear_refs resets
    ``VmHWM`` (Linux >= 4.0)."""
    Path("/proc/self/clear_refs").write_text("5")
    return status_mib("VmRSS")


def header(title: str) -> None:
    print(f"\n=== {title} ===\n{machine_line()}", flush=True)


class Seconds(float):
    """A case's own measurement, returned to :func:`alternate` instead of its wall time."""


def alternate(cases: dict[str, Callable[[], object]], reps: int,
              warmup: int = 1) -> dict[str, list[float]]:
    """Run every case ``warmup`` times untimed, then ``reps`` rounds in which each case runs
    once, the order rotated every round. The wall time of a call is recorded, unless the case
    returns :class:`Seconds` (its own measurement, e.g. a steady-state time per step).

    Returns:
        case name -> the ``reps`` measurements, in seconds.
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    out: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            got = cases[name]()
            wall = time.perf_counter() - t0
            out[name].append(float(got) if isinstance(got, Seconds) else wall)
    return out


def median(xs: list[float]) -> float:
    return statistics.median(xs)


def show(times: dict[str, list[float]], unit: str = "s", scale: float = 1.0) -> None:
    """Print the median, min and max of every case (values multiplied by ``scale``)."""
    width = max(len(n) for n in times)
    for name, xs in times.items():
        med, lo, hi = (scale * v for v in (median(xs), min(xs), max(xs)))
        print(f"  {name:<{width}}  median {med:10.4f} {unit}  (min {lo:.4f}, max {hi:.4f}, "
              f"n={len(xs)})", flush=True)


def ratio_line(label: str, value: float, goal: float | None, better: str = "lower") -> str:
    """``RATIO <label> = <value> (goal <= goal: met|MISSED)``; ``better`` says whether lower
    or higher values are good."""
    if goal is None:
        verdict = ""
    else:
        ok = value <= goal if better == "lower" else value >= goal
        sign = "<=" if better == "lower" else ">="
        verdict = f"  (goal {sign} {goal:g}: {'met' if ok else 'MISSED'})"
    line = f"RATIO {label} = {value:.3f}{verdict}"
    print(line, flush=True)
    return line
