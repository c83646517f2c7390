"""Run the CPU benchmarks (1-4, the CPU part of 5, 6 and 7) one after the other, then print every
RATIO / GOAL line again as a summary, with the machine's load before and after.

``make bench`` runs this. Exit status 1 when a benchmark fails (a crash or a failed
correctness check); a missed goal is reported, not a failure.

    .venv/bin/python benchmarks/run_all.py [train_step metrics ...]
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import load_avg, machine_line

HERE = Path(__file__).resolve().parent
ORDER = ("train_step", "metrics", "loader", "embeddings", "throughput", "memory", "deeplab")


def main() -> int:
    names = sys.argv[1:] or list(ORDER)
    unknown = sorted(set(names) - set(ORDER))
    if unknown:
        print(f"unknown benchmarks {unknown}; choose from {list(ORDER)}")
        return 2
    print(machine_line(), flush=True)
    summary, failed = [], []
    start = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, str(HERE / f"bench_{name}.py")],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            print(line, end="", flush=True)
            if line.startswith(("RATIO", "GOAL")):
                summary.append(line.rstrip())
        if proc.wait() != 0:
            failed.append(name)
        print(f"[{name}: {time.perf_counter() - t0:.0f} s, exit {proc.returncode}]", flush=True)
    print(f"\n=== summary ({time.perf_counter() - start:.0f} s in all; load now "
          f"{load_avg()}) ===")
    print("\n".join(summary))
    if failed:
        print(f"FAILED: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
