"""PASCAL VOC 2012 segmentation dataset (docs/data.md, "PASCAL VOC 2012").

Layout on disk (the official ``VOCtrainval`` tar, or the SBD-augmented ``train_aug`` set
converted to the same layout)::

    VOCdevkit/VOC2012/
        JPEGImages/<id>.jpg
        SegmentationClass/<id>.png         palette ('P') PNGs, values = class indices
        ImageSets/Segmentation/<set>.txt   one id per line

Labels are read as ``int64`` with values 0 … ``num_classes - 1`` and 255 = void. An
RGB-coloured mask, a value outside that range, a missing file or an image/label size
mismatch raises :class:`DataError` with a message that names the file and how to fix it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from zss.data.datasets.base import ListSegmentation, Transform, read_id_list
from zss.data.files import DataError, read_image, read_label, read_label_array, voc_colormap
from zss.data.splits import IGNORE_INDEX, VOC20_CLASSES, VOC_CLASSES

__all__ = ["DataError", "LABEL_DIRS", "PACKAGED_LISTS", "VOCSegmentation", "VOC_TASKS",
           "read_image", "read_label", "resolve_voc_root", "voc_colormap"]

VOC_TASKS = ("voc", "voc20")
"""The class sets a VOC run may name (``data.dataset.task``): ``voc`` (21 classes,
background = 0) or ``voc20`` (the 20 object classes, background void: the SPNet protocol)."""
_TO_VOC20 = np.arange(256, dtype=np.uint8)
_TO_VOC20[0] = IGNORE_INDEX  # background -> void
_TO_VOC20[1:21] -= 1         # aeroplane ... tvmonitor -> 0 ... 19; other values kept (errors)

PACKAGED_LISTS = Path(__file__).parents[1] / "lists"
"""The paper's id lists shipped with zss: ``sbd_train.txt`` (8,498 SBD train ids, the
original SZN training list) and ``seg11valid.txt`` (736 ids, FCN's and the original's
evaluation list); used when ``ImageSets/Segmentation`` has no list of that name."""
LABEL_DIRS = {"sbd_train": "SegmentationClassSBD", "train_aug": "SegmentationClassAug"}
"""The label folder of an image set when none is given (``SegmentationClass`` otherwise):
both are written by ``python -m zss.data.convert_sbd``."""


def resolve_voc_root(root: str | os.PathLike, year: str = "VOC2012") -> Path:
    """The ``VOC2012`` folder for ``root``: the folder holding ``VOCdevkit``, ``VOCdevkit``
    itself, or ``VOC2012`` itself.

    Raises:
        DataError: ``root`` does not exist or holds none of these layouts.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"Dataset root {root} does not exist; set the data root (e.g. "
                        "paths.data_dir=/path/to/folder-with-VOCdevkit) to the folder holding "
                        f"VOCdevkit/{year}.")
    for cand in (root / "VOCdevkit" / year, root / year, root):
        if (cand / "ImageSets").is_dir() or (cand / "JPEGImages").is_dir():
            return cand
    raise DataError(f"Dataset root {root} holds neither VOCdevkit/{year}/ nor {year}/ nor "
                    "JPEGImages/ and ImageSets/; point the data root at the folder that "
                    f"contains VOCdevkit (or at {year} itself).")


def _missing_hint(list_file: Path, image_set: str, label_dir: str) -> str:
    if list_file.parent == PACKAGED_LISTS:
        return (f"This is the paper's {image_set} list, shipped with zss (the VOC experiments "
                "default to data.train_set=sbd_train data.test_set=seg11valid): point "
                "paths.data_dir at a full VOC2012 copy with SBD converted by python -m "
                "zss.data.convert_sbd SBD_ROOT VOC_ROOT, or choose the lists your copy has, "
                "e.g. data.train_set=train data.test_set=val.")
    if label_dir in LABEL_DIRS.values():
        return (f"The VOC2012 trainval archive holds the JPEGs; {label_dir} is written by "
                "python -m zss.data.convert_sbd SBD_ROOT VOC_ROOT. Restore the files or remove "
                "these ids from the list.")
    return ("The VOC2012 trainval archive holds them: restore the files or remove these ids "
            "from the list.")


class VOCSegmentation(ListSegmentation):
    """PASCAL VOC 2012 semantic segmentation (a label is a palette PNG of class indices).

    Args:
        root: folder that contains ``VOCdevkit/VOC2012``, or ``VOC2012`` itself.
        image_set: name of the list ``ImageSets/Segmentation/<image_set>.txt``; for
            ``sbd_train`` and ``seg11valid`` the lists shipped with zss
            (:data:`PACKAGED_LISTS`) when that folder has none.
        transform: optional callable ``(image uint8 (3, H, W), label uint8 (H, W)) ->
            (image, label)`` (:class:`zss.data.ZSSDataModule` applies its own and wants none).
        num_classes: number of classes; label values must be < num_classes or 255 (21: the
            VOC class list, class set ``"voc"``).
        cache_dir: optional folder for the :meth:`class_presence` cache (json).
        label_dir: folder of the label PNGs under VOC2012; None (default) picks it from the
            image set (:data:`LABEL_DIRS`): ``SegmentationClassSBD`` for ``sbd_train`` (SBD's
            labels), ``SegmentationClassAug`` for ``train_aug`` (both written by
            ``python -m zss.data.convert_sbd``), else ``SegmentationClass`` (VOC's own).
        task: the class set (:data:`VOC_TASKS`): ``"voc"`` (21 classes, the PNG values) or
            ``"voc20"`` (the 20 object classes, SPNet's protocol: PNG value ``v`` in 1-20
            becomes ``v - 1``, background 0 becomes void 255).

    Items are ``dict(image, label, id)``: without a transform, image is uint8 (3, H, W) RGB
    and label uint8 (H, W); with one, whatever it returns.

    Raises:
        DataError: a missing root or list (the message lists the lists that exist), an id
            listed twice, ids whose JPEG or PNG is missing (checked for every id at
            construction) or an unknown ``task``; reading an item raises it for a bad label or an image/label size
            mismatch.
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 transform: Transform | None = None, num_classes: int = 21,
                 cache_dir: str | os.PathLike | None = None,
                 label_dir: str | None = None, task: str = "voc") -> None:
        if task not in VOC_TASKS:
            raise DataError(f"data.dataset.task={task!r} is no VOC class set; use one of "
                            f"{list(VOC_TASKS)} (voc20: background void, the SPNet protocol).")
        self.task = task
        self.root = resolve_voc_root(root)
        label_dir = label_dir or LABEL_DIRS.get(image_set, "SegmentationClass")
        self.label_dir = self.root / label_dir
        list_file = self.root / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        if not list_file.is_file() and (PACKAGED_LISTS / f"{image_set}.txt").is_file():
            list_file = PACKAGED_LISTS / f"{image_set}.txt"
        seg_dir = list_file.parent
        sets = sorted(p.stem for p in seg_dir.glob("*.txt")) if seg_dir.is_dir() else []
        hint = f" (the lists in {seg_dir} are {sets})" if sets else f" ({seg_dir} holds no lists)"
        names = (VOC_CLASSES if num_classes == 21
                 else tuple(f"class{i}" for i in range(int(num_classes))))
        class_set = "voc" if num_classes == 21 else f"voc{int(num_classes)}"
        if task == "voc20":
            names, class_set = VOC20_CLASSES, "voc20"
        super().__init__(read_id_list(list_file, hint), list_file, image_set,
                         self.root / "JPEGImages", names, class_set,
                         transform=transform, cache_dir=cache_dir,
                         missing_hint=_missing_hint(list_file, image_set, label_dir))

    def label_path(self, id_: str) -> Path:
        return self.label_dir / f"{id_}.png"

    def read_label_array(self, id_: str) -> np.ndarray:
        array = read_label_array(self.label_path(id_))
        return _TO_VOC20[array] if self.task == "voc20" else array

    def cache_params(self) -> list:
        return [str(self.label_dir), self.task]

    def __repr__(self) -> str:
        return (f"VOCSegmentation(root={str(self.root)!r}, image_set={self.image_set!r}, "
                f"n={len(self)}, num_classes={self.num_classes})")
