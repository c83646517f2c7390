"""SBD .mat labels -> SegmentationClassSBD + sbd_train.txt (the paper's training set) and
SegmentationClassAug + train_aug.txt (zss.data.convert_sbd; its command line in-process)."""

import numpy as np
import pytest
from PIL import Image
from scipy.io import savemat

from zss.data import DataError, VOCSegmentation, voc_colormap
from zss.data.convert_sbd import convert_sbd, main, read_sbd_label


def save_palette(array, path):
    img = Image.fromarray(array, mode="P")
    img.putpalette(voc_colormap().ravel().tolist())
    img.save(path)


@pytest.fixture()
def trees(tmp_path):
    rng = np.random.default_rng(0)
    sbd = tmp_path / "sbd"
    (sbd / "dataset" / "cls").mkdir(parents=True)
    voc = tmp_path / "voc" / "VOCdevkit" / "VOC2012"
    for d in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / d).mkdir(parents=True)
    labels = {}
    for id_ in ("a", "b", "c", "v"):
        labels[id_] = rng.integers(0, 21, (6, 8)).astype(np.uint8)
        savemat(sbd / "dataset" / "cls" / f"{id_}.mat",
                {"GTcls": {"Segmentation": labels[id_], "CategoriesPresent": np.unique(labels[id_])}})
        Image.fromarray(np.zeros((6, 8, 3), np.uint8)).save(voc / "JPEGImages" / f"{id_}.jpg")
    (sbd / "dataset" / "train.txt").write_text("a\nb\n")
    (sbd / "dataset" / "val.txt").write_text("c\nv\n")
    # VOC's own annotation of "c" (with a void band) wins over SBD's; "v" is VOC val
    voc_c = labels["c"].copy()
    voc_c[0] = 255
    save_palette(voc_c, voc / "SegmentationClass" / "c.png")
    (voc / "ImageSets/Segmentation/train.txt").write_text("c\n")
    (voc / "ImageSets/Segmentation/val.txt").write_text("v\n")
    return sbd, voc, labels, voc_c


def test_convert_writes_train_aug(trees, capsys):
    sbd, voc, labels, voc_c = trees
    np.testing.assert_array_equal(read_sbd_label(sbd / "dataset/cls/a.mat"), labels["a"])
    assert convert_sbd(sbd, voc.parents[1]) == {"sbd_train": 2, "train_aug": 3, "written": 5,
                                                "kept": 0}
    assert (voc / "ImageSets/Segmentation/train_aug.txt").read_text() == "a\nb\nc\n"
    assert (voc / "ImageSets/Segmentation/sbd_train.txt").read_text() == "a\nb\n"
    sbd_train = VOCSegmentation(voc.parents[1], "sbd_train")  # SBD's own labels
    assert sbd_train.ids == ["a", "b"] and sbd_train.label_dir.name == "SegmentationClassSBD"
    np.testing.assert_array_equal(sbd_train[0]["label"].numpy(), labels["a"])
    out = voc / "SegmentationClassAug"
    assert Image.open(out / "a.png").mode == "P"
    np.testing.assert_array_equal(np.asarray(Image.open(out / "a.png")), labels["a"])
    np.testing.assert_array_equal(np.asarray(Image.open(out / "c.png")), voc_c)
    assert not (out / "v.png").exists()  # VOC val never enters training
    ds = VOCSegmentation(voc.parents[1], "train_aug")  # its label folder by default
    assert ds.ids == ["a", "b", "c"] and ds.label_dir.name == "SegmentationClassAug"
    np.testing.assert_array_equal(ds[1]["label"].numpy(), labels["b"])
    # a second run keeps what is there
    main([str(sbd), str(voc.parents[1])])
    assert "0 PNGs written, 5 already there" in capsys.readouterr().out


def test_existing_files_are_never_overwritten(trees):
    sbd, voc, _, _ = trees
    (voc / "SegmentationClassAug").mkdir()
    save_palette(np.zeros((6, 8), np.uint8), voc / "SegmentationClassAug/a.png")
    with pytest.raises(DataError, match=r"SegmentationClassAug/a\.png exists and differs"):
        convert_sbd(sbd, voc)
    assert not np.asarray(Image.open(voc / "SegmentationClassAug/a.png")).any()


@pytest.mark.parametrize("name", ["sbd_train", "train_aug"])
def test_an_existing_list_with_other_ids_is_never_overwritten(trees, name):
    sbd, voc, _, _ = trees
    existing = voc / f"ImageSets/Segmentation/{name}.txt"
    existing.write_text("a\nzzz\n")
    with pytest.raises(DataError, match=rf"{name}\.txt exists with other ids"):
        convert_sbd(sbd, voc)
    assert existing.read_text() == "a\nzzz\n"


def test_the_command_line_exits_2_on_bad_input(trees, tmp_path, capsys):
    _, voc, _, _ = trees
    with pytest.raises(SystemExit) as info:  # what `python -m zss.data.convert_sbd` runs
        main([str(tmp_path / "nowhere"), str(voc.parents[1])])
    assert info.value.code == 2
    out = capsys.readouterr()
    assert out.err.startswith("zss: error: image list ") and "does not exist" in out.err
    assert "nowhere" in out.err and "Traceback" not in out.err and not out.out
    assert not (voc / "SegmentationClassSBD").exists()  # nothing written
    with pytest.raises(SystemExit) as info:  # a missing argument: argparse's usage, status 2
        main([str(tmp_path)])
    assert info.value.code == 2 and "usage:" in capsys.readouterr().err


def test_missing_mat_is_named(trees):
    sbd, voc, _, _ = trees
    (sbd / "dataset/cls/b.mat").unlink()
    with pytest.raises(DataError, match=r"cls/b\.mat does not exist"):
        convert_sbd(sbd, voc)
