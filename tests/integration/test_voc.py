"""VOCSegmentation on the shared VOC sample: its items and class presence, and the paper's
image lists shipped with zss."""

from __future__ import annotations

import torch

from zss.data import (
    IGNORE_INDEX,
    VOC_CLASSES,
    VOCSegmentation,
)


# ---- dataset on the shared sample -------------------------------------------------------
def test_voc_sample_dataset(voc_sample):
    train = VOCSegmentation(voc_sample, "train")
    val = VOCSegmentation(voc_sample / "VOCdevkit" / "VOC2012", "val")  # VOC2012 root too
    assert (len(train), len(val)) == (49, 16)
    for ds in (train, val):
        for i in range(len(ds)):
            item = ds[i]
            image, label = item["image"], item["label"]
            assert image.dtype == torch.uint8 and image.shape[0] == 3
            assert label.dtype == torch.uint8 and label.shape == image.shape[1:]
            assert set(label.unique().tolist()) <= set(range(21)) | {IGNORE_INDEX}
            assert item["id"] == ds.ids[i]
    presence = val.class_presence()
    sheep, train_cls = VOC_CLASSES.index("sheep"), VOC_CLASSES.index("train")
    assert sheep in presence[val.ids.index("2007_000676")]
    assert train_cls in presence[val.ids.index("2010_004980")]
