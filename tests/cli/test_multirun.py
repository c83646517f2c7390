"""A Hydra multirun of the demo (`python -m zss.run -m`): each job its folder, its files and
the value it returns."""

import csv
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import TINY_DEMO

REPO = Path(__file__).resolve().parents[2]
RECORDER = '''
import json
from pathlib import Path

from hydra.experimental.callback import Callback


class RecordReturn(Callback):
    """Writes what the launcher got back from each job (what a sweeper reads)."""

    def on_job_end(self, config, job_return, **kwargs):
        out = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        (out / "returned.json").write_text(json.dumps({"value": job_return.return_value}))
'''


def test_a_multirun_of_the_demo_gives_each_job_its_folder_and_returns_its_metric(
        tmp_path, glove_cache):
    (tmp_path / "recorder.py").write_text(RECORDER)
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "zss.run", "-m", "+experiment=demo", *TINY_DEMO,
           "+trainer.limit_test_batches=2", f"paths.cache_dir={glove_cache}",
           f"hydra.sweep.dir={sweep}", "+hydra.callbacks.record._target_=recorder.RecordReturn",
           "callbacks.progress_lines.every_s=0",  # a progress line after every batch
           "seed=1,2"]  # the demo's held-out objective, tune/szn_cs/objective, by default
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # output to a pipe: no progress bar (no carriage returns), one plain line per epoch,
    # Lightning's notices once per process, no tips, no third-party deprecations
    printed = proc.stdout + proc.stderr
    assert "\r" not in printed and printed.count("stage 1 epoch 1/1: train/fcn_je/loss") == 2
    # and the progress lines inside the epochs (44 stage-1 images at batch 16: 3 steps), the
    # gate tuning and the test pass (8 images, one batch)
    assert re.search(r"stage 1 epoch 1/1: step 3/3, [\d.]+ images/s, left: epoch 0 s, stage 0 s",
                     printed)
    assert re.search(r"stage 2 epoch 1/1: step 1/4, [\d.]+ images/s, left: epoch \d+ s", printed)
    assert re.search(r"gate tuning: batch 1/1, [\d.]+ images/s, left: 0 s", printed)
    assert re.search(r"test: batch 1/1, [\d.]+ images/s, left: 0 s", printed)
    assert printed.count("GPU available") == 1 and "Tip:" not in printed
    assert "LeafSpec" not in printed and "Deprecat" not in printed
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == ["0", "1"]
    assert (sweep / "multirun.yaml").is_file()
    returned = {}
    for job, seed in (("0", 1), ("1", 2)):
        out = sweep / job
        payload = json.loads((out / "metrics.json").read_text())
        assert f"seed: {seed}\n" in (out / "config.yaml").read_text()
        for stage in ("stage1_ckpt", "stage2_ckpt"):  # each job's checkpoints in its folder
            assert Path(payload[stage]).parents[2] == out
            # a finished stage keeps its selected checkpoint, not its resume state
            assert sorted(Path(payload[stage]).parent.iterdir()) == [Path(payload[stage])]
        returned[job] = json.loads((out / "returned.json").read_text())["value"]
        # what the screen showed, kept in the run's folder: the table and the summary
        results = (out / "results.txt").read_text()
        assert results.split("\n\nMachine: ")[0] in proc.stdout
        assert "Summary (percent; voc_17_2_2, protocol szn):\n" in results
        assert "\nFCN-JE " in results
        assert f"seed {seed}." in results and "Machine: " in results
        assert payload["status"] == "finished" and payload["paths"]["output_dir"] == str(out)
        tuned = payload["gate_tuning"]["gates"]["szn_cs"]["objective"]
        assert returned[job] == payload["metrics"]["tune/szn_cs/objective"] == tuned >= 0
        # each stage's selected checkpoint and its held-out score, as its epochs logged them
        with open(out / "csv" / "version_0" / "metrics.csv", newline="") as f:
            logged = [r for r in csv.DictReader(f)]
        progress = json.loads((out / "progress.json").read_text())
        for stage, key in (("stage1", "val/fcn_je/miou"), ("stage2", "val/seenmask/loss")):
            epoch = [float(r[key]) for r in logged if r.get(key)]
            assert len(epoch) == 1  # one epoch per stage: that one is selected
            assert payload["metrics"][key] == pytest.approx(epoch[0], rel=1e-6)
            assert progress["scores"][stage] == {key: payload["metrics"][key]}
        returned[f"val{job}"] = payload["metrics"]["val/fcn_je/miou"]
    assert returned["val0"] != returned["val1"]  # the seeds made two different runs
