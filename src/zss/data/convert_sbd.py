"""Convert SBD's ``cls/*.mat`` labels into VOC palette PNGs: the paper's training set.

The SZN paper (like FCN and DeepLab) trains on "train_aug": the union of SBD's train and val
images and VOC 2012 train, minus VOC 2012 val -- 10,582 images (the paper cites SBD's 8,498
train images as the main source). This script writes, under ``VOCdevkit/VOC2012``:

- ``SegmentationClassAug/<id>.png``: palette PNGs, values = class index, 255 = void. An id
  with a VOC 2012 annotation keeps VOC's label (copied from ``SegmentationClass``); the others
  take SBD's ``GTcls.Segmentation`` (no 255 boundary band).
- ``ImageSets/Segmentation/train_aug.txt``: the ids, sorted.

Existing files are never overwritten (a differing existing PNG is an error); run it once,
then train with ``data.train_set=train_aug data.dataset.label_dir=SegmentationClassAug``.

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

from zss.data.files import DataError, voc_colormap
from zss.data.voc import resolve_voc_root

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


def _save_png(array: np.ndarray, path: Path) -> None:
    img = Image.fromarray(array, mode="P")
    img.putpalette(voc_colormap().ravel().tolist())
    tmp = path.with_suffix(f".tmp{os.getpid()}.png")
    img.save(tmp)
    os.replace(tmp, path)


def convert_sbd(sbd_root: str | os.PathLike, voc_root: str | os.PathLike) -> dict[str, int]:
    """Write ``SegmentationClassAug/`` and ``train_aug.txt`` (see the module docstring).

    Returns:
        counts: ``{"train_aug": N, "written": n, "kept": k}`` (ids in the list, PNGs written,
        PNGs already present and identical).

    Raises:
        DataError: a missing list or label file, or an existing PNG that differs from the one
            this conversion would write (never overwritten: move it away first).
    """
    sbd = Path(sbd_root) / "dataset"
    voc = resolve_voc_root(voc_root)
    lists = voc / "ImageSets" / "Segmentation"
    voc_train, voc_val = _read_list(lists / "train.txt"), set(_read_list(lists / "val.txt"))
    sbd_ids = _read_list(sbd / "train.txt") + _read_list(sbd / "val.txt")
    ids = sorted((set(sbd_ids) | set(voc_train)) - voc_val)
    out_dir = voc / "SegmentationClassAug"
    out_dir.mkdir(exist_ok=True)
    written = kept = 0
    for id_ in ids:
        target = out_dir / f"{id_}.png"
        voc_label = voc / "SegmentationClass" / f"{id_}.png"
        if voc_label.is_file():
            array = np.asarray(Image.open(voc_label))
        else:
            array = read_sbd_label(sbd / "cls" / f"{id_}.mat")
        if target.exists():
            if not np.array_equal(np.asarray(Image.open(target)), array):
                raise DataError(f"{target} exists and differs from the label converted from "
                                f"{voc_label if voc_label.is_file() else sbd / 'cls'}; move "
                                "it away to convert again (files are never overwritten).")
            kept += 1
            continue
        if voc_label.is_file():
            shutil.copyfile(voc_label, target)
        else:
            _save_png(array, target)
        written += 1
    list_file = lists / "train_aug.txt"
    text = "".join(f"{i}\n" for i in ids)
    if list_file.exists() and list_file.read_text() != text:
        raise DataError(f"{list_file} exists with other ids; move it away to write it again.")
    list_file.write_text(text)
    return {"train_aug": len(ids), "written": written, "kept": kept}


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m zss.data.convert_sbd SBD_ROOT VOC_ROOT``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("sbd_root", help="folder holding SBD's dataset/cls/")
    parser.add_argument("voc_root", help="folder holding VOCdevkit/ (or VOC2012 itself)")
    args = parser.parse_args(argv)
    try:
        counts = convert_sbd(args.sbd_root, args.voc_root)
    except DataError as err:
        parser.exit(2, f"zss: error: {err}\n")
    print(f"train_aug: {counts['train_aug']} ids; {counts['written']} PNGs written, "
          f"{counts['kept']} already there")


if __name__ == "__main__":
    main()
