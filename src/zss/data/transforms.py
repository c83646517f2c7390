"""Joint image/label transforms (the batch's padding and its conversion on the device:
:mod:`zss.data.batches`).

Every transform is a callable ``(image, label) -> (image, label, box)`` with image uint8
(3, H, W) RGB and label integer (H, W) in, and image uint8 (3, h, w), label uint8 (h, w) and
``box`` int64 (4,) out (255 = void). Geometry is applied to all three with the same
parameters (``tv_tensors.Image`` / ``Mask`` / ``BoundingBoxes`` through
``torchvision.transforms.v2``); images are resized bilinearly with antialiasing, labels by
nearest neighbour, so labels never get new values. ``box`` = (x1, y1, x2, y2), ends
exclusive, is where the output holds image pixels; outside it the transform padded (a crop
larger than the scaled image).

Images stay uint8 through the loader (a quarter of float32's bytes to make, copy and send
between processes) and labels uint8 (an eighth of int64's). The normalisation, which depends
on the backbone weights (torchvision RGB mean/std vs Caffe BGR mean, docs/method.md), runs on the
device after the batch transfer: :func:`zss.data.batches.normalize_batch`, called by the
stage modules' ``on_after_batch_transfer``. Padded image pixels are 0 in the network's input space (the mean
colour for mean-subtracted inputs), padded label pixels 255, as when the images were
normalised before padding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from zss.data.splits import IGNORE_INDEX

__all__ = ["EvalTransform", "TrainTransform", "resize_label", "resize_short_side"]

_FILL = {tv_tensors.Image: 0, tv_tensors.Mask: IGNORE_INDEX}


def _check_pair(image: torch.Tensor, label: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3 or image.dtype != torch.uint8:
        raise ValueError(f"transform expects a uint8 image of shape (3, H, W), got "
                         f"{image.dtype} {tuple(image.shape)}.")
    if label.ndim != 2 or label.shape != image.shape[-2:]:
        raise ValueError(f"transform expects a label of shape (H, W) = "
                         f"{tuple(image.shape[-2:])}, got {tuple(label.shape)}.")


def _whole_box(label: torch.Tensor) -> torch.Tensor:
    h, w = label.shape[-2:]
    return torch.tensor([0, 0, w, h], dtype=torch.int64)


def resize_short_side(image: torch.Tensor, label: torch.Tensor,
                      max_short_side: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Downscale so that the shorter side is at most ``max_short_side`` (no upscaling).

    Image: bilinear with antialiasing; label: :func:`resize_label` (pixel-centre-aligned
    nearest neighbour, so labels stay aligned with the bilinear image).

    Args:
        image: (3, H, W) tensor (any dtype); label: int64 (H, W).
        max_short_side: the bound in pixels, or None for no resizing.

    Returns:
        (image, label) with the same dtypes.
    """
    if max_short_side is None:
        return image, label
    h, w = label.shape[-2:]
    short = min(h, w)
    if short <= max_short_side:
        return image, label
    ratio = max_short_side / short
    size = [max(1, round(h * ratio)), max(1, round(w * ratio))]
    return _resize(image, label, size)


def resize_label(label: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize a label map by pixel-centre-aligned nearest neighbour.

    Output pixel ``i`` takes input pixel ``floor((i + 0.5) * in / out)`` along each axis
    (``F.interpolate(mode="nearest-exact")``, the label counterpart of a bilinear,
    ``align_corners=False`` image resize), so labels stay aligned with the resized image
    and never get new values. Called explicitly rather than through torchvision's
    ``resize_mask``, which in older torchvision releases ignored the requested mode and used
    plain ``NEAREST`` (``floor(i * in / out)``: half an input pixel off the image).

    Args:
        label: integer (H, W) with values 0-255 (255 = void).
        size: (h, w) in pixels, each >= 1.

    Returns:
        tensor (h, w) of ``label``'s dtype.
    """
    out = torch.nn.functional.interpolate(label[None, None].to(torch.float32),
                                          size=[int(s) for s in size], mode="nearest-exact")
    return out[0, 0].to(label.dtype)


def _resize(image: torch.Tensor, label: torch.Tensor,
            size: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    image = F.resize(tv_tensors.Image(image), size,
                     interpolation=v2.InterpolationMode.BILINEAR, antialias=True)
    return image.as_subclass(torch.Tensor), resize_label(label, size)


class EvalTransform:
    """Evaluation transform: full size, optionally downscaled so the short side is at most
    ``max_short_side``.

    Args:
        max_short_side: optional bound on the shorter side in pixels.

    Returns (when called): image uint8 (3, h, w), label uint8 (h, w), box int64 (4,) =
    (0, 0, w, h) (no padding).
    """

    def __init__(self, max_short_side: int | None = None) -> None:
        self.max_short_side = max_short_side

    def __call__(self, image: torch.Tensor,
                 label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_pair(image, label)
        image, label = resize_short_side(image, label, self.max_short_side)
        return image, label.to(torch.uint8), _whole_box(label)

    def __repr__(self) -> str:
        return f"EvalTransform(max_short_side={self.max_short_side})"


class TrainTransform:
    """Training transform, image and label transformed jointly.

    ``crop_size=None`` (the paper's setting: batch 1, full images): optional downscale to
    ``max_short_side``, random horizontal flip.
    Otherwise: optional downscale, random scale factor uniform in ``scale_range`` (image
    bilinear, label nearest) -- or, with ``base_size``, the short side scaled to a length
    uniform in ``scale_range`` x ``base_size`` (ZS3Net ``RandomScaleCrop``,
    ``zs3/dataloaders/custom_transforms.py``: short side ``randint(0.5 * base_size, 2 *
    base_size)``; here a real number, rounded with the other side), random crop to ``crop_size`` (padding the label with 255 where
    the scaled image is smaller, and the image, whose padding the returned box excludes, so
    that :func:`normalize_batch` sets it to 0), random horizontal flip. Randomness comes from
    torch's CPU RNG (one draw per scale, crop position and flip, in that order); the training
    loader seeds it per image (:func:`zss.data.sampling.seeded`).

    Args:
        crop_size: int or (h, w), or None for full images.
        scale_range: (min, max) scale factors, used only with a crop.
        hflip: flip with probability 0.5.
        max_short_side: optional bound on the shorter side, applied first.
        base_size: the short side's scale reference in pixels (with a crop), or None for a
            scale factor of the image's own size.

    Returns (when called): image uint8 (3, h, w), label uint8 (h, w), box int64 (4,)
    (x1, y1, x2, y2) of the image pixels; (h, w) = crop_size when cropping.
    """

    def __init__(self, crop_size: int | Sequence[int] | None = None,
                 scale_range: Sequence[float] = (0.5, 2.0), hflip: bool = True,
                 max_short_side: int | None = None, base_size: int | None = None) -> None:
        if crop_size is not None:
            crop_size = ((int(crop_size),) * 2 if isinstance(crop_size, int)
                         else tuple(int(c) for c in crop_size))
            if len(crop_size) != 2 or min(crop_size) < 1:
                raise ValueError(f"crop_size must be a positive int or (h, w), got {crop_size}.")
        self.crop_size = crop_size
        lo, hi = (float(s) for s in scale_range)
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (min, max) with 0 < min <= max, got "
                             f"{tuple(scale_range)}.")
        self.scale_range = (lo, hi)
        self.hflip = hflip
        self.max_short_side = max_short_side
        self.base_size = None if base_size is None else int(base_size)
        self._crop = (v2.RandomCrop(crop_size, pad_if_needed=True, fill=_FILL)
                      if crop_size is not None else None)
        self._flip = v2.RandomHorizontalFlip(0.5) if hflip else None

    def __call__(self, image: torch.Tensor,
                 label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        _check_pair(image, label)
        image, label = resize_short_side(image, label, self.max_short_side)
        if self._crop is not None:
            lo, hi = self.scale_range
            scale = lo + (hi - lo) * float(torch.rand(()))
            h, w = label.shape
            if self.base_size is not None:
                scale *= self.base_size / min(h, w)
            size = [max(1, math.floor(h * scale + 0.5)), max(1, math.floor(w * scale + 0.5))]
            if size != [h, w]:
                image, label = _resize(image, label, size)
        box = tv_tensors.BoundingBoxes(_whole_box(label)[None], format="XYXY",
                                       canvas_size=tuple(label.shape))
        triple = (tv_tensors.Image(image), tv_tensors.Mask(label.to(torch.uint8)), box)
        if self._crop is not None:
            triple = self._crop(*triple)
        if self._flip is not None:
            triple = self._flip(*triple)
        image, label, box = (t.as_subclass(torch.Tensor) for t in triple)
        return image, label, box[0].to(torch.int64)

    def __repr__(self) -> str:
        return (f"TrainTransform(crop_size={self.crop_size}, scale_range={self.scale_range}, "
                f"hflip={self.hflip}, max_short_side={self.max_short_side}"
                + (f", base_size={self.base_size})" if self.base_size is not None else ")"))
