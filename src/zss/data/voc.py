"""PASCAL VOC 2012 segmentation dataset (DESIGN §4).

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

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image

from zss.data.splits import IGNORE_INDEX
from zss.errors import UserInputError

__all__ = ["DataError", "VOCSegmentation", "read_image", "read_label", "resolve_voc_root",
           "voc_colormap"]

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]

_LABEL_MODES = ("P", "L")
_MAX_NAMED = 5


class DataError(UserInputError, ValueError):
    """Input data that cannot be used: missing files, wrong label format or values, image
    and label of different sizes. The message names the file and says how to fix it."""


def voc_colormap(n: int = 256) -> np.ndarray:
    """The PASCAL VOC colour map (the devkit's ``labelcolormap.m``): row i = RGB colour of
    label value i, built by interleaving the bits of i. Row 255 (void) is (224, 224, 192).

    Returns:
        uint8 array of shape (n, 3).
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


# ---- reading single files ---------------------------------------------------------------
def read_image(path: str | os.PathLike) -> torch.Tensor:
    """Read a JPEG/PNG image as RGB.

    Returns:
        uint8 tensor of shape (3, H, W), RGB, values 0–255.

    Raises:
        DataError: the file is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"Image file {path} does not exist; restore it or remove its id "
                        "from the image-set list.")
    try:
        return decode_image(str(path), mode=ImageReadMode.RGB)
    except Exception as err:  # torchvision raises RuntimeError with varying texts
        raise DataError(f"Cannot decode image {path} ({err}); the file is corrupt or not an "
                        "image: re-extract it from the dataset archive.") from err


def read_label(path: str | os.PathLike, num_classes: int | None = None) -> torch.Tensor:
    """Read a segmentation label PNG whose pixel values are class indices.

    VOC's ``SegmentationClass`` PNGs are palette ('P') images: the stored pixel values are
    the class indices and the palette only colours them. Greyscale ('L') index PNGs are
    accepted as well.

    Args:
        path: the PNG file.
        num_classes: when given, every value must be < ``num_classes`` or 255 (void).

    Returns:
        int64 tensor of shape (H, W), values 0 … num_classes - 1 and 255 (void).

    Raises:
        DataError: the file is missing or unreadable, is an RGB colour mask or has another
            unsupported mode, or holds a value that is neither a class index nor 255.
    """
    array = _read_label_array(Path(path))
    if num_classes is not None:
        _check_values(np.bincount(array.ravel(), minlength=256), Path(path), num_classes)
    return torch.from_numpy(array.astype(np.int64))


def _read_label_array(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"Label file {path} does not exist; restore it or remove its id "
                        "from the image-set list.")
    try:
        with Image.open(path) as img:
            mode = img.mode
            if mode in _LABEL_MODES:
                return np.array(img, dtype=np.uint8)
    except Exception as err:
        raise DataError(f"Cannot read label {path} ({err}); the file is corrupt or not a PNG: "
                        "re-extract it from the dataset archive.") from err
    if mode in ("RGB", "RGBA"):
        raise DataError(
            f"Label {path} is an {mode} colour mask, not an index image. VOC's "
            "SegmentationClass PNGs are palette ('P') images whose pixel values are the class "
            "indices (0–20, 255 = void); a colour-rendered copy loses that. Use the original "
            "PNGs, or convert colours to indices with the VOC colour map "
            "(zss.data.voc.voc_colormap(): row i is the colour of class i, row 255 = void "
            "(224, 224, 192)) and save them as 'P' or 'L' PNGs."
        )
    raise DataError(f"Label {path} has image mode '{mode}'; expected a palette ('P') or "
                    "greyscale ('L') PNG whose pixel values are class indices (255 = void). "
                    "Convert it to 8-bit index values.")


def _check_values(counts: np.ndarray, path: Path, num_classes: int) -> None:
    bad = [v for v in np.flatnonzero(counts) if v >= num_classes and v != IGNORE_INDEX]
    if bad:
        raise DataError(
            f"Label {path} contains value(s) {[int(v) for v in bad]} (e.g. {int(counts[bad[0]])} "
            f"pixels of {int(bad[0])}), but the dataset has num_classes={num_classes} (valid "
            f"values 0–{num_classes - 1}, and {IGNORE_INDEX} = void). Fix or regenerate the "
            "label, or set num_classes to match the labels."
        )


def _size_error(id_: str, image_hw: tuple[int, int], label_hw: tuple[int, int],
                image_path: Path, label_path: Path) -> DataError:
    return DataError(
        f"Image and label of id '{id_}' differ in size: image {image_path} is "
        f"{image_hw[0]}×{image_hw[1]} (H×W), label {label_path} is {label_hw[0]}×{label_hw[1]}. "
        "The label must be drawn on the image it belongs to: restore the original files."
    )


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


# ---- the dataset ------------------------------------------------------------------------
class VOCSegmentation(Dataset):
    """PASCAL VOC 2012 semantic segmentation.

    Args:
        root: folder that contains ``VOCdevkit/VOC2012``, or ``VOC2012`` itself.
        image_set: name of the list ``ImageSets/Segmentation/<image_set>.txt``.
        transform: optional callable ``(image uint8 (3, H, W), label int64 (H, W)) ->
            (image float32 (3, h, w), label int64 (h, w))``, e.g.
            :class:`zss.data.transforms.TrainTransform`.
        num_classes: number of classes; label values must be < num_classes or 255.
        cache_dir: optional folder for the :meth:`class_presence` cache (json).
        label_dir: folder of the label PNGs under VOC2012: ``SegmentationClass`` (VOC's own)
            or ``SegmentationClassAug`` (SBD's train_aug labels, written by
            ``python -m zss.data.convert_sbd``).

    Items are ``dict(image, label, id)``: without a transform, image is uint8 (3, H, W) RGB
    and label int64 (H, W); with one, whatever it returns.

    Raises:
        DataError: a missing root or list (the message lists the lists that exist), or ids
            in the list whose JPEG or PNG is missing (checked for every id at construction);
            reading an item raises it for a bad label or an image/label size mismatch.
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 transform: Transform | None = None, num_classes: int = 21,
                 cache_dir: str | os.PathLike | None = None,
                 label_dir: str = "SegmentationClass") -> None:
        self.root = resolve_voc_root(root)
        self.image_set = image_set
        self.transform = transform
        self.num_classes = int(num_classes)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.image_dir = self.root / "JPEGImages"
        self.label_dir = self.root / label_dir
        self.list_file = self.root / "ImageSets" / "Segmentation" / f"{image_set}.txt"
        self.ids = self._read_ids()
        self._check_files()
        self._presence: list[frozenset[int]] | None = None

    # -- construction checks --
    def _read_ids(self) -> list[str]:
        if not self.list_file.is_file():
            seg_dir = self.list_file.parent
            sets = sorted(p.stem for p in seg_dir.glob("*.txt")) if seg_dir.is_dir() else []
            found = (f"the lists in {seg_dir} are {sets}" if sets
                     else f"{seg_dir} holds no .txt lists")
            raise DataError(f"Image-set list {self.list_file} does not exist ({found}); pass "
                            "one of those as image_set, or write the list (one image id per "
                            "line).")
        with open(self.list_file) as f:
            ids = [line.split()[0] for line in f if line.strip()]
        if not ids:
            raise DataError(f"Image-set list {self.list_file} is empty; it must list one "
                            "image id per line.")
        return ids

    def _check_files(self) -> None:
        for kind, folder, ext in (("JPEG", self.image_dir, ".jpg"),
                                  ("label PNG", self.label_dir, ".png")):
            missing = [i for i in self.ids if not os.path.exists(folder / f"{i}{ext}")]
            if missing:
                shown = ", ".join(missing[:_MAX_NAMED]) + (", …" if len(missing) > _MAX_NAMED
                                                           else "")
                raise DataError(
                    f"{len(missing)} of {len(self.ids)} ids in {self.list_file} have no "
                    f"{kind} in {folder} (e.g. {folder / (missing[0] + ext)}; missing ids: "
                    f"{shown}). Restore the files (the VOC2012 trainval archive, plus SBD "
                    "for train_aug ids) or remove these ids from the list."
                )

    # -- paths --
    def image_path(self, id_: str) -> Path:
        return self.image_dir / f"{id_}.jpg"

    def label_path(self, id_: str) -> Path:
        return self.label_dir / f"{id_}.png"

    # -- items --
    def __len__(self) -> int:
        return len(self.ids)

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The untransformed pair: image uint8 (3, H, W) RGB, label int64 (H, W).

        Raises:
            DataError: a bad label (see :func:`read_label`) or image/label size mismatch.
        """
        id_ = self.ids[index]
        image = read_image(self.image_path(id_))
        label = read_label(self.label_path(id_), self.num_classes)
        if tuple(image.shape[-2:]) != tuple(label.shape):
            raise _size_error(id_, tuple(image.shape[-2:]), tuple(label.shape),
                              self.image_path(id_), self.label_path(id_))
        return image, label

    def __getitem__(self, index: int) -> dict:
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return {"image": image, "label": label, "id": self.ids[index]}

    # -- class presence --
    def class_presence(self) -> list[frozenset[int]]:
        """The set of label values (void 255 excluded) of every image, in ``ids`` order.

        Reads every label once (and every image header for the size check); with
        ``cache_dir`` the result is cached as json, keyed by root, image set, num_classes and
        the list's and labels' modification times and sizes.

        Raises:
            DataError: a bad label or an image/label size mismatch (as for items).
        """
        if self._presence is not None:
            return self._presence
        key = self._cache_key() if self.cache_dir is not None else None
        cache = (self.cache_dir / f"voc_presence_{self.image_set}_{key[:16]}.json"
                 if self.cache_dir is not None and key is not None else None)
        presence = None
        if cache is not None and cache.is_file():
            try:
                data = json.loads(cache.read_text())
                if data.get("key") == key and data.get("ids") == self.ids:
                    presence = [frozenset(int(v) for v in p) for p in data["presence"]]
            except (OSError, ValueError, KeyError, TypeError):
                presence = None  # unreadable cache: recompute
        if presence is None:
            presence = [self._scan(i) for i in range(len(self.ids))]
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_suffix(f".tmp{os.getpid()}")
                tmp.write_text(json.dumps({"key": key, "root": str(self.root),
                                           "image_set": self.image_set, "ids": self.ids,
                                           "presence": [sorted(p) for p in presence]}))
                os.replace(tmp, cache)
        self._presence = presence
        return presence

    def _scan(self, index: int) -> frozenset[int]:
        id_ = self.ids[index]
        label_path = self.label_path(id_)
        array = _read_label_array(label_path)
        counts = np.bincount(array.ravel(), minlength=256)
        _check_values(counts, label_path, self.num_classes)
        try:
            with Image.open(self.image_path(id_)) as img:
                width, height = img.size  # header only, no decoding
        except Exception as err:
            raise DataError(f"Cannot read image {self.image_path(id_)} ({err}); re-extract it "
                            "from the dataset archive.") from err
        if (height, width) != array.shape:
            raise _size_error(id_, (height, width), array.shape, self.image_path(id_),
                              label_path)
        return frozenset(int(v) for v in np.flatnonzero(counts) if v != IGNORE_INDEX)

    def _cache_key(self) -> str:
        def stamp(p: Path) -> list:
            st = p.stat()
            return [st.st_mtime_ns, st.st_size]

        payload = [str(self.root.resolve()), self.image_set, self.num_classes,
                   stamp(self.list_file)]
        payload += [[i, *stamp(self.label_path(i)), *stamp(self.image_path(i))]
                    for i in self.ids]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def __repr__(self) -> str:
        return (f"VOCSegmentation(root={str(self.root)!r}, image_set={self.image_set!r}, "
                f"n={len(self)}, num_classes={self.num_classes})")
