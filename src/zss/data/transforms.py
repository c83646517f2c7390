"""Joint image/label transforms, the padding collate function and the batch's conversion on
the device.

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
device after the batch transfer: :func:`normalize_batch`, called by the stage modules'
``on_after_batch_transfer``. Padded image pixels are 0 in the network's input space (the mean
colour for mean-subtracted inputs), padded label pixels 255, as when the images were
normalised before padding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from zss.data.splits import IGNORE_INDEX

__all__ = ["EvalTransform", "TrainTransform", "normalize_batch", "pad_collate", "resize_label",
           "resize_short_side", "same_size_parts"]

Normalize = Callable[[torch.Tensor], torch.Tensor]
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
    bilinear, label nearest), random crop to ``crop_size`` (padding the label with 255 where
    the scaled image is smaller, and the image, whose padding the returned box excludes, so
    that :func:`normalize_batch` sets it to 0), random horizontal flip. Randomness comes from
    torch's CPU RNG (one draw per scale, crop position and flip, in that order); the training
    loader seeds it per image (:func:`zss.data.sampling.seeded`).

    Args:
        crop_size: int or (h, w), or None for full images.
        scale_range: (min, max) scale factors, used only with a crop.
        hflip: flip with probability 0.5.
        max_short_side: optional bound on the shorter side, applied first.

    Returns (when called): image uint8 (3, h, w), label uint8 (h, w), box int64 (4,)
    (x1, y1, x2, y2) of the image pixels; (h, w) = crop_size when cropping.
    """

    def __init__(self, crop_size: int | Sequence[int] | None = None,
                 scale_range: Sequence[float] = (0.5, 2.0), hflip: bool = True,
                 max_short_side: int | None = None) -> None:
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
                f"hflip={self.hflip}, max_short_side={self.max_short_side})")


def pad_collate(batch: Sequence[dict]) -> dict:
    """Collate item dicts, padding images of different sizes to the batch maximum.

    Tensors under ``"image"`` are padded with 0 at the bottom/right; every other tensor
    (``"label"``, ``"seenmask"``) with 255 (void), so padding never counts in a loss or a
    metric. Non-tensor values (``"id"``) become lists. ``"size"`` records each image's own
    (H, W), so that evaluation can undo the padding (:func:`same_size_parts`): padding
    changes a network's predictions at real pixels (receptive fields, normalisation).

    Returns:
        dict with image (N, 3, H, W) and label (N, H, W) of the items' dtypes (uint8 from the
        zss transforms), id list[str], size int64 (N, 2), box int64 (N, 4) when the items have
        one, and any other keys of the items collated the same way.

    Raises:
        ValueError: an empty batch, or items with different keys.
    """
    if not batch:
        raise ValueError("pad_collate got an empty batch.")
    keys = list(batch[0])
    if any(list(item) != keys for item in batch):
        raise ValueError(f"pad_collate: items have different keys: {[list(b) for b in batch]}.")
    out: dict = {}
    for key in keys:
        values = [item[key] for item in batch]
        if not all(isinstance(v, torch.Tensor) for v in values):
            out[key] = values
            continue
        if len(values) == 1:  # the paper's batch 1: a view, no copy
            out[key] = values[0].unsqueeze(0)
            continue
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) == 1:
            out[key] = torch.stack(values)
            continue
        if len({v.ndim for v in values}) != 1:
            raise ValueError(f"pad_collate: '{key}' tensors have different ranks {shapes}.")
        size = [max(s) for s in zip(*shapes, strict=True)]
        fill = 0 if key == "image" else IGNORE_INDEX
        padded = values[0].new_full((len(values), *size), fill)
        for i, v in enumerate(values):
            padded[(i, *(slice(0, n) for n in v.shape))] = v
        out[key] = padded
    if "image" in keys and isinstance(batch[0]["image"], torch.Tensor):
        out["size"] = torch.tensor([list(item["image"].shape[-2:]) for item in batch])
    return out


def same_size_parts(batch: dict) -> list[dict]:
    """Undo :func:`pad_collate`'s padding for evaluation.

    Args:
        batch: a collated batch; ``"size"`` int64 (N, 2) gives each image's own (H, W).

    Returns:
        ``[batch]`` when every image has the batch's size (nothing was padded, or no
        ``"size"``); otherwise one single-image batch per image, every tensor of 3 or more
        dimensions (image, label, seenmask) cropped to that image's (H, W), lists and other
        tensors sliced to the image. Scores computed part by part are then those of
        batch size 1.
    """
    sizes = batch.get("size")
    if sizes is None or bool((sizes == torch.tensor(batch["image"].shape[-2:])).all()):
        return [batch]
    parts = []
    for i, (h, w) in enumerate(sizes.tolist()):
        part = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor) and value.dim() >= 3:
                part[key] = value[i:i + 1, ..., :h, :w]
            else:
                part[key] = value[i:i + 1]
        parts.append(part)
    return parts


def normalize_batch(batch: dict, normalize: Normalize) -> dict:
    """A collated batch as the network and the losses take it, on the batch's device.

    The image is normalised (``normalize``: the preprocessing of the backbone's weights,
    docs/method.md) and every pixel outside its image's ``box`` (padding by a crop) or beyond its
    ``size`` (padding by :func:`pad_collate`) set to +0.0, exactly as when the images were
    normalised on the CPU before padding; label and seenmask become int64. The elementwise
    operations are those :class:`zss.models.Preprocessing` runs on the CPU, so the result is
    the same bit for bit on the CPU (tested) and, on a GPU, where torch runs each operation
    as its own IEEE-rounded kernel (checked by ``benchmarks/gpu_throughput.py``).

    Args:
        batch: dict with image uint8 (N, 3, H, W) RGB, label integer (N, H, W), optional
            seenmask (N, H, W), box int64 (N, 4) (x1, y1, x2, y2, ends exclusive) and size
            int64 (N, 2) (each image's own (H, W)); other keys are passed through.
        normalize: ``uint8 (N, 3, H, W) -> float32 (N, 3, H, W)``.

    Returns:
        a new dict: image float32 (N, 3, H, W), label and seenmask int64, the rest as given.

    Raises:
        TypeError: an image that is not uint8 (e.g. normalised already by a custom loader:
            the zss modules normalise themselves, so that the preprocessing is always the
            one the weights need).
    """
    image = batch["image"]
    if image.dtype != torch.uint8:
        raise TypeError(f"a batch's image must be uint8 RGB (N, 3, H, W), got {image.dtype}: "
                        "the zss modules normalise the images on the device with the "
                        "preprocessing of their backbone's weights, so a loader must not "
                        "(use zss.data.ZSSDataModule, or give uint8 images).")
    out = dict(batch)
    x = normalize(image)
    h, w = image.shape[-2:]
    box, size = batch.get("box"), batch.get("size")
    if box is None and size is not None:  # pad_collate's padding only: each image's own size
        box = torch.cat([torch.zeros_like(size), size.flip(-1)], dim=-1)
    if box is not None:  # within its item's own size, so it excludes pad_collate's padding too
        box = box.to(x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        inside = ((rows >= box[:, 1, None, None]) & (rows < box[:, 3, None, None])
                  & (cols >= box[:, 0, None, None]) & (cols < box[:, 2, None, None]))
        x = torch.where(inside[:, None], x, torch.zeros((), dtype=x.dtype, device=x.device))
    out["image"] = x
    for key in ("label", "seenmask"):
        if key in out:
            out[key] = out[key].long()
    return out
