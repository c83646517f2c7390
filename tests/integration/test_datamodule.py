"""ZSSDataModule on the shared samples: no leakage in any stage under every shipped split,
the parts and their counts, and held-out images given by id."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from zss.data import IGNORE_INDEX, VOCSegmentation, ZSSDataModule, split_from_config

# ---- leakage over the shared samples, under every shipped split --------------------------
# (the ZS3 K = 4, 6, 8 splits lie between K = 2 and K = 10 and are left out for time;
# tests/integration/test_protocols.py counts their images)
SPLITS = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "split")
                .glob("*.yaml") if not p.stem.endswith(("_k4", "_k6", "_k8")))


def _shipped_split(name: str, request):
    """The split of ``conf/split/<name>.yaml`` and a factory of the shared sample it runs
    on (VOC, or PASCAL-Context for a context class set)."""
    from omegaconf import OmegaConf

    from zss.data.datasets.context import ContextSegmentation

    conf = Path(__file__).resolve().parents[2] / "conf" / "split" / f"{name}.yaml"
    split = split_from_config(**OmegaConf.to_container(OmegaConf.load(conf)))
    classes = OmegaConf.load(conf).classes
    if classes.startswith("context"):
        return split, functools.partial(ContextSegmentation, request.getfixturevalue(
            "context_sample"), task=classes)
    return split, functools.partial(VOCSegmentation, request.getfixturevalue("voc_sample"),
                                    task=classes)


_PRESENT: dict[str, list[set[int]]] = {}


def _raw_presence(factory) -> list[set[int]]:
    """Per training image, the label values present (void excluded), read from the labels
    (not from the dataset's presence cache); once per sample."""
    key = repr(factory)
    if key not in _PRESENT:
        raw = factory("train")
        _PRESENT[key] = [set(raw[i]["label"].unique().tolist()) - {IGNORE_INDEX}
                         for i in range(len(raw))]
    return _PRESENT[key]


@pytest.mark.parametrize("crop_size", [None, 64])
@pytest.mark.parametrize("name", SPLITS)
def test_no_leakage_in_any_stage(name, crop_size, request):
    torch.manual_seed(0)
    sp, factory = _shipped_split(name, request)
    dm = ZSSDataModule(factory, sp,
                       batch_size=2, eval_batch_size=2, max_short_side=96,
                       crop_size=crop_size, holdout_fraction=0.1, seed=0)
    s1_allowed = set(sp.train_seen_idx) | {IGNORE_INDEX}
    s2_allowed = set(sp.seen_idx) | {IGNORE_INDEX}
    seen_lut = torch.full((256,), -1, dtype=torch.int64)
    seen_lut[sp.train_seen_idx], seen_lut[sp.train_unseen_idx] = 1, 0
    seen_lut[IGNORE_INDEX] = IGNORE_INDEX
    # the images each stage may use, counted from the raw labels
    present = _raw_presence(factory)
    expected = {"stage1": sum(bool(p) and p <= set(sp.train_seen_idx) for p in present),
                "stage2": sum(bool(p) and not p & set(sp.unseen_idx) for p in present)}

    dm.stage = "stage1"
    n1 = 0
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            assert set(batch["label"].unique().tolist()) <= s1_allowed, batch["id"]
            assert "seenmask" not in batch
            if crop_size and loader.dataset.transform is dm.train_transform:
                assert batch["image"].shape[-2:] == (crop_size, crop_size)
            n1 += len(batch["id"])
    dm.stage = "stage2"
    n2, saw_unseen_target = 0, False
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            label, seenmask = batch["label"], batch["seenmask"]
            assert set(label.unique().tolist()) <= s2_allowed, batch["id"]
            assert set(seenmask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
            assert label.dtype == seenmask.dtype == torch.uint8  # int64 on the device
            assert torch.equal(seenmask.long(), seen_lut[label.long()])
            saw_unseen_target |= bool((seenmask == 0).any())
            n2 += len(batch["id"])
    s = dm.summary()
    assert n1 == s["stage1_train"] + s["stage1_val"] == expected["stage1"] > 0
    assert n2 == s["stage2_train"] + s["stage2_val"] == expected["stage2"] >= n1
    # train_unseen pixels reach stage 2 as target 0 (when the split has such classes)
    assert saw_unseen_target == bool(sp.train_unseen)


def test_datamodule_parts(voc_sample, split_17_2_2):
    dm = ZSSDataModule(functools.partial(VOCSegmentation, voc_sample), split_17_2_2,
                       max_short_side=64, holdout_fraction=0.1, seed=0)
    s = dm.summary()
    assert s == {"train_list": 49, "all_void": 0, "stage1_train": 37, "stage1_val": 4,
                 "stage2_train": 42, "stage2_val": 5, "test": 16}
    assert "stage 1: 37 train / 4 held-out images" in dm.describe()
    # one held-out set: never trained on in either stage
    held = set(dm.ids("stage2_val"))
    assert set(dm.ids("stage1_val")) <= held
    assert not held & (set(dm.ids("stage1_train")) | set(dm.ids("stage2_train")))
    assert set(dm.ids("stage1_train")) <= set(dm.ids("stage2_train"))
    # deterministic in the seed
    dm2 = ZSSDataModule(functools.partial(VOCSegmentation, voc_sample), split_17_2_2,
                        holdout_fraction=0.1, seed=0)
    assert dm2.ids("stage1_val") == dm.ids("stage1_val")
    # the test loader is the whole test split, untouched by the filters
    test_ids = [i for b in dm.test_dataloader() for i in b["id"]]
    assert test_ids == VOCSegmentation(voc_sample, "val").ids
    with pytest.raises(ValueError, match="stage must be one of"):
        dm.stage = "stage3"


def test_held_out_images_given_by_id_ignore_the_seed(voc_sample, split_17_2_2):
    """A run continued from a stage-1 checkpoint holds out the checkpoint's images: another
    seed would draw other ones, among them images stage 1 was trained on."""
    factory = functools.partial(VOCSegmentation, voc_sample)
    trained = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.1, seed=0)
    record = trained.heldout_record()
    assert record["ids"] == sorted(trained.ids("stage2_val")) and not record["from_checkpoint"]
    other_seed = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.1, seed=7)
    contaminated = set(other_seed.ids("stage2_val")) & set(trained.ids("stage1_train"))
    assert contaminated  # what a recomputed held-out set would have validated on
    reused = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.3, seed=7,
                           heldout_ids=record["ids"])
    for part in ("stage1_val", "stage2_val", "stage1_train", "stage2_train"):
        assert reused.ids(part) == trained.ids(part), part
    assert reused.heldout_record()["from_checkpoint"]
