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

TINY = ["data.train_set=train", "data.test_set=val", "data.max_short_side=64", "model.backbone.fc_width=64", "+trainer.limit_train_batches=4",
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


def test_run_writes_its_files_and_table(run_dir, word_vectors_dir):
    out, stdout = run_dir
    for name in ("config.yaml", "metrics.json", "per_class_iou.csv", ".hydra/config.yaml"):
        assert (out / name).is_file(), name
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["split"] == "voc_17_2_2"
    assert payload["embedding_source"] == (
        "szn-original/pascal/norm_embed_arr_20.pkl (published table, sha256 "
        "e86ab3d17f5871e95263dab84cc30b00410a046f67770471edabc87e0001cc61)")
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


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zss.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


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


def _voc_subset(voc_sample: Path, root: Path, n: int) -> Path:
    """A VOC root whose images and labels are the sample's (links) and whose list
    ``first<n>.txt`` holds the first n val ids."""
    src = voc_sample / "VOCdevkit" / "VOC2012"
    dst = root / "VOCdevkit" / "VOC2012"
    (dst / "ImageSets" / "Segmentation").mkdir(parents=True)
    for folder in ("JPEGImages", "SegmentationClass"):
        (dst / folder).symlink_to(src / folder)
    ids = (src / "ImageSets" / "Segmentation" / "val.txt").read_text().split()[:n]
    (dst / "ImageSets" / "Segmentation" / f"first{n}.txt").write_text("\n".join(ids) + "\n")
    return root


def test_ddp_counts_every_test_image_once(run_dir, voc_sample, word_vectors_dir, tmp_path):
    # 5 test images on 2 ranks: a padding DistributedSampler would evaluate 6
    out, _ = run_dir
    stage1 = json.loads((out / "metrics.json").read_text())["stage1_ckpt"]
    root = _voc_subset(voc_sample, tmp_path / "voc", 5)
    common = ["+experiment=voc_17_2_2", "+debug=cpu", f"paths.data_dir={root}",
              f"paths.word_vectors_dir={word_vectors_dir}", f"paths.cache_dir={tmp_path / 'c'}",
              "data.test_set=first5", "stages=[test]", f"stage1_ckpt={stage1}",
              "+trainer.enable_progress_bar=false", "data.max_short_side=64",
              "model.backbone.fc_width=64"]
    runs = {}
    for name, extra in (("single", []), ("ddp", ["+trainer.strategy=ddp", "trainer.devices=2"])):
        proc = run_cli(*common, *extra, f"hydra.run.dir={tmp_path / name}")
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs[name] = json.loads((tmp_path / name / "confusion_matrices.json").read_text())
        # rank 0 alone prints the table (rank 1 shares stdout) and writes the files
        assert proc.stdout.count("Test split 'first5' (5 images)") == 1, proc.stdout[-3000:]
    assert runs["single"]["test_images"] == runs["ddp"]["test_images"] == 5
    assert runs["ddp"]["matrices"] == runs["single"]["matrices"]
    single = json.loads((tmp_path / "single" / "metrics.json").read_text())
    ddp = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert ddp["metrics"] == single["metrics"] and ddp["test_images"] == 5


def _caffe_checkpoint(stage1: str, tmp_path: Path, table: Path) -> Path:
    """The run's stage-1 checkpoint, re-labelled as trained from Caffe VGG16 weights, with its
    class vectors recorded as coming from ``table`` (a copy of the published table)."""
    import torch

    ckpt = torch.load(stage1, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["backbone"].update(weights="/w/vgg16_caffe.pth",
                                                weights_format="caffe")
    ckpt["hyper_parameters"]["embedding_source"] = str(table)
    path = tmp_path / "caffe.ckpt"
    torch.save(ckpt, path)
    return path


def test_a_checkpoint_brings_its_preprocessing_and_refuses_a_contradicting_config(
        run_dir, voc_sample, word_vectors_dir, tmp_path):
    out, _ = run_dir
    stage1 = json.loads((out / "metrics.json").read_text())["stage1_ckpt"]
    table = tmp_path / "norm_embed_arr_20.pkl"  # the same table, elsewhere
    table.write_bytes((word_vectors_dir / "szn-original/pascal/norm_embed_arr_20.pkl").read_bytes())
    caffe = _caffe_checkpoint(stage1, tmp_path, table)
    common = ["+experiment=voc_17_2_2", "+debug=cpu", f"paths.data_dir={voc_sample}",
              f"paths.word_vectors_dir={word_vectors_dir}", f"paths.cache_dir={tmp_path / 'c'}",
              "stages=[test]", f"stage1_ckpt={caffe}", *TINY]
    # the config says random init (ImageNet preprocessing): refused, not silently mixed
    proc = run_cli(*common, f"hydra.run.dir={tmp_path / 'refused'}")
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "contradicts the config" in proc.stderr and "model.backbone.weights" in proc.stderr
    assert "bgr=True" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "refused" / "metrics.json").exists()
    # the matching config runs, with the checkpoint's preprocessing and embedding source
    proc = run_cli(*common, "model.backbone.weights=/w/vgg16_caffe.pth",
                   "model.backbone.weights_format=caffe", f"hydra.run.dir={tmp_path / 'ok'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert payload["preprocessing"]["bgr"] and payload["preprocessing"]["scale"] == 1.0
    assert payload["embedding_source"] == str(table) and payload["stage1_ckpt"] == str(caffe)
    assert payload["backbone"]["weights"] == "/w/vgg16_caffe.pth"
    assert payload["backbone"]["fc_width"] == 64  # the checkpoint's architecture, recorded


def test_every_contradiction_is_named(run_dir, word_vectors_dir):
    from hydra import compose, initialize_config_dir

    from zss.checkpoints import load_stage1
    from zss.data.splits import split_from_config
    from zss.errors import ConfigError

    out, _ = run_dir
    stage1 = json.loads((out / "metrics.json").read_text())["stage1_ckpt"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        agree = compose("config", overrides=["+experiment=voc_17_2_2", "+debug=cpu",
                                              f"paths.word_vectors_dir={word_vectors_dir}",
                                              "model.backbone.fc_width=64"])
        other = compose("config", overrides=["+experiment=voc_9_2_10", "+debug=cpu",
                                              f"paths.word_vectors_dir={word_vectors_dir}",
                                              "model.embed_dim=50"])
    module = load_stage1(stage1, agree, split_from_config(**agree.split))
    assert module.hparams.embed_dim == 20
    with pytest.raises(ConfigError) as info:
        load_stage1(stage1, other, split_from_config(**other.split))
    msg = str(info.value)
    assert "split: the checkpoint was trained for 'voc_17_2_2', the config gives 'voc_9_2_10'" in msg
    assert "unseen: only the checkpoint's has [], only the config's ['bus', 'car'" in msg
    assert "model.embed_dim (j): checkpoint 20, config 50" in msg
    assert "norm_embed_arr_50.pkl" in msg
    assert "model.backbone.fc_width: checkpoint 64, config 512" in msg
