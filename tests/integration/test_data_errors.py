"""A clear error for every bad data input: the message names the file, id or list at fault
and says what to do; it is a :class:`~zss.runtime.errors.UserInputError`, which
``python -m zss.run`` prints as one paragraph with exit status 2
(tests/cli/test_bad_input.py); no file the user had is changed.

The inputs are small corrupted copies of the shared VOC sample (a few images, in tmp_path).
Rows covered elsewhere: an RGB mask, label values out of range, image and label of
different sizes, a missing list or root, a missing JPEG or label (tests/unit/test_voc.py);
a class unknown to the dataset, a j without a published table (tests/cli/test_bad_input.py);
word vectors in no supported format (tests/integration/test_embeddings.py); a checkpoint
that is none or contradicts the config (tests/integration/test_stage1_checkpoint.py,
tests/cli/test_voc_run.py)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import TRAIN, cut, ids_of, jpeg, png, tiny_voc_copy, tree_digest
from zss.data import VOC_CLASSES, VOCSegmentation, ZSSDataModule, split_from_config
from zss.data.files import save_label_png
from zss.runtime.errors import UserInputError


def scramble(path: Path) -> None:
    """Overwrite 2 kB in the middle of the entropy-coded data (a damaged copy)."""
    data = bytearray(path.read_bytes())
    start = len(data) // 3
    data[start:start + 2000] = bytes((b * 7 + 13) % 256 for b in data[start:start + 2000])
    path.write_bytes(bytes(data))


def label_array(voc: Path, id_: str) -> np.ndarray:
    with Image.open(png(voc, id_)) as img:
        return np.array(img)


@pytest.fixture(scope="module")
def split():
    seen = [c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")]
    return split_from_config("voc_17_2_2", "voc", seen, ["aeroplane", "horse"],
                             ["sheep", "train"])


def datamodule(voc: Path, split, train_set: str = "train", test_set: str = "val",
               cache: Path | None = None) -> ZSSDataModule:
    return ZSSDataModule(functools.partial(VOCSegmentation, voc, cache_dir=cache), split,
                         train_set=train_set, test_set=test_set)


def set_up(dm: ZSSDataModule) -> None:
    """What a run does before it trains: the test set, then the training set."""
    dm.setup("test")
    dm.setup("fit")


# ---- data: one row per bad input ---------------------------------------------------------
# (what to break, the lists to use, texts the message must hold: {id}, {jpg}, {png} and
# {list} are filled in with the broken id and its files)
def _first(voc, name="train"):
    return ids_of(voc, name)[1]


def _twice(voc):
    ids = ids_of(voc, "train")
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n".join(ids + ids[2:4]))


def _empty(voc):
    (voc / "ImageSets" / "Segmentation" / "train.txt").write_text("\n\n")


def _no_jpegs(voc):
    for i in ids_of(voc, "train")[:7]:
        jpeg(voc, i).unlink()


DATA_ROWS: dict[str, tuple[Callable[[Path], object], str, list[str]]] = {
    "truncated JPEG": (lambda voc: cut(jpeg(voc, _first(voc))), "train",
                       ["{jpg}", "incomplete or truncated", "re-extract it"]),
    "corrupt JPEG": (lambda voc: scramble(jpeg(voc, _first(voc))), "train",
                     ["{jpg}", "corrupt", "re-extract it"]),
    # a test image is read when the test set is set up, before anything trains
    "truncated JPEG in the test list": (lambda voc: cut(jpeg(voc, _first(voc, "val")), 0.3),
                                        "val", ["{jpg}", "re-extract it"]),
    "truncated PNG": (lambda voc: cut(png(voc, _first(voc))), "train",
                      ["{png}", "truncated", "re-extract it"]),
    "label out of range in the test list": (
        lambda voc: save_label_png(np.full_like(label_array(voc, _first(voc, "val")), 30),
                                   png(voc, _first(voc, "val"))),
        "val", ["{png}", "[30]", "num_classes=21", "regenerate the label"]),
    "empty id list": (_empty, "train", ["train.txt", "is empty", "one image id per line"]),
    "id listed twice": (_twice, "train",
                        ["train.txt", "2 id(s) more than once", "{id3}", "delete the repeated"]),
    "7 of 8 JPEGs missing": (_no_jpegs, "train",
                             ["7 of 8 ids", "train.txt", "no JPEG file", "{id0}", "{id4}",
                              ", …", "restore the files or remove these ids"]),
}


@pytest.mark.parametrize("row", list(DATA_ROWS))
def test_bad_data_is_named_before_training(row, voc_sample, tmp_path, split):
    voc = tiny_voc_copy(voc_sample, tmp_path / "voc")
    breaks, which, needles = DATA_ROWS[row]
    ids = ids_of(voc, which)
    culprit = {"id": ids[1], "jpg": str(jpeg(voc, ids[1])), "png": str(png(voc, ids[1])),
               **{f"id{k}": i for k, i in enumerate(ids)}}
    breaks(voc)
    before = tree_digest(voc)
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split, cache=tmp_path / "cache"))
    msg = str(info.value)
    for needle in needles:
        assert needle.format(**culprit) in msg, (needle, msg)
    assert tree_digest(voc) == before  # the user's files: none changed, none added


def test_missing_list_names_the_key(voc_sample, tmp_path, split):
    voc = tiny_voc_copy(voc_sample, tmp_path / "voc")
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split, test_set="valid"))
    msg = str(info.value)
    assert "valid.txt does not exist" in msg and "['train', 'val']" in msg
    assert "data.test_set" in msg


def test_all_void_labels_are_left_out_and_counted(voc_sample, tmp_path, split):
    voc = tiny_voc_copy(voc_sample, tmp_path / "voc")
    void = ids_of(voc, "train")[2:4]
    for i in void:
        save_label_png(np.full_like(label_array(voc, i), 255), png(voc, i))
    dm = datamodule(voc, split)
    set_up(dm)
    assert dm.summary()["all_void"] == 2 and dm.summary()["train_list"] == TRAIN
    used = {i for part in ("stage1_train", "stage1_val", "stage2_train", "stage2_val")
            for i in dm.ids(part)}
    assert used and not used & set(void)
    assert f"({TRAIN} images; 2 left out, their label all void: {void[0]}, {void[1]})" \
        in dm.describe()
    # every label void: nothing to train on, said so (not "no image for stage 1")
    for i in ids_of(voc, "train"):
        save_label_png(np.full_like(label_array(voc, i), 255), png(voc, i))
    with pytest.raises(UserInputError) as info:
        set_up(datamodule(voc, split))
    msg = str(info.value)
    assert f"Every label of the {TRAIN} images of 'train' is all void" in msg
    assert ids_of(voc, "train")[0] in msg and "regenerate them" in msg
