"""Batches: images of different sizes padded into one batch (with each image's size and box),
cut back into same-size parts for evaluation, and normalised on the device with the
backbone's preprocessing (uint8 through the loader; :mod:`zss.data.transforms`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from zss.data.splits import IGNORE_INDEX

__all__ = ["normalize_batch", "pad_collate", "same_size_parts"]

Normalize = Callable[[torch.Tensor], torch.Tensor]


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
