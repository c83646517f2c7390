"""The benchmark scripts that are cheap at their smallest settings run to their RATIO lines
and pass their own checks (each exits non-zero on a failed check): a change of the data path
or of the modules' batch format once broke bench_train_step.py and went unnoticed until a
fresh `make bench`. The figures of such runs mean nothing; benchmarks/README.md holds the
real ones. The paper-size scripts (bench_throughput, bench_memory, bench_embeddings' 346 MiB
file, gpu_throughput) are left to `make bench`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CASES = {
    "bench_metrics.py": ["--reps", "1", "--maps", "5"],
    "bench_loader.py": ["--reps", "1"],
    "bench_train_step.py": ["--reps", "1", "--steps", "3", "--skip", "1", "--size", "32",
                            "--tiny-steps", "10"],
}


@pytest.mark.parametrize("script", sorted(CASES))
def test_benchmark_runs_and_checks_itself(script, request):
    env = dict(os.environ)
    if script == "bench_loader.py":  # the only one that reads data: the shared VOC sample
        env["ZSS_SHARED_DATA"] = str(request.getfixturevalue("voc_sample").parent)
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *CASES[script]],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ratios = [line for line in proc.stdout.splitlines() if line.startswith("RATIO ")]
    assert ratios, proc.stdout[-2000:]
    assert "Traceback" not in proc.stderr
