"""Reading single files of segmentation datasets: RGB images, label PNGs of class indices,
and the checks every dataset shares (values, sizes). Errors are :class:`DataError`, whose
message names the file and says how to fix it."""

from __future__ import annotations

import argparse
import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_image

from zss.data.splits import IGNORE_INDEX
from zss.runtime.errors import UserInputError

__all__ = ["DataError", "check_label_values", "read_image", "read_label", "read_label_array",
           "save_label_png", "size_error", "voc_colormap"]

_LABEL_MODES = ("P", "L")
_CPP_PREFIX = re.compile(r"^\w+, \S+\.cpp:\d+, ")


class DataError(UserInputError, ValueError):
    """Input data that cannot be used: missing files, wrong label format or values, image
    and label of different sizes. The message names the file and says how to fix it."""


@contextlib.contextmanager
def data_errors_exit(parser: argparse.ArgumentParser) -> Iterator[None]:
    """For a converter's command line: a :class:`DataError` in the body ends the program
    with ``zss: error: <message>`` and exit status 2, as ``python -m zss.run`` does."""
    try:
        yield
    except DataError as err:
        parser.exit(2, f"zss: error: {err}\n")


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
        # "decode_jpeg, /…/decode_jpeg.cpp:171, Image is incomplete or truncated": the reason
        reason = _CPP_PREFIX.sub("", str(err)).strip() or type(err).__name__
        raise DataError(f"Cannot decode image {path} ({reason}); the file is cut short, "
                        "corrupt or not an image: re-extract it from the dataset archive."
                        ) from err


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
    array = read_label_array(Path(path))
    if num_classes is not None:
        check_label_values(np.bincount(array.ravel(), minlength=256), Path(path), num_classes)
    return torch.from_numpy(array.astype(np.int64))


def read_label_array(path: Path) -> np.ndarray:
    """The raw pixel values of a palette ('P') or greyscale ('L') label PNG.

    Returns:
        uint8 (H, W) array.

    Raises:
        DataError: a missing or unreadable file, an RGB(A) colour mask (with how to convert
            it) or another image mode.
    """
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
            "(zss.data.datasets.voc.voc_colormap(): row i is the colour of class i, row 255 = void "
            "(224, 224, 192)) and save them as 'P' or 'L' PNGs."
        )
    raise DataError(f"Label {path} has image mode '{mode}'; expected a palette ('P') or "
                    "greyscale ('L') PNG whose pixel values are class indices (255 = void). "
                    "Convert it to 8-bit index values.")


def check_label_values(counts: np.ndarray, path: Path, num_classes: int) -> None:
    """Check a label's value histogram: every value < ``num_classes`` or 255.

    Args:
        counts: (256,) pixel counts per value (``np.bincount(label, minlength=256)``).
        path: the label file, named in the message.
        num_classes: C.

    Raises:
        DataError: naming the bad values, their pixel count and the valid range.
    """
    bad = [v for v in np.flatnonzero(counts) if v >= num_classes and v != IGNORE_INDEX]
    if bad:
        raise DataError(
            f"Label {path} contains value(s) {[int(v) for v in bad]} (e.g. {int(counts[bad[0]])} "
            f"pixels of {int(bad[0])}), but the dataset has num_classes={num_classes} (valid "
            f"values 0–{num_classes - 1}, and {IGNORE_INDEX} = void). Fix or regenerate the "
            "label, or set num_classes to match the labels."
        )


def size_error(id_: str, image_hw: tuple[int, int], label_hw: tuple[int, int],
               image_path: Path, label_path: Path) -> DataError:
    """The error for an image and a label of different sizes (both files named)."""
    return DataError(
        f"Image and label of id '{id_}' differ in size: image {image_path} is "
        f"{image_hw[0]}×{image_hw[1]} (H×W), label {label_path} is {label_hw[0]}×{label_hw[1]}. "
        "The label must be drawn on the image it belongs to: restore the original files."
    )


def save_label_png(array: np.ndarray, path: Path) -> None:
    """Write a label map as a palette ('P') PNG coloured with the VOC colour map, atomically
    (a temporary file renamed into place).

    Args:
        array: uint8 (H, W) class indices, 255 = void.
        path: the ``.png`` to write.
    """
    img = Image.fromarray(np.asarray(array, dtype=np.uint8), mode="P")
    img.putpalette(voc_colormap().ravel().tolist())
    tmp = path.with_suffix(f".tmp{os.getpid()}.png")
    img.save(tmp)
    os.replace(tmp, path)
