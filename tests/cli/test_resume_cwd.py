"""`python -m zss.run resume=DIR` works from any directory: the relative paths of a run's
recorded config (`.hydra/config.yaml`) are read from the folder the run was started in
(`hydra.runtime.cwd` of `.hydra/hydra.yaml`), also by DDP's other ranks."""

import json
import subprocess
import sys

from omegaconf import OmegaConf


def test_a_run_with_relative_paths_resumes_from_another_directory_under_ddp(
        voc_sample, word_vectors_dir, tmp_path, kill_after_stages):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    (start / "voc").symlink_to(voc_sample)  # data_dir, cache_dir and the run folder relative
    proc = subprocess.run(
        [sys.executable, "-c", kill_after_stages, "+experiment=voc_17_2_2", "+debug=cpu",
         "paths.data_dir=voc", "paths.cache_dir=cache", "hydra.run.dir=outputs/run",
         f"paths.word_vectors_dir={word_vectors_dir}", "data.train_set=train",
         "data.test_set=val", "data.max_short_side=64", "model.backbone.fc_width=64",
         "+trainer.limit_train_batches=2",
         "+trainer.enable_progress_bar=false", "stage1.max_epochs=1", "stage2.max_epochs=1"],
        cwd=start, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-3000:]
    run = start / "outputs" / "run"
    assert OmegaConf.load(run / ".hydra" / "config.yaml").paths.data_dir == "voc"
    # resumed on 2 CPU ranks: Lightning starts rank 1 in Hydra's original working directory
    recorded = OmegaConf.load(run / ".hydra" / "config.yaml")
    recorded.trainer.strategy, recorded.trainer.devices = "ddp", 2
    OmegaConf.save(recorded, run / ".hydra" / "config.yaml")

    proc = subprocess.run([sys.executable, "-m", "zss.run", f"resume={run}"], cwd=elsewhere,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads((run / "metrics.json").read_text())
    assert payload["status"] == "finished" and payload["test_images"] == 16
    # the relative paths meant what they meant when the run started (the link resolved)
    assert payload["paths"]["data_dir"] == str(voc_sample.resolve())
    assert payload["paths"]["cache_dir"] == str((start / "cache").resolve())
    assert sorted(p.name for p in elsewhere.iterdir()) == []  # nothing written here
    assert "stage 2 finished before the resume" in (run / "run.log").read_text()
