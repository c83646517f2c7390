"""`python -m zss.run +experiment=voc_17_2_2 +debug=cpu` on the shared VOC sample, with tiny
limits; then save -> load -> evaluate must reproduce the logged test metrics exactly."""

import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest

from zss.modules import Stage2Module

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow

TINY = ["data.max_short_side=64", "model.backbone.fc_width=64", "+trainer.limit_train_batches=4",
        "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=6",
        "+trainer.enable_progress_bar=false", "stage1.max_epochs=1", "stage2.max_epochs=1"]


@pytest.fixture(scope="module")
def run_dir(voc_sample, word_vectors_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
           f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"paths.cache_dir={out / 'cache'}", f"hydra.run.dir={out}", *TINY]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_run_writes_its_files_and_table(run_dir):
    out, stdout = run_dir
    for name in ("config.yaml", "metrics.json", "per_class_iou.csv", ".hydra/config.yaml"):
        assert (out / name).is_file(), name
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["split"] == "voc_17_2_2"
    assert payload["embedding_source"].endswith("szn-original/pascal/norm_embed_arr_20.pkl")
    for stage in ("stage1_ckpt", "stage2_ckpt"):
        assert Path(payload[stage]).is_file()
        assert (out / "checkpoints").samefile(Path(payload[stage]).parents[1])
    m = payload["metrics"]
    for v in ("fcn_je", "szn", "szn_ps"):
        for k in ("pixel_acc", "mean_acc", "miou", "fwiou", "miou_seen", "miou_unseen", "hiou"):
            value = m[f"test/{v}/{k}"]
            assert value is None or 0.0 <= value <= 1.0, (v, k, value)
    for k in ("seenmask_acc", "seenmask_precision", "seenmask_recall"):
        assert f"test/szn/{k}" in m
    rows = (out / "per_class_iou.csv").read_text().splitlines()
    assert rows[0] == "class,set,iou/fcn_je,iou/szn,iou/szn_ps"
    assert len(rows) == 1 + 21
    assert "sheep,unseen" in (out / "per_class_iou.csv").read_text()
    assert "miou_unseen" in stdout and "tvmonitor" in stdout


def test_save_load_evaluate_reproduces_metrics(run_dir, voc_sample):
    out, _ = run_dir
    payload = json.loads((out / "metrics.json").read_text())
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zss.data.splits import split_from_config
    from zss.models import preprocessing_for

    cfg = OmegaConf.load(out / "config.yaml")
    module = Stage2Module.load_from_checkpoint(payload["stage2_ckpt"], map_location="cpu")
    dm = instantiate(cfg.data, _partial_=True)(split=split_from_config(**cfg.split),
                                               normalize=preprocessing_for(None))
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                        limit_test_batches=6)
    trainer.test(module, datamodule=dm, verbose=False)
    scores, _ = module.test_results
    again = {f"test/{v}/{k}": val for v, s in scores.items() for k, val in s.items()}
    assert again.keys() == payload["metrics"].keys()
    for k, val in payload["metrics"].items():
        assert (val is None and math.isnan(again[k])) or val == again[k], k


def test_stage2_starts_from_a_given_stage1_checkpoint(run_dir, voc_sample, word_vectors_dir,
                                                      tmp_path):
    out, _ = run_dir
    stage1 = json.loads((out / "metrics.json").read_text())["stage1_ckpt"]
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
           f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"hydra.run.dir={tmp_path}", "stages=[stage2,test]", f"stage1_ckpt={stage1}", *TINY]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["stage1_ckpt"] == stage1
    assert Path(payload["stage2_ckpt"]).parent == tmp_path / "checkpoints" / "stage2"
    assert not (tmp_path / "checkpoints" / "stage1").exists()
    assert "test/szn/hiou" in payload["metrics"]
