"""PASCAL-Context on synthetic label maps: unlabeled pixels per class set, the original's
drop_images rule (the images it keeps, its counts, its errors, its cache), and context60
labels of an older zss refused."""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from tests.helpers import SPELLED, TASKS
from zss.data import (
    CONTEXT33_CLASSES,
    CONTEXT59_CLASSES,
    ContextSegmentation,
    DataError,
    ZSSDataModule,
    split_from_config,
)
from zss.data.convert_context import convert_context
from zss.data.datasets.context_labels import TASK_FILE

# ---- synthetic label maps (no shared data) -----------------------------------------------
OTHER = "air conditioner"  # a labels.txt class of none of the three sets
MAPS = {  # id: the LabelMap's pixels, by name (None = unlabeled, LabelMap 0)
    "pure": ["sky", "person"], "unlab": ["person", None], "other": ["person", OTHER],
    "both": [None, OTHER, "sky"]}


@pytest.fixture
def synthetic(tmp_path) -> Path:
    """A Context root of four 6×8 label maps (:data:`MAPS`), lists train (all four) and val
    (unlab, other, pure), and a labels.txt of the 33 ∪ 59 classes plus two others."""
    names = sorted({SPELLED.get(c, c) for c in (*CONTEXT33_CLASSES, *CONTEXT59_CLASSES)}
                   | {OTHER, "pool table"})
    (tmp_path / "labels.txt").write_text("".join(f"{i}: {n}\n" for i, n in enumerate(names, 1)))
    for folder in ("trainval", "VOCdevkit/VOC2010/JPEGImages", "ImageSets"):
        (tmp_path / folder).mkdir(parents=True)
    for id_, parts in MAPS.items():
        label_map = np.zeros((6, 8), dtype=np.uint16)
        for k, name in enumerate(parts):  # column bands, one per part
            label_map[:, 2 * k:] = 0 if name is None else names.index(name) + 1
        savemat(tmp_path / "trainval" / f"{id_}.mat", {"LabelMap": label_map})
        Image.new("RGB", (8, 6)).save(tmp_path / "VOCdevkit/VOC2010/JPEGImages" / f"{id_}.jpg")
    (tmp_path / "ImageSets" / "train.txt").write_text("pure\nunlab\nother\nboth\n")
    (tmp_path / "ImageSets" / "val.txt").write_text("unlab\nother\npure\n")
    return tmp_path


def _all33_split():
    return split_from_config("all33", "context33", list(CONTEXT33_CLASSES), [], [])


@pytest.mark.parametrize("task", sorted(TASKS))
def test_unlabeled_pixels_are_background_in_context60_and_void_otherwise(synthetic, task,
                                                                          tmp_path):
    ds = ContextSegmentation(synthetic, "train", task=task)
    label = ds[ds.ids.index("both")]["label"].numpy()  # columns 0-1 unlabeled, 2-3 OTHER
    fill = 0 if task == "context60" else 255
    assert (label[:, :4] == fill).all()
    assert (label[:, 4:] == TASKS[task].index("sky")).all()
    convert_context(synthetic, tmp_path / "png", task)
    png = ContextSegmentation(synthetic, "train", task=task, label_dir=tmp_path / "png")
    assert np.array_equal(png[ds.ids.index("both")]["label"].numpy(), label)


KEPT = {None: (["pure", "unlab", "other", "both"], ["unlab", "other", "pure"]),
        "other_classes": (["pure", "unlab"], ["unlab", "pure"]),
        "other_classes_or_unlabeled": (["pure"], ["pure"])}


@pytest.mark.parametrize("rule", list(KEPT))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_drop_images_keeps_the_images_of_each_setting(synthetic, task, rule):
    for image_set, kept in zip(("train", "val"), KEPT[rule], strict=True):
        ds = ContextSegmentation(synthetic, image_set, task=task, drop_images=rule)
        listed = (synthetic / "ImageSets" / f"{image_set}.txt").read_text().split()
        if task == "context60":  # no pixel is outside the 60 classes: nothing is dropped
            kept = listed
        assert ds.ids == kept and len(ds) == len(kept)
        assert ds.dropped == [i for i in listed if i not in kept]


def test_drop_images_filters_train_and_test_and_is_counted(synthetic):
    def datamodule(rule):
        factory = functools.partial(ContextSegmentation, synthetic, task="context33",
                                    drop_images=rule)
        return ZSSDataModule(factory, _all33_split(), holdout_fraction=0.5)

    dm = datamodule("other_classes")
    s = dm.summary()
    assert s["dropped_outside_class_set"] == {"train": 2, "test": 1}
    assert (s["train_list"], s["test"]) == (2, 2)
    assert sorted(dm.ids("stage1_train") + dm.ids("stage1_val")) == ["pure", "unlab"]
    assert sorted(i for b in dm.test_dataloader() for i in b["id"]) == ["pure", "unlab"]
    line = dm.describe()
    assert "on 'train' (2 images; 2 dropped by data.dataset.drop_images=other_classes)" in line
    assert line.endswith("test 'val': 2 images; 1 dropped by data.dataset.drop_images="
                         "other_classes")
    json.dumps(s)  # recorded in metrics.json as it is
    keep = datamodule(None)
    assert "dropped_outside_class_set" not in keep.summary()
    assert "drop_images" not in keep.describe()
    assert (keep.summary()["train_list"], keep.summary()["test"]) == (4, 3)


def test_a_list_the_rule_empties_is_one_clear_error(synthetic):
    two = synthetic / "two.txt"
    two.write_text("other\nboth\n")
    with pytest.raises(DataError) as info:
        ContextSegmentation(synthetic, str(two), task="context33", drop_images="other_classes")
    msg = str(info.value)
    assert msg.startswith("data.dataset.drop_images=other_classes (the original SZN code's "
                          f"rule) leaves none of the 2 images of {two}: ")
    assert "set data.dataset.drop_images=null, which keeps all 2" in msg and "\n" not in msg
    two.write_text("unlab\nboth\n")
    with pytest.raises(DataError, match=r"other_classes_or_unlabeled .*\(of another class, or "
                                        r"unlabeled\).*keeps all 2 .*other_classes would keep "
                                        r"1\)"):
        ContextSegmentation(synthetic, str(two), task="context33",
                            drop_images="other_classes_or_unlabeled")
    with pytest.raises(DataError, match=r"drop_images='unlabeled'; use null .*'other_classes'"):
        ContextSegmentation(synthetic, "train", task="context33", drop_images="unlabeled")


def test_the_rule_reads_the_mat_maps_once_and_even_beside_pngs(synthetic, tmp_path,
                                                              monkeypatch):
    import zss.data.datasets.context as context_module

    cache = tmp_path / "cache"
    convert_context(synthetic, tmp_path / "png", "context33")
    rule = "other_classes"
    first = ContextSegmentation(synthetic, "train", task="context33", drop_images=rule,
                                cache_dir=cache)
    assert len(list(cache.glob("context33_outside_train_*.json"))) == 1

    def fail(path):
        raise AssertionError(f"{path} parsed again")

    monkeypatch.setattr(context_module, "read_label_map", fail)
    for label_dir in (None, tmp_path / "png"):  # PNGs cannot tell unlabeled from other
        again = ContextSegmentation(synthetic, "train", task="context33", drop_images=rule,
                                    cache_dir=cache, label_dir=label_dir)
        assert again.ids == first.ids == ["pure", "unlab"]
    monkeypatch.undo()
    (synthetic / "trainval" / "both.mat").unlink()
    with pytest.raises(DataError, match=r"decides from the .mat label maps, but 1 of the 4 ids .*both"
                                        r"\.mat"):
        ContextSegmentation(synthetic, "train", task="context33", drop_images=rule,
                            label_dir=tmp_path / "png")


def test_context60_pngs_of_an_older_zss_are_refused(synthetic, tmp_path):
    convert_context(synthetic, tmp_path / "c60", "context60", ids=["pure"])
    assert (tmp_path / "c60" / TASK_FILE).read_text().strip() == \
        "context60 unlabeled=background"
    ContextSegmentation(synthetic, "val", task="context59", label_dir=None)
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / TASK_FILE).write_text("context60\n")  # voided unlabeled pixels
    with pytest.raises(DataError, match="older zss, which voided unlabeled pixels"):
        ContextSegmentation(synthetic, "train", task="context60", label_dir=tmp_path / "old")
    with pytest.raises(DataError, match="holds other labels"):
        convert_context(synthetic, tmp_path / "old", "context60")
