"""The paper's ablations as sweeps (conf/experiment/ablation_*.yaml) on the demo's generated
data, and `python -m zss.report` on what they wrote: one row per job x variant equal to the
jobs' metrics.json, seeds merged, the skipped and the failed job listed, valid PNGs."""

import csv
import json
import math
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
TINY = ["+debug=demo_data", "data.dataset.lengths.train=64", "data.dataset.lengths.val=8",
        "data.dataset.lengths.test=8", "data.dataset.size=32", "model.backbone.width=8",
        "model.backbone.fc_width=16", "+trainer.limit_train_batches=4",
        "+trainer.limit_val_batches=2", "stage1.max_epochs=1", "stage2.max_epochs=1",
        "trainer.log_every_n_steps=1"]


def _sweep(experiment, tmp_path, *overrides):
    sweep = tmp_path / "sweep"
    proc = subprocess.run([sys.executable, "-m", "zss.run", f"+experiment={experiment}", *TINY,
                           f"paths.cache_dir={tmp_path / 'cache'}", f"hydra.sweep.dir={sweep}",
                           *overrides], cwd=REPO, capture_output=True, text=True, timeout=600)
    return proc, sweep


def _report(sweep):
    proc = subprocess.run([sys.executable, "-m", "zss.report", str(sweep)], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep / "report"


def _png(path):
    with Image.open(path) as img:
        assert img.format == "PNG" and min(img.size) > 100


def test_embedding_dim_sweep_skips_what_the_source_cannot_give_and_reports(tmp_path):
    # the command line replaces the file's axis; GloVe 6B is 50-d: j = 100 is skipped; j = 0
    # is a user error (the job fails, and the local sweep stops there); seeds add an axis
    proc, sweep = _sweep("ablation_embedding_dim", tmp_path, "model.embed_dim=2,100,0",
                         "seed=1,2")
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "must be >= 1" in proc.stderr
    status = {}
    for job in sorted(p for p in sweep.iterdir() if p.name.isdigit()):
        status[job.name] = json.loads((job / "metrics.json").read_text())
    assert [status[str(i)]["status"] for i in range(5)] == [
        "finished", "finished", "skipped", "skipped", "failed"]
    assert "larger than the dimension 50" in status["2"]["reason"]
    # the class vectors of j = 2 are built by the first job and read back by the second
    assert "j = 2 from glove-6b-50d): built" in (sweep / "0" / "run.log").read_text()
    assert "j = 2 from glove-6b-50d): cache hit" in (sweep / "1" / "run.log").read_text()

    out = _report(sweep)
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["folder"], r["variant"]) for r in rows] == [
        (str(sweep / "0"), "FCN-JE"), (str(sweep / "1"), "FCN-JE")]
    for row in rows:
        metrics = status[Path(row["folder"]).name]["metrics"]
        for key in ("pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "hiou"):
            value = metrics[f"test/fcn_je/{key}"]
            assert row[f"{key}_percent"] == ("" if value is None else f"{100 * value:.2f}")
    md = (out / "results.md").read_text()
    mious = [status[j]["metrics"]["test/fcn_je/miou"] for j in ("0", "1")]
    cell = f"{100 * statistics.mean(mious):.1f} ± {100 * statistics.stdev(mious):.1f}"
    assert "| model.embed_dim=2 | FCN-JE | 2 |" in md and cell in md
    assert md.count("- skipped: `model.embed_dim=100 seed=") == 2
    assert "- failed: `model.embed_dim=0 seed=1`" in md and "must be >= 1" in md
    _png(out / "miou_vs_j.png")
    _png(out / "training_curves.png")


@pytest.mark.parametrize(("experiment", "key", "values", "png"), [
    ("ablation_loss", "model.loss", ("cosine", "mse"), "model_loss.png"),
    ("ablation_optimizer", "optimizer", ("adam", "sgd"), "optimizer.png"),
])
def test_loss_and_optimizer_ablations_run_both_arms(tmp_path, experiment, key, values, png):
    proc, sweep = _sweep(experiment, tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for job, value in zip(("0", "1"), values, strict=True):
        assert f"{key}={value}" in (sweep / job / ".hydra" / "overrides.yaml").read_text()
        cfg = yaml.safe_load((sweep / job / "config.yaml").read_text())
        if key == "model.loss":
            assert cfg["model"]["loss"] == value
        else:  # the optimiser brings its bias rule
            assert cfg["optimizer"]["_target_"] == f"torch.optim.{value.title().replace('Sgd', 'SGD')}"
            assert cfg["optimizer"]["bias_lr_factor"] == 2.0
            assert cfg["optimizer"].get("bias_weight_decay") == (0.0 if value == "sgd" else None)
        payload = json.loads((sweep / job / "metrics.json").read_text())
        assert payload["status"] == "finished"
        assert not math.isnan(payload["metrics"]["test/fcn_je/miou"])
    _png(_report(sweep) / png)


def test_the_zero_shot_dimension_ablation_runs_szn(tmp_path):
    proc, sweep = _sweep("ablation_embedding_dim_17_2_2", tmp_path, "model.embed_dim=2")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((sweep / "0" / "metrics.json").read_text())["metrics"]
    assert {k.split("/")[1] for k in metrics} >= {"fcn_je", "szn", "szn_ps"}
