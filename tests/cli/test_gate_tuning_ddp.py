"""Gate tuning under DDP counts every held-out image once, also when a resumed run's stages
had all finished, so that no fit set DDP's process group up before the tuning pass: a run
killed after both stages, resumed on 2 CPU ranks, tunes exactly what one process tunes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]


def _zss(*args: str, script: str | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *(["-c", script] if script else ["-m", "zss.run"]), *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_resumed_ddp_tuning_counts_each_held_out_image_once(tmp_path, glove_cache,
                                                          kill_after_stages):
    killed = tmp_path / "single"
    # the demo, shrunk: 15 held-out images (odd: a padding sampler on 2 ranks evaluates 16),
    # trained just enough that every gate's objective is above 0
    proc = _zss("+experiment=demo", "data.dataset.lengths.train=380",
                "data.dataset.lengths.test=8", "model.backbone.width=16",
                "model.backbone.fc_width=64", "data.batch_size=4", "stage1.max_epochs=3",
                "stage2.max_epochs=2", "visualize=0", "explain=false",
                f"paths.cache_dir={glove_cache}", f"hydra.run.dir={killed}",
                script=kill_after_stages)
    assert proc.returncode == -9, proc.stderr[-3000:]
    progress = json.loads((killed / "progress.json").read_text())
    assert set(progress["completed"]) == {"stage1", "stage2"}
    # the same killed run, its recorded config moved to DDP on 2 CPU ranks
    ddp = tmp_path / "ddp"
    shutil.copytree(killed, ddp)
    recorded = OmegaConf.load(ddp / ".hydra" / "config.yaml")
    recorded.trainer.strategy, recorded.trainer.devices = "ddp", 2
    OmegaConf.save(recorded, ddp / ".hydra" / "config.yaml")

    payloads = {}
    for run in (killed, ddp):
        proc = _zss(f"resume={run}")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        payloads[run.name] = json.loads((run / "metrics.json").read_text())
    single, ranks = payloads["single"], payloads["ddp"]
    assert single["gate_tuning"]["images"] == ranks["gate_tuning"]["images"] == (
        single["images"]["stage2_val"]) == 15
    objectives = {g: r["objective"] for g, r in single["gate_tuning"]["gates"].items()}
    assert all(o > 0 for o in objectives.values()), objectives  # a comparison of real choices
    # every tuned value, objective, side score and the untuned references, and the test
    assert ranks["gate_tuning"] == single["gate_tuning"]
    assert ranks["metrics"] == single["metrics"] and ranks["test_images"] == 8
