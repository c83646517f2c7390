"""Regenerate the recorded results under experiments/results/ (``make record``).

``python experiments/record.py [NAME ...]`` runs each named command below in a new folder
``outputs/record/<NAME>/<timestamp>/`` (nothing earlier is overwritten) and copies the run's
``results.txt`` — exactly what it printed: the per-class table, the summary, the reading, and
the machine it ran on — to ``experiments/results/<NAME>.txt``, under a header naming the
command, the date and the wall time. Without names: ``demo`` and ``demo_density``. A run's
numbers repeat exactly on one machine; on another CPU model or a GPU the last digits may
differ, which is why the machine is recorded with them.
"""

from __future__ import annotations

import datetime as dt
import shlex
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = ["+debug=cpu", "paths.word_vectors_dir=../shared/data/word-vectors"]
RUNS = {
    "demo": ["+experiment=demo"],
    "demo_density": ["+experiment=demo_density"],
    "voc_17_2_2_sample": ["+experiment=voc_17_2_2", *SAMPLE,
                          "paths.data_dir=../shared/data/voc2012-sample",
                          "data.train_set=train", "data.test_set=val"],
    "context_31_2_2_sample": ["+experiment=context_31_2_2", *SAMPLE,
                              "paths.data_dir=../shared/data/pascal-context-sample"],
}
DEFAULT = ("demo", "demo_density")


def record(name: str) -> Path:
    """Run ``RUNS[name]`` and write ``experiments/results/<name>.txt``; return that path.

    Raises:
        KeyError: an unknown name.
        subprocess.CalledProcessError: the run failed (its folder keeps its marker).
    """
    args = RUNS[name]
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    run_dir = REPO / "outputs" / "record" / name / stamp
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "zss.run", *args, f"hydra.run.dir={run_dir}"],
                   cwd=REPO, check=True)
    wall = time.monotonic() - start
    results = (run_dir / "results.txt").read_text().replace(str(run_dir), "<run folder>")
    out = REPO / "experiments" / "results" / f"{name}.txt"
    out.parent.mkdir(exist_ok=True)
    out.write_text(f"# python -m zss.run {shlex.join(args)}\n# recorded {stamp} by "
                   f"experiments/record.py ({wall / 60:.1f} min wall)\n\n{results}")
    return out


def main(names: list[str]) -> None:
    unknown = [n for n in names if n not in RUNS]
    if unknown:
        sys.exit(f"record.py: unknown name(s) {unknown}; known: {sorted(RUNS)}")
    for name in names or DEFAULT:
        print(f"recorded {record(name).relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
