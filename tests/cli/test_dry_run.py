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


def test_a_dry_run_checks_the_data_root_and_names_the_prepare_command(tmp_path, voc_sample):
    # job 0: the shared VOC sample (passes); job 1: a relative folder that does not exist
    # from the working directory (refused, exit 2, before anything is written)
    proc = _zss("-m", "+experiment=voc_17_2_2", "dry_run=true", "data.train_set=train",
                "data.test_set=val", f"paths.data_dir={voc_sample},missing",
                f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert "dry run, job 0: " in proc.stdout and "dry run, job 1" not in proc.stdout
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert (f"paths.data_dir=missing: the data folder {tmp_path / 'missing'} does not exist"
            in message)
    assert f"here {tmp_path})" in message and "Traceback" not in proc.stderr
    assert "`python -m zss.data.prepare voc --root DIR`" in message
