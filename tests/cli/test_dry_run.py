"""`python -m zss.run ... dry_run=true`: a sweep's jobs listed, nothing trained, and the
checks of a real run first."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _zss(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "zss.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_a_dry_run_of_a_sweep_lists_each_job_and_trains_nothing(tmp_path):
    proc = _zss("-m", "+experiment=demo", "model.embed_dim=5,20", "dry_run=true",
                f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    for job, j in ((0, 5), (1, 20)):
        assert f"dry run, job {job}: +experiment=demo model.embed_dim={j} dry_run=True" \
            in proc.stdout
        assert f"would write {tmp_path / str(job)}; split voc_17_2_2" in proc.stdout
        assert f"(j={j}, loss cosine)" in proc.stdout
        assert not (tmp_path / str(job) / "config.yaml").exists()
        assert not (tmp_path / str(job) / "checkpoints").exists()
    # the checks of a real run come first: a misspelt key is refused in the preview
    proc = _zss("+experiment=demo", "+model.embed_dims=5", "dry_run=true",
                f"hydra.run.dir={tmp_path / 'typo'}")
    assert proc.returncode == 2 and "did you mean 'model.embed_dim'?" in proc.stderr
