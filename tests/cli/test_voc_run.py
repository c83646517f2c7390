"""`python -m zss.run +experiment=voc_17_2_2 +debug=cpu` on the shared VOC sample, with tiny
limits: its files agree with each other and with an independent computation from its
confusion matrices; each stage keeps its best epoch; a trained module and its saved checkpoint
give the same test metrics."""

import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from zss.stages import Stage1Module, Stage2Module

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.train_set=train", "data.test_set=val", "data.max_short_side=64", "model.backbone.fc_width=64", "+trainer.limit_train_batches=4",
        "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=6",
        "+trainer.enable_progress_bar=false", "stage1.max_epochs=1", "stage2.max_epochs=1"]
EPOCHS = 2  # per stage in the shared run: the checkpoint choice has something to choose
LR = "optimizer.lr=1e-2"  # 8 stage-1 steps then predict background: scores other than 0


@pytest.fixture(scope="module")
def run_dir(voc_sample, word_vectors_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    tiny = [o for o in TINY if not o.endswith(".max_epochs=1")]
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
           f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"paths.cache_dir={out / 'cache'}", f"hydra.run.dir={out}", *tiny,
           f"stage1.max_epochs={EPOCHS}", f"stage2.max_epochs={EPOCHS}", LR]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def _nanmean(values: list[float]) -> float:
    values = [v for v in values if not math.isnan(v)]
    return sum(values) / len(values) if values else math.nan


def _same(a: float | None, b: float) -> bool:
    """A metrics.json value (None for NaN) against a recomputed one."""
    return math.isnan(b) if a is None else a == pytest.approx(b, rel=1e-12, abs=1e-15)


def test_run_writes_its_files_and_table(run_dir, word_vectors_dir):
    from zss.data.splits import VOC_CLASSES

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
    assert m["test/fcn_je/pixel_acc"] > 0  # else every check below compares zeros
    # a gate is evaluated when its objective on the held-out images varied over its grid;
    # after 8 steps at most gates see train_unseen IoU 0 at every value: untuned, and said why
    tuning = payload["gate_tuning"]
    tuned = tuple(g for g, r in tuning["gates"].items() if r["value"] is not None)
    assert set(tuning.get("untuned", {})) == set(tuning["gates"]) - set(tuned)
    for g in tuning.get("untuned", {}):
        assert tuning["gates"][g]["value"] is None and f"{g:<14} " in stdout
    variants = ("fcn_je", "szn", "szn_ps", *tuned)
    assert {k.split("/")[1] for k in m if k.startswith("test/")} == set(variants)
    # the class rows: the split's classes in label order, each with its set
    with open(out / "per_class_iou.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["class", "set", *(f"iou_percent/{v}" for v in variants)]
    assert [r["class"] for r in rows] == list(VOC_CLASSES)
    sets = {"aeroplane": "train_unseen", "horse": "train_unseen", "sheep": "unseen",
            "train": "unseen"}
    assert [r["set"] for r in rows] == [sets.get(c, "train_seen") for c in VOC_CLASSES]
    # every score against the table and, independently, the confusion matrices (FCN's
    # label_accuracy_score, in numpy)
    hists = json.loads((out / "confusion_matrices.json").read_text())
    assert hists["classes"] == list(VOC_CLASSES) and hists["test_images"] == 6
    for v in variants:
        iou = [float(r[f"iou_percent/{v}"] or "nan") / 100 for r in rows]  # the screen's unit
        seen = [x for x, r in zip(iou, rows, strict=True) if r["set"] != "unseen"]
        unseen = [x for x, r in zip(iou, rows, strict=True) if r["set"] == "unseen"]
        a, b = _nanmean(seen), _nanmean(unseen)
        expected = {"miou": _nanmean(iou), "miou_seen": a, "miou_unseen": b,
                    "hiou": 2 * a * b / (a + b) if a + b else 0.0}
        h = np.asarray(hists["matrices"][v], dtype=np.float64)
        assert h.shape == (21, 21) and h.sum() > 0
        diag = np.diag(h)
        with np.errstate(invalid="ignore", divide="ignore"):
            ref_iou = diag / (h.sum(1) + h.sum(0) - diag)
            freq = h.sum(1) / h.sum()
            expected.update(pixel_acc=diag.sum() / h.sum(),
                            mean_acc=np.nanmean(diag / h.sum(1)),
                            fwiou=(freq[freq > 0] * ref_iou[freq > 0]).sum())
        np.testing.assert_allclose(iou, ref_iou, rtol=1e-12)
        for k, value in expected.items():
            assert _same(m[f"test/{v}/{k}"], float(value)), (v, k, m[f"test/{v}/{k}"], value)
    for k in ("seenmask_acc", "seenmask_precision", "seenmask_recall"):
        for v in ("szn", *tuned):
            assert f"test/{v}/{k}" in m
    assert "miou_unseen" in stdout and "tvmonitor" in stdout


def run_cli(*args: str, cwd: Path = REPO, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "zss.run", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def _epoch_log(out: Path, key: str) -> list[tuple[int, float]]:
    """(epoch, value) of every logged ``key`` in the run's CSV log, in order."""
    with open(out / "csv" / "version_0" / "metrics.csv", newline="") as f:
        return [(int(r["epoch"]), float(r[key])) for r in csv.DictReader(f) if r.get(key)]


@pytest.mark.parametrize(("stage", "key", "best"), [("stage1", "val/fcn_je/miou", max),
                                                     ("stage2", "val/seenmask/loss", min)])
def test_each_stage_keeps_its_best_epoch(run_dir, stage, key, best):
    out, _ = run_dir
    payload = json.loads((out / "metrics.json").read_text())
    log = _epoch_log(out, key)
    assert [e for e, _ in log] == list(range(EPOCHS))  # one validation per epoch
    value = best(v for _, v in log)
    chosen = next(e for e, v in log if v == value)  # on a tie, the earlier epoch
    assert Path(payload[f"{stage}_ckpt"]).name == f"{stage}-{chosen:02d}.ckpt", log


def test_a_trained_module_and_its_checkpoint_give_the_same_test_metrics(run_dir, tmp_path):
    """Both stages trained here, in memory, from the run's config (class vectors from the
    published table, not from a checkpoint), and tested; then the stage-2 checkpoint the
    run's callback saved, loaded and tested again: the same outputs, matrices and scores."""
    import dataclasses

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from zss.data.splits import split_from_config

    out, _ = run_dir
    cfg = OmegaConf.load(out / "config.yaml")  # the run's resolved config
    split = split_from_config(**cfg.split)
    table = instantiate(cfg.embedding, class_names=list(split.class_names))
    kw = dict(accelerator="cpu", logger=False, enable_progress_bar=False,
              enable_model_summary=False, limit_test_batches=3)
    dm = instantiate(cfg.data, _partial_=True)(split=split)

    def fit(module, stage):
        dm.stage = stage
        ckpt = instantiate(cfg.callbacks[f"{stage}_checkpoint"], dirpath=str(tmp_path / stage))
        L.Trainer(max_epochs=1, limit_train_batches=3, limit_val_batches=1, callbacks=[ckpt],
                  **kw).fit(module, datamodule=dm)
        return module, ckpt.best_model_path

    stage1, _ = fit(Stage1Module(
        split=dataclasses.asdict(split), backbone=OmegaConf.to_container(cfg.model.backbone),
        embed_dim=cfg.model.embed_dim, class_embeddings=torch.as_tensor(table),
        loss=cfg.model.loss, optimizer=OmegaConf.to_container(cfg.optimizer)), "stage1")
    trained, path = fit(Stage2Module.from_stage1(
        stage1, optimizer=OmegaConf.to_container(cfg.stage2.optimizer)), "stage2")
    loaded = Stage2Module.load_from_checkpoint(path, map_location="cpu")

    def test(module):
        L.Trainer(**kw).test(module, datamodule=dm, verbose=False)
        hists = {v: h.clone() for v, h in module.test_result.matrices.items()}
        return module.test_result.scores, hists

    scores, hists = test(trained)
    again, hists_again = test(loaded)
    image = trained.preprocessing(next(iter(dm.test_dataloader()))["image"][:1])
    assert loaded.preprocessing == trained.preprocessing  # the checkpoint's own
    with torch.no_grad():
        outputs, outputs_again = trained.net.eval()(image), loaded.net.eval()(image)
    for key in ("embedding", "seenmask"):
        assert torch.equal(outputs[key], outputs_again[key]), key
    assert torch.equal(loaded.class_embeddings, torch.as_tensor(table))  # the table's rows
    assert hists.keys() == hists_again.keys() == {"fcn_je", "szn", "szn_ps"}
    for v, h in hists.items():
        assert h.sum() > 0 and torch.equal(h, hists_again[v]), v
    assert scores.keys() == again.keys()
    for v, s in scores.items():
        for k, value in s.items():
            assert (math.isnan(value) and math.isnan(again[v][k])) or value == again[v][k], k


def test_stage2_starts_from_a_given_stage1_checkpoint(run_dir, voc_sample, word_vectors_dir,
                                                      tmp_path):
    """... with another seed and held-out fraction than stage 1 was trained with: stage 2
    and the gates still use the checkpoint's held-out images (a recomputed set would hold
    images stage 1 trained on), and the log says so."""
    out, _ = run_dir
    first = json.loads((out / "metrics.json").read_text())
    stage1 = first["stage1_ckpt"]
    cmd = [sys.executable, "-m", "zss.run", "+experiment=voc_17_2_2", "+debug=cpu",
           f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"hydra.run.dir={tmp_path}", "stages=[stage2,test]", f"stage1_ckpt={stage1}",
           "seed=7", "data.holdout_fraction=0.3", *TINY]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "metrics.json").read_text())
    assert payload["stage1_ckpt"] == stage1
    assert "held-out images from the checkpoint" in proc.stdout + proc.stderr
    recorded = torch.load(stage1, map_location="cpu", weights_only=False)["zss_heldout"]
    assert payload["heldout"]["from_checkpoint"] and payload["heldout"]["seed"] == 12345
    assert payload["heldout"] == {**first["heldout"], "from_checkpoint": True}
    assert payload["heldout"]["images"] == len(recorded["ids"]) == first["images"]["stage2_val"]
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
    """The run's stage-1 checkpoint, re-labelled as trained from Caffe VGG16 weights under
    the zs3 protocol, with its class vectors recorded as coming from ``table`` (a copy of the
    published table)."""
    import torch

    ckpt = torch.load(stage1, map_location="cpu", weights_only=False)
    ckpt["hyper_parameters"]["backbone"].update(weights="/w/vgg16_caffe.pth",
                                                weights_format="caffe")
    ckpt["hyper_parameters"]["embedding_source"] = str(table)
    assert ckpt["hyper_parameters"]["protocol"]["name"] == "szn"  # the run's, recorded
    ckpt["hyper_parameters"]["protocol"] = {"name": "zs3", "unseen_training_images": "drop",
                                            "background": "seen"}
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
    assert "pass protocol=zs3" in proc.stderr
    marker = json.loads((tmp_path / "refused" / "metrics.json").read_text())
    assert marker["status"] == "failed" and marker["metrics"] == {}  # marked, no scores
    assert "contradicts the config" in marker["error"]
    # the matching config runs, with the checkpoint's preprocessing and embedding source
    proc = run_cli(*common, "model.backbone.weights=/w/vgg16_caffe.pth",
                   "model.backbone.weights_format=caffe", "protocol=zs3",
                   f"hydra.run.dir={tmp_path / 'ok'}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    payload = json.loads((tmp_path / "ok" / "metrics.json").read_text())
    assert payload["preprocessing"]["bgr"] and payload["preprocessing"]["scale"] == 1.0
    assert payload["embedding_source"] == str(table) and payload["stage1_ckpt"] == str(caffe)
    assert payload["backbone"]["weights"] == "/w/vgg16_caffe.pth"
    assert payload["backbone"]["fc_width"] == 64  # the checkpoint's architecture, recorded
    assert payload["protocol"] == "zs3" and payload["protocol_rules"]["name"] == "zs3"


def test_every_contradiction_is_named(run_dir, word_vectors_dir):
    from hydra import compose, initialize_config_dir

    from zss.data.splits import split_from_config
    from zss.runtime.errors import ConfigError
    from zss.runtime.stage1_checkpoint import load_stage1

    out, _ = run_dir
    stage1 = json.loads((out / "metrics.json").read_text())["stage1_ckpt"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        agree = compose("config", overrides=["+experiment=voc_17_2_2", "+debug=cpu",
                                              f"paths.word_vectors_dir={word_vectors_dir}",
                                              "model.backbone.fc_width=64"])
        other = compose("config", overrides=["+experiment=voc_9_2_10", "+debug=cpu",
                                              f"paths.word_vectors_dir={word_vectors_dir}",
                                              "model.embed_dim=50", "protocol=zs3"])
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
    assert ("protocol: the checkpoint was trained under {'name': 'szn', "
            "'unseen_training_images': 'drop', 'background': 'seen'}, the config gives "
            "{'name': 'zs3'") in msg and "(pass protocol=szn)" in msg
