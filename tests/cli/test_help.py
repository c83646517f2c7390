"""`python -m zss.run --help`: zss's own help, with the groups, experiments, keys and examples."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _zss(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "zss.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_help_is_zss_own_with_groups_experiments_keys_and_examples():
    proc = _zss("--help")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith("zss: zero-shot semantic segmentation")
    experiments = ", ".join(sorted(p.stem for p in (CONF / "experiment").glob("*.yaml")))
    assert f"experiment: {experiments}" in out
    for key in ("stages=", "stage1_ckpt=", "paths.data_dir=", "model.embed_dim=", "+debug=cpu"):
        assert key in out
    assert out.count("\npython -m zss.run ") >= 3  # the examples
    assert "== Config ==" not in out and "_target_" not in out  # not Hydra's config dump
