"""`python -m zss.run` with a misspelt key or a group without '+': zss's one paragraph and exit
status 2, in one step (not Hydra's advice to add a '+' that zss would then refuse)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("arg", "needle"), [
    ("model.embed_dims=5", "zss: error: unknown config key 'model.embed_dims' (did you mean "
                           "'model.embed_dim'?"),
    ("experiment=demo", "write +experiment=demo"),
])
def test_the_hint_comes_in_one_step(arg, needle, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zss.run", arg], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and needle in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "To append to your" not in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing written
