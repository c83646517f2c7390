"""PASCAL-Context on the shared sample and on synthetic label maps: class sets by name (and
what each does with unlabeled pixels), the converter, the original's drop_images rule,
leakage guards, and the errors a user meets."""

import functools
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import loadmat, savemat

from zss.data import (
    CONTEXT33_CLASSES,
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    ContextSegmentation,
    DataError,
    SplitError,
    ZSSDataModule,
    read_label,
    split_from_config,
)
from zss.data.convert_context import convert_context
from zss.data.datasets.context import (
    TASK_FILE,
    context_label_table,
    read_context_labels,
    read_label_map,
)

REPO = Path(__file__).resolve().parents[1]

# the spellings of labels.txt, written here independently of zss.data.datasets.context
SPELLED = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
TASKS = {"context33": CONTEXT33_CLASSES, "context59": CONTEXT59_CLASSES,
         "context60": CONTEXT60_CLASSES}


@pytest.fixture(scope="module")
def context(context_sample) -> Path:
    return context_sample


def _names(root: Path) -> list[str]:
    return [re.match(r"\d+: (.*)", line).group(1)
            for line in (root / "labels.txt").read_text().splitlines() if line.strip()]


def _by_name(label_map: np.ndarray, names: list[str], task: str) -> np.ndarray:
    """The reference mapping of context33/context59: every pixel through its class name,
    unlabeled pixels and those of the other classes void."""
    classes = TASKS[task]
    index = {SPELLED.get(c, c): i for i, c in enumerate(classes)}
    out = np.full(label_map.shape, 255, dtype=np.uint8)
    for value in np.unique(label_map):
        if value > 0 and names[value - 1] in index:
            out[label_map == value] = index[names[value - 1]]
    return out


def _zs3_load_label(label_map: np.ndarray, names: list[str], classes_59: list[str]) -> np.ndarray:
    """ZS3Net's Context-60 rule (valeoai/ZS3 zs3/dataloaders/datasets/context.py,
    load_label): start from zeros (background) and fill in each class of classes-59.txt
    (index 1 … 59, background 0) by its labels.txt name."""
    label = np.zeros(label_map.shape, dtype=np.uint8)
    for idx, name in enumerate(classes_59):
        if idx > 0:
            label[label_map == names.index(SPELLED.get(name, name)) + 1] = idx
    return label


def _reference(label_map, names, task, root):
    if task == "context60":
        classes_59 = [line.split(": ")[1] for line in
                      (root / "classes-59.txt").read_text().splitlines() if line.strip()]
        return _zs3_load_label(label_map, names, classes_59)
    return _by_name(label_map, names, task)


def test_every_class_name_resolves_in_labels_txt(context):
    names = read_context_labels(context / "labels.txt")
    assert len(names) == 459 and names == _names(context)
    for task, classes in TASKS.items():
        table = context_label_table(names, task)
        hits = [int((table == i).sum()) for i in range(len(classes))]
        if task == "context60":  # background: the 400 other classes and unlabeled (0)
            assert hits[0] == 459 - 59 + 1 and table[0] == 0 and all(h == 1 for h in hits[1:])
        else:
            assert all(h == 1 for h in hits), dict(zip(classes, hits, strict=True))
    renamed = ["desk" if n == "table" else n for n in names]
    with pytest.raises(ValueError, match=r"context59 not found in labels.txt: \["
                                         r"\"diningtable \(looked up as 'table'\)\"\]"):
        context_label_table(renamed, "context59")


@pytest.mark.parametrize("task", sorted(TASKS))
def test_label_maps_map_by_name_on_the_whole_sample(context, task, tmp_path):
    names = _names(context)
    table = context_label_table(read_context_labels(context / "labels.txt"), task)
    ids = (context / "ImageSets" / "labels_only.txt").read_text().split()
    assert len(ids) == 500
    written = convert_context(context, tmp_path / task, task)
    assert written == {"written": 500, "skipped": 0}
    assert convert_context(context, tmp_path / task, task) == {"written": 0, "skipped": 500}
    unlabeled = 0
    for id_ in ids:
        raw = loadmat(context / "trainval" / f"{id_}.mat")["LabelMap"]
        expected = _reference(raw, names, task, context)
        unlabeled += int((raw == 0).sum())
        assert np.array_equal(table[read_label_map(context / "trainval" / f"{id_}.mat")],
                              expected), id_
        png = read_label(tmp_path / task / f"{id_}.png").numpy()
        assert np.array_equal(png, expected), id_
    assert unlabeled > 0  # 12.7 % of the sample's pixels: background in context60, else void
    # the dataset reads either and gives the same items
    on_the_fly = ContextSegmentation(context, "val", task=task)
    converted = ContextSegmentation(context, "val", task=task, label_dir=tmp_path / task)
    for i in range(len(on_the_fly)):
        assert torch.equal(on_the_fly[i]["label"], converted[i]["label"])
    assert on_the_fly.class_names == TASKS[task] and on_the_fly.class_set == task


def test_no_leakage_through_the_stage_filters(context):
    split = split_from_config("context_31_2_2", "context33",
                              [c for c in CONTEXT33_CLASSES
                               if c not in ("aeroplane", "horse", "sheep", "train")],
                              ["aeroplane", "horse"], ["sheep", "train"])
    dm = ZSSDataModule(functools.partial(ContextSegmentation, context, task="context33"),
                       split, train_set="train", test_set="val",
                       holdout_fraction=0.25, max_short_side=64)
    allowed = {"stage1": set(split.train_seen_idx) | {255},
               "stage2": set(range(33)) - set(split.unseen_idx) | {255}}
    seen_images = {}
    for stage in ("stage1", "stage2"):
        dm.stage = stage
        dm.require_holdout(stage)
        ids = []
        for loader in (dm.train_dataloader(), dm.val_dataloader()):
            for batch in loader:
                values = set(batch["label"].unique().tolist())
                assert values <= allowed[stage], (stage, batch["id"], values)
                ids += batch["id"]
        seen_images[stage] = ids
    s = dm.summary()
    assert s["train_list"] == 5 and s["stage1_train"] + s["stage1_val"] == 4  # one has aeroplane
    assert len(seen_images["stage1"]) == 4 and len(seen_images["stage2"]) == 5


def test_context_errors_name_the_culprit(context, tmp_path):
    with pytest.raises(DataError, match="data.dataset.task"):
        ContextSegmentation(context, "train")
    with pytest.raises(DataError, match="context34"):
        ContextSegmentation(context, "train", task="context34")
    with pytest.raises(DataError) as info:  # 486 of the 500 label maps have no JPEG here
        ContextSegmentation(context, "labels_only", task="context59")
    assert "486 of 500 ids" in str(info.value) and "JPEG" in str(info.value)
    with pytest.raises(DataError, match=r"lists under .* are \['labels_only', 'official/train'"):
        ContextSegmentation(context, "trainval", task="context59")
    convert_context(context, tmp_path / "c59", "context59", ids=["2008_000003"])
    with pytest.raises(DataError, match="holds context59 labels"):
        ContextSegmentation(context, "val", task="context33", label_dir=tmp_path / "c59")
    with pytest.raises(DataError, match="lacks"):
        ContextSegmentation(tmp_path, "train", task="context33")
    split = split_from_config("voc_17_2_2", "voc", ["background"], [],
                              [c for c in TASKS["context60"][1:21]])
    dm = ZSSDataModule(functools.partial(ContextSegmentation, context, task="context33"),
                       split)
    with pytest.raises(SplitError, match="class set 'context33'"):
        dm.setup("test")


def test_a_stage_without_held_out_images_is_a_clear_error(context, tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("2008_000028\n2008_000716\n")  # one stage-1 image (the other: aeroplane)
    split = split_from_config("context_31_2_2", "context33",
                              [c for c in CONTEXT33_CLASSES
                               if c not in ("aeroplane", "horse", "sheep", "train")],
                              ["aeroplane", "horse"], ["sheep", "train"])
    dm = ZSSDataModule(functools.partial(ContextSegmentation, context, task="context33"),
                       split, train_set=str(one))
    with pytest.raises(SplitError, match=r"stage 1 .* 1 usable training image.*none held out"):
        dm.require_holdout("stage1")
    dm.require_holdout("stage2")  # two images: one trains, one is held out


def test_the_rules_counts_on_the_500_sample_maps(context):
    """The original's rule on the sample's 500 label maps: 7 images are made only of the 33
    classes; 229 have no pixel of another class (unlabeled pixels aside). Counted here from
    the raw LabelMap values, independently of zss; zss's flags must agree image by image."""
    from zss.data.datasets.context import outside_class_set

    names = _names(context)
    values33 = {names.index(SPELLED.get(c, c)) + 1 for c in CONTEXT33_CLASSES}
    table = context_label_table(read_context_labels(context / "labels.txt"), "context33")
    table60 = context_label_table(read_context_labels(context / "labels.txt"), "context60")
    only33 = no_other = 0
    for mat in sorted((context / "trainval").glob("*.mat")):
        raw = loadmat(mat)["LabelMap"]
        values = set(np.unique(raw).tolist())
        only33 += values <= values33
        no_other += values - {0} <= values33
        flags = outside_class_set(read_label_map(mat), table)
        assert flags == (1 if values - {0} - values33 else 0) | (2 if 0 in values else 0)
        assert outside_class_set(read_label_map(mat), table60) == 0  # background takes all
    assert (only33, no_other) == (7, 229)


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


def test_context_31_2_2_on_the_sample_names_the_override(context, word_vectors_dir, tmp_path):
    """The experiment's default (the original's rule) keeps no image of the sample's lists:
    the run stops before anything trains and names the override that makes it usable."""
    cmd = [sys.executable, "-m", "zss.run", "+experiment=context_31_2_2", "+debug=cpu",
           f"paths.data_dir={context}", f"paths.word_vectors_dir={word_vectors_dir}",
           f"hydra.run.dir={tmp_path / 'run'}", f"paths.cache_dir={tmp_path / 'cache'}"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    for list_, n in (("train", 5), ("val", 9)):
        assert (f"data.dataset.drop_images=other_classes_or_unlabeled (the original SZN code's "
                f"rule) leaves none of the {n} images of {context}/ImageSets/{list_}.txt"
                ) in proc.stderr
        assert f"set data.dataset.drop_images=null, which keeps all {n}" in proc.stderr
