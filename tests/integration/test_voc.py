"""VOCSegmentation on the shared VOC sample: its items and class presence, and the paper's
image lists shipped with zss."""

from __future__ import annotations

import pytest
import torch

from zss.data import IGNORE_INDEX, VOC_CLASSES, DataError, VOCSegmentation


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


def test_the_papers_lists_ship_with_zss(voc_sample):
    from zss.data.datasets.voc import PACKAGED_LISTS

    sbd_train = (PACKAGED_LISTS / "sbd_train.txt").read_text().split()
    seg11valid = (PACKAGED_LISTS / "seg11valid.txt").read_text().split()
    assert len(sbd_train) == len(set(sbd_train)) == 8498
    assert len(seg11valid) == len(set(seg11valid)) == 736
    assert not set(sbd_train) & set(seg11valid)
    shared = voc_sample.parent / "voc-lists"
    if shared.is_dir():  # the same lists as the developers' copy
        assert sbd_train == (shared / "sbd_train.txt").read_text().split()
        assert seg11valid == (shared / "seg11valid.txt").read_text().split()
    # a VOC root without these lists uses the shipped ones (the sample lacks their images)
    with pytest.raises(DataError) as info:
        VOCSegmentation(voc_sample, "seg11valid")
    assert "of 736 ids" in str(info.value) and "seg11valid.txt" in str(info.value)
