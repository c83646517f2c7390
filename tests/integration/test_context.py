"""PASCAL-Context on the shared sample: class sets by name (and what each does with unlabeled
pixels), the converter against an independent mapping, the original's drop_images rule
counted on the 500 label maps, leakage through the stage filters, and the errors a user
meets."""

import functools
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.io import loadmat

from tests.helpers import SPELLED, TASKS
from zss.data import (
    CONTEXT33_CLASSES,
    ContextSegmentation,
    DataError,
    SplitError,
    ZSSDataModule,
    read_label,
    split_from_config,
)
from zss.data.convert_context import convert_context
from zss.data.datasets.context_labels import (
    context_label_table,
    read_context_labels,
    read_label_map,
)


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
    from zss.data.datasets.context_labels import outside_class_set

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
