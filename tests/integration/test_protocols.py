"""The benchmark protocols (szn, zs3, spnet) on the shared samples: image counts against a
direct count of the label files, the leakage rules of every protocol over real loader
batches, voc20 labels, ZS3Net's lists against its files, and the Context K variants."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from zss.data import VOC20_CLASSES, VOC_CLASSES, VOCSegmentation
from zss.data.protocols import ZS3_NAMES, Protocol
from zss.data.splits import CONTEXT60_CLASSES, IGNORE_INDEX, split_from_config
from zss.data.transforms import resize_label
from zss.runtime.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
KS = (2, 4, 6, 8, 10)
VOC_EXPERIMENTS = ["voc_17_2_2", *(f"zs3_voc_k{k}" for k in KS), "spnet_voc_15_5"]

# Stage-1 / stage-2 images (train + held-out) of the 49-image VOC sample's `train` list,
# counted by hand from its labels (and recounted by direct_counts below).
EXPECTED_COUNTS = {
    "voc_17_2_2": (41, 47),          # szn: stage 1 all train_seen; stage 2 no sheep/train
    "zs3_voc_k2": (39, 46), "zs3_voc_k4": (33, 39), "zs3_voc_k6": (28, 34),
    "zs3_voc_k8": (24, 29), "zs3_voc_k10": (19, 24),
    "spnet_voc_15_5": (44, 47),      # spnet: images kept, only those left with no class go
}  # fmt: skip


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One presence cache for the module: each sample is scanned once per class set."""
    return tmp_path_factory.mktemp("presence-cache")


def _compose(experiment: str, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={experiment}", *overrides])


def _datamodule(cfg):
    split = split_from_config(**cfg.split)
    protocol = Protocol(**cfg.protocol)
    protocol.check(split)
    # (the module normalises the uint8 batches on the device; labels are what is checked)
    return instantiate(cfg.data, _partial_=True)(split=split, protocol=protocol), split


def _voc_cfg(experiment, voc_sample, cache):
    return _compose(experiment, "+debug=cpu", f"paths.data_dir={voc_sample}",
                    "data.train_set=train", "data.test_set=val", f"paths.cache_dir={cache}",
                    "data.max_short_side=48")


def _raw_voc(voc_sample: Path, image_set: str) -> dict[str, np.ndarray]:
    root = voc_sample / "VOCdevkit" / "VOC2012"
    ids = (root / "ImageSets" / "Segmentation" / f"{image_set}.txt").read_text().split()
    return {i: np.array(Image.open(root / "SegmentationClass" / f"{i}.png")) for i in ids}


def direct_counts(raw: dict[str, np.ndarray], cfg) -> tuple[int, int]:
    """The protocol's image rules written out over the PNG values (VOC indices)."""
    voc = {n: i for i, n in enumerate(VOC_CLASSES)}
    ts = {voc[n] for n in cfg.split.train_seen}
    tu = {voc[n] for n in cfg.split.train_unseen}
    u = {voc[n] for n in cfg.split.unseen}
    s1 = s2 = 0
    for label in raw.values():
        present = set(np.unique(label).tolist()) - {255}
        if cfg.protocol.name == "spnet":  # background is no class; hidden classes void
            present -= {0}
            s1 += bool(present - tu - u)
            s2 += bool(present - u)
        else:
            s1 += bool(present) and present <= ts
            s2 += bool(present) and not present & u
    return s1, s2


@pytest.mark.parametrize("experiment", VOC_EXPERIMENTS)
def test_image_counts_per_protocol_on_the_voc_sample(experiment, voc_sample, cache):
    cfg = _voc_cfg(experiment, voc_sample, cache)
    dm, _ = _datamodule(cfg)
    s = dm.summary()
    counts = (s["stage1_train"] + s["stage1_val"], s["stage2_train"] + s["stage2_val"])
    assert counts == direct_counts(_raw_voc(voc_sample, "train"), cfg)
    assert counts == EXPECTED_COUNTS[experiment]
    assert s["train_list"] == 49 and s["test"] == 16 and s["stage1_val"] >= 1


def _expected_label(raw: np.ndarray, split, protocol: str, stage: str) -> np.ndarray:
    """The label a stage must get under the protocol, from the PNG values."""
    if protocol != "spnet":
        return raw.astype(np.int64)
    out = np.full(raw.shape, IGNORE_INDEX, dtype=np.int64)  # background and void
    hidden = set(split.unseen) | (set(split.train_unseen) if stage == "stage1" else set())
    for value, name in enumerate(VOC_CLASSES[1:], 1):
        if name not in hidden:
            out[raw == value] = VOC20_CLASSES.index(name)
    return out


@pytest.mark.parametrize("experiment", ["voc_17_2_2", "zs3_voc_k10", "spnet_voc_15_5"])
def test_no_hidden_class_reaches_a_training_batch(experiment, voc_sample, cache):
    """Every stage-1 / stage-2 training and validation batch of the real loaders holds only
    the classes its stage may see; under spnet each image arrives with its U pixels (and, in
    stage 1, its train_unseen pixels) and its background as 255 -- the label's value counts
    equal those of the PNG with these pixels voided, then resized as the loader resizes
    (nearest neighbour: the mapping commutes with it; a flip keeps the counts) -- and the
    test labels have background void too."""
    cfg = _voc_cfg(experiment, voc_sample, cache)
    dm, split = _datamodule(cfg)
    raw = _raw_voc(voc_sample, "train")
    for stage in ("stage1", "stage2"):
        dm.stage = stage
        allowed = set(split.train_seen_idx) if stage == "stage1" else (
            set(range(split.num_classes)) - set(split.unseen_idx))
        seen_ids = []
        for loader in (dm.train_dataloader(), dm.val_dataloader()):
            for batch in loader:
                for image_id, label in zip(batch["id"], batch["label"], strict=True):
                    values = set(label.unique().tolist()) - {IGNORE_INDEX}
                    assert values and values <= allowed, (stage, image_id, values)
                    expected = resize_label(torch.from_numpy(_expected_label(
                        raw[image_id], split, cfg.protocol.name, stage)), label.shape).numpy()
                    np.testing.assert_array_equal(
                        np.bincount(label.numpy().ravel(), minlength=256),
                        np.bincount(expected.ravel(), minlength=256), err_msg=image_id)
                    seen_ids.append(image_id)
        assert len(seen_ids) == len(set(seen_ids)) == len(dm.ids(f"{stage}_train")) + len(
            dm.ids(f"{stage}_val"))
    # the gates are tuned on stage 2's held-out images, labelled as stage 2 sees them (the
    # spnet run once crashed there: its U pixels were not voided for the tuning pass)
    tuned_ids = []
    for batch in dm.gate_tuning_dataloader():
        for image_id, label in zip(batch["id"], batch["label"], strict=True):
            assert not set(label.unique().tolist()) & set(split.unseen_idx), image_id
            expected = resize_label(torch.from_numpy(_expected_label(
                raw[image_id], split, cfg.protocol.name, "stage2")), label.shape).numpy()
            np.testing.assert_array_equal(np.bincount(label.numpy().ravel(), minlength=256),
                                          np.bincount(expected.ravel(), minlength=256))
            tuned_ids.append(image_id)
    assert sorted(tuned_ids) == sorted(dm.ids("stage2_val"))
    if cfg.protocol.name == "spnet":
        test_raw = _raw_voc(voc_sample, "val")
        unseen_pixels = 0
        for batch in dm.test_dataloader():
            for image_id, label in zip(batch["id"], batch["label"], strict=True):
                png = resize_label(torch.from_numpy(test_raw[image_id].astype(np.int64)),
                                   label.shape).numpy()
                assert (label.numpy()[png == 0] == IGNORE_INDEX).all()
                np.testing.assert_array_equal(label.numpy()[(png > 0) & (png < 21)],
                                              png[(png > 0) & (png < 21)] - 1)
                unseen_pixels += int(np.isin(label.numpy(), split.unseen_idx).sum())
        assert unseen_pixels > 0  # U is evaluated


def test_context60_zs3_batches_hold_no_unseen_class(context_sample, cache):
    cfg = _compose("zs3_context_k2", "+debug=cpu", f"paths.data_dir={context_sample}",
                   f"paths.cache_dir={cache}")
    dm, split = _datamodule(cfg)
    # of the 5 images, one has motorbike (U: dropped), one car (train_unseen: stage 2 only)
    assert dm.summary()["stage1_train"] + dm.summary()["stage1_val"] == 3
    for stage in ("stage1", "stage2"):
        dm.stage = stage
        allowed = set(split.train_seen_idx) if stage == "stage1" else (
            set(range(split.num_classes)) - set(split.unseen_idx))
        for loader in (dm.train_dataloader(), dm.val_dataloader()):
            for batch in loader:
                values = set(batch["label"].unique().tolist()) - {IGNORE_INDEX}
                assert values <= allowed and CONTEXT60_CLASSES.index("motorbike") not in values


def test_voc20_labels_are_voc_minus_one_with_background_void(voc_sample):
    ds = VOCSegmentation(voc_sample, "val", task="voc20")
    assert ds.class_names == VOC_CLASSES[1:] and ds.class_set == "voc20"
    png = _raw_voc(voc_sample, "val")[ds.ids[0]]
    label = ds[0]["label"].numpy()
    expected = np.where((png == 0) | (png == 255), 255, png.astype(np.int64) - 1)
    np.testing.assert_array_equal(label, expected)


def _zs3_split(short: str, k: int):
    return OmegaConf.load(REPO / "conf" / "split" / f"zs3_{short}_k{k}.yaml")


@pytest.mark.parametrize("short,name", [("voc", "pascal_voc"), ("context", "pascal_context")])
def test_zs3_lists_match_zs3nets_files(short, name, word_vectors_dir):
    path = word_vectors_dir / "zs3" / f"{name}_unseen_classes.txt"
    found = {}
    for line in path.read_text().splitlines():  # "4 unseen: cow,motorbike,airplane,sofa"
        k, names = line.split(" unseen:")
        found[int(k)] = [ZS3_NAMES.get(n.strip(), n.strip()) for n in names.split(",")]
    assert found == {k: list(_zs3_split(short, k).unseen) for k in KS}


@pytest.mark.parametrize("k", KS)
def test_context_k_variants_set_up_on_the_context_sample(k, context_sample, cache):
    """On the sample's 9-image `val` list (its 5-image `train` list leaves one stage-1
    image at K = 10): every stage has images to train on and to hold out."""
    cfg = _compose(f"zs3_context_k{k}", "+debug=cpu", f"paths.data_dir={context_sample}",
                   "data.train_set=val", "data.test_set=train", f"paths.cache_dir={cache}")
    dm, _ = _datamodule(cfg)
    for stage in ("stage1", "stage2"):
        dm.require_holdout(stage)
    assert dm.summary()["train_list"] == 9


def test_spnet_protocol_on_a_background_split_stops_the_run(tmp_path, voc_sample):
    from zss.runtime.runner import train_and_test

    cfg = _compose("voc_17_2_2", "protocol=spnet", "+debug=cpu", f"paths.data_dir={voc_sample}",
                   f"paths.output_dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path}")
    with pytest.raises(ConfigError, match="ignores background"):
        train_and_test(cfg)
    assert not os.path.exists(tmp_path / "run" / "checkpoints")
