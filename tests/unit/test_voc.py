"""VOC reading on tiny trees in tmp_path (zss.data.datasets.voc): a missing root, list or file,
RGB masks, label values out of range, image and label sizes, palette labels and the
class-presence cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.helpers import small_label, write_item
from zss.data import DataError, VOCSegmentation, read_label


# ---- bad input ---------------------------------------------------------------------------
def test_missing_root_and_list(tmp_path, tiny_voc):
    with pytest.raises(DataError, match="does not exist"):
        VOCSegmentation(tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        VOCSegmentation(tiny_voc, "trainval")
    assert "trainval.txt" in str(err.value) and "['train']" in str(err.value)


@pytest.mark.parametrize("kind", ["JPEGImages/img1.jpg", "SegmentationClass/img2.png"])
def test_missing_files(tiny_voc, kind):
    (tiny_voc / "VOCdevkit" / "VOC2012" / kind).unlink()
    with pytest.raises(DataError) as err:
        VOCSegmentation(tiny_voc, "train")
    msg = str(err.value)
    assert Path(kind).stem in msg and Path(kind).name in msg and "train.txt" in msg


def _errors_of_item_and_scan(ds, index: int) -> list[str]:
    """The DataError messages of reading item ``index`` and of the class-presence scan: both
    must refuse the bad file."""
    messages = []
    for call in (lambda: ds[index], ds.class_presence):
        with pytest.raises(DataError) as err:
            call()
        messages.append(str(err.value))
    return messages


def test_rgb_colour_mask(tiny_voc):
    write_item(tiny_voc, "img1", small_label((0, 5)), rgb_label=True)
    for msg in _errors_of_item_and_scan(VOCSegmentation(tiny_voc, "train"), 1):
        assert "img1.png" in msg and "RGB colour mask" in msg and "palette" in msg
        assert "colour map" in msg


def test_label_value_out_of_range(tiny_voc):
    write_item(tiny_voc, "img2", small_label((0, 42)))
    for msg in _errors_of_item_and_scan(VOCSegmentation(tiny_voc, "train"), 2):
        assert "img2.png" in msg and "42" in msg and "num_classes=21" in msg
    assert VOCSegmentation(tiny_voc, "train", num_classes=43)[2]["label"].max() == 255


def test_image_label_size_mismatch(tiny_voc):
    write_item(tiny_voc, "img0", small_label((0, 1), h=12, w=16), image_hw=(10, 16))
    for msg in _errors_of_item_and_scan(VOCSegmentation(tiny_voc, "train"), 0):
        assert "'img0'" in msg and "10×16" in msg and "12×16" in msg


def test_read_label_palette_values(tiny_voc):
    path = tiny_voc / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "img2.png"
    label = read_label(path)
    assert label.dtype == torch.int64 and set(label.unique().tolist()) == {0, 3, 255}


def test_class_presence_cache(tiny_voc, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = VOCSegmentation(tiny_voc, "train", cache_dir=cache)
    presence = ds.class_presence()
    assert presence == [frozenset({0, 1}), frozenset({0, 2}), frozenset({0, 3})]
    files = list(cache.glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["presence"][2] == [0, 3]

    def fail(self, index):
        raise AssertionError("cache not used")

    monkeypatch.setattr(VOCSegmentation, "_scan", fail)
    assert VOCSegmentation(tiny_voc, "train", cache_dir=cache).class_presence() == presence
    monkeypatch.undo()
    write_item(tiny_voc, "img1", small_label((0, 7)))  # a changed label invalidates the key
    assert VOCSegmentation(tiny_voc, "train", cache_dir=cache).class_presence()[1] == {0, 7}
