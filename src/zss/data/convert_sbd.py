"""Convert SBD's ``cls/*.mat`` labels into VOC palette PNGs, for the paper's training set and
for train_aug.

The SZN paper and its original code train on **SBD train**: the 8,498 ids of SBD's
``train.txt`` with SBD's own ``GTcls.Segmentation`` labels, and evaluate on **seg11valid**
(736 ids of VOC 2011 val, FCN's list, VOC's own PNGs; shipped with zss). Many other projects
(FCN, DeepLab) train on "train_aug" instead: SBD train ∪ val ∪ VOC 2012 train, minus VOC 2012
val -- 10,582 images. This script writes both, under ``VOCdevkit/VOC2012``:

- ``SegmentationClassSBD/<id>.png`` for every SBD train id, from SBD's label (no 255
  boundary band), and ``ImageSets/Segmentation/sbd_train.txt`` (SBD's train list):
  ``data.train_set=sbd_train`` (the paper experiments' default) reads them;
- ``SegmentationClassAug/<id>.png``: an id with a VOC 2012 annotation keeps VOC's label
  (copied from ``SegmentationClass``), the others take SBD's; and
  ``ImageSets/Segmentation/train_aug.txt``: ``data.train_set=train_aug``.

Palette PNGs, values = class index, 255 = void. Existing files are never overwritten (a
differing existing PNG or list is an error); run it once.

Usage: ``python -m zss.data.convert_sbd SBD_ROOT VOC_ROOT`` where ``SBD_ROOT`` holds
``dataset/{cls/, train.txt, val.txt}`` (the benchmark_RELEASE archive) and ``VOC_ROOT`` the
folder with ``VOCdevkit/`` (or ``VOC2012`` itself).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import loadmat

from zss.data.datasets.voc import resolve_voc_root
from zss.data.files import DataError, data_errors_exit, save_label_png

__all__ = ["read_sbd_label", "convert_sbd", "main"]


def read_sbd_label(path: str | os.PathLike) -> np.ndarray:
    """SBD class label of one image.

    Args:
        path: an SBD ``cls/<id>.mat`` file.

    Returns:
        uint8 (H, W) array of class indices 0-20 (SBD has no void label).

    Raises:
        DataError: the file is missing or has no ``GTcls.Segmentation`` field.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"SBD label {path} does not exist; extract SBD's benchmark_RELEASE "
                        "archive and pass the folder holding dataset/cls/.")
    try:
        seg = loadmat(path, squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
    except (KeyError, AttributeError, ValueError) as err:
        raise DataError(f"{path} has no GTcls.Segmentation field ({err}); it is not an SBD "
                        "cls/*.mat label (inst/*.mat files hold instances).") from err
    return np.asarray(seg, dtype=np.uint8)


def _read_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"image list {path} does not exist; check the SBD / VOC roots.")
    return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]


def _write(ids: list[str], out_dir: Path, voc_labels: Path | None, sbd: Path) -> tuple[int, int]:
    """Write ``out_dir/<id>.png`` (VOC's own label when ``voc_labels`` holds one, else SBD's);
    returns (written, kept)."""
    out_dir.mkdir(exist_ok=True)
    written = kept = 0
    for id_ in ids:
        target = out_dir / f"{id_}.png"
        voc_label = voc_labels / f"{id_}.png" if voc_labels is not None else None
        from_voc = voc_label is not None and voc_label.is_file()
        array = (np.asarray(Image.open(voc_label)) if from_voc
                 else read_sbd_label(sbd / "cls" / f"{id_}.mat"))
        if target.exists():
            if not np.array_equal(np.asarray(Image.open(target)), array):
                raise DataError(f"{target} exists and differs from the label converted from "
                                f"{voc_label if from_voc else sbd / 'cls'}; move it away to "
                                "convert again (files are never overwritten).")
            kept += 1
            continue
        if from_voc:
            shutil.copyfile(voc_label, target)
        else:
            save_label_png(array, target)
        written += 1
    return written, kept


def _write_list(path: Path, ids: list[str]) -> None:
    text = "".join(f"{i}\n" for i in ids)
    if path.exists() and path.read_text() != text:
        raise DataError(f"{path} exists with other ids; move it away to write it again.")
    path.write_text(text)


def convert_sbd(sbd_root: str | os.PathLike, voc_root: str | os.PathLike) -> dict[str, int]:
    """Write ``SegmentationClassSBD/`` + ``sbd_train.txt`` and ``SegmentationClassAug/`` +
    ``train_aug.txt`` (see the module docstring).

    Returns:
        counts: ``{"sbd_train": N1, "train_aug": N2, "written": n, "kept": k}`` (ids in each
        list, PNGs written, PNGs already present and identical, over both folders).

    Raises:
        DataError: a missing list or label file, or an existing PNG or list that differs from
            the one this conversion would write (never overwritten: move it away first).
    """
    sbd = Path(sbd_root) / "dataset"
    voc = resolve_voc_root(voc_root)
    lists = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = _read_list(lists / "train.txt"), set(_read_list(lists / "val.txt"))
    sbd_train = _read_list(sbd / "train.txt")
    train_aug = sorted((set(sbd_train + _read_list(sbd / "val.txt")) | set(voc_train))
                       - voc_val)
    w1, k1 = _write(sbd_train, voc / "SegmentationClassSBD", None, sbd)
    w2, k2 = _write(train_aug, voc / "SegmentationClassAug", voc / "SegmentationClass", sbd)
    _write_list(lists / "sbd_train.txt", sbd_train)
    _write_list(lists / "train_aug.txt", train_aug)
    return {"sbd_train": len(sbd_train), "train_aug": len(train_aug), "written": w1 + w2,
            "kept": k1 + k2}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m zss.data.convert_sbd SBD_ROOT VOC_ROOT``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sbd_root", help="folder holding SBD's dataset/cls/")
    parser.add_argument("voc_root", help="folder holding VOCdevkit/ (or VOC2012 itself)")
    args = parser.parse_args(argv)
    with data_errors_exit(parser):
        counts = convert_sbd(args.sbd_root, args.voc_root)
    print(f"sbd_train: {counts['sbd_train']} ids, train_aug: {counts['train_aug']} ids; "
          f"{counts['written']} PNGs written, {counts['kept']} already there")


if __name__ == "__main__":
    main()
