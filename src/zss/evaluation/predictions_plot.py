"""A PNG grid of test predictions: one row per image, columns image | ground truth | FCN-JE |
SZN | SZN-PS | seenmask (the variants the model has), and a colour legend naming the classes.

Classes are drawn in colours chosen to be told apart (:func:`class_palette`: background black,
then :data:`DISTINCT_COLOURS`, then matplotlib's tab20b and tab20c); the legend tags train_unseen classes ``(TU)`` and unseen (test-only) classes ``(U)``. The seenmask column
shows SZN's per-pixel decision: "seen" (train_seen branch) or "unseen" (the train_unseen ∪ U
branch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from zss.data.splits import IGNORE_INDEX, ClassSplit
from zss.inference.gates import GATES
from zss.inference.variants import predict_variants, title, variant_scores

__all__ = ["ImagePredictions", "class_palette", "predict_test_images", "prediction_grid",
           "save_test_predictions"]

SEENMASK_COLOURS = {"seen": (200, 200, 200), "unseen": (255, 160, 0)}
DISTINCT_COLOURS = ("#f032e6", "#e41a1c", "#ffff33", "#2ca02c", "#000075", "#1f77b4", "#8c6d31",
                    "#e78ac3", "#469990", "#aaffc3", "#e6ab02", "#ad494a", "#4363d8", "#e7298a",
                    "#e7cb94", "#ff7f0e", "#7b4173", "#42d4f4", "#666666", "#fc8d62")
"""20 object colours chosen greedily, each the candidate farthest (CIE76 ΔE) from black, white
and those before it, among Sasha Trubetskoy's "20 Simple, Distinct Colors"
(sashamaps.net/docs/resources/20-colors) and matplotlib's tab10, tab20, tab20b, Set1, Dark2
and Set2: no two of them, black and white closer than ΔE 31 (VOC's colour map: 8.8)."""
VOID_COLOUR = (255, 255, 255)


def class_palette(class_names: Sequence[str]) -> np.ndarray:
    """uint8 (256, 3) RGB colours by label value: ``background`` black, the other classes in
    order :data:`DISTINCT_COLOURS`, then the colours of matplotlib's ``tab20b``, ``tab20c``
    and ``Set3`` not among them (75 colours in all before they repeat); void (255) white.
    (VOC's own colour map gives several classes nearly the same dark red or green.)"""
    from matplotlib import colormaps

    colours = [tuple(int(h[i:i + 2], 16) for i in (1, 3, 5)) for h in DISTINCT_COLOURS]
    for name in ("tab20b", "tab20c", "Set3"):
        cmap = colormaps[name]
        for i in range(cmap.N):
            rgb = tuple(round(255 * x) for x in cmap(i)[:3])
            if rgb not in colours:
                colours.append(rgb)
    palette = np.zeros((256, 3), dtype=np.uint8)
    objects = iter(colours * (1 + len(class_names) // len(colours)))
    for i, name in enumerate(class_names[:255]):
        palette[i] = (0, 0, 0) if name == "background" else next(objects)
    palette[IGNORE_INDEX] = VOID_COLOUR
    return palette


_PAD, _TITLE_H = 4, 20


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: fixed-size bitmap font
        return ImageFont.load_default()


def tagged_name(name: str, split: ClassSplit) -> str:
    """``name (U)`` for an unseen class, ``name (TU)`` for a train_unseen one, else ``name``."""
    return (f"{name} (U)" if name in split.unseen
            else f"{name} (TU)" if name in split.train_unseen else name)


def prediction_grid(images: Sequence[np.ndarray], labels: Sequence[np.ndarray],
                    preds: Mapping[str, Sequence[np.ndarray]],
                    seenmask: Sequence[np.ndarray] | None, split: ClassSplit,
                    scale: int = 3) -> Image.Image:
    """Draw the grid.

    Args:
        images: N uint8 RGB arrays (H, W, 3).
        labels: N int arrays (H, W), class indices, 255 = void (drawn white).
        preds: variant name -> N int arrays (H, W); columns in this order.
        seenmask: N arrays (H, W), 1 = seen, 0 = unseen, or None for no seenmask column.
        split: the class split (names and sets for the legend).
        scale: nearest-neighbour magnification of every cell.

    Returns:
        an RGB ``PIL.Image``.
    """
    cmap = class_palette(split.class_names)
    columns = ["image", "ground truth", *(title(v) for v in preds)]
    if seenmask is not None:
        columns.append("seenmask")
    rows = []
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        cells = [image, cmap[np.asarray(label, dtype=np.int64).clip(0, IGNORE_INDEX)]]
        cells += [cmap[np.asarray(p[i], dtype=np.int64)] for p in preds.values()]
        if seenmask is not None:
            cells.append(np.where(np.asarray(seenmask[i])[..., None] == 1,
                                  SEENMASK_COLOURS["seen"], SEENMASK_COLOURS["unseen"]))
        rows.append([np.asarray(c, dtype=np.uint8).repeat(scale, 0).repeat(scale, 1)
                     for c in cells])
    cell_h = max(c.shape[0] for r in rows for c in r)
    cell_w = max(c.shape[1] for r in rows for c in r)
    font = _font(13)
    legend = [(tagged_name(n, split), tuple(int(x) for x in cmap[i]))
              for i, n in enumerate(split.class_names)]
    if seenmask is not None:
        legend += [(f"seenmask: {k}", v) for k, v in SEENMASK_COLOURS.items()]
    width = len(columns) * (cell_w + _PAD) + _PAD
    entry_w = 150
    per_line = max(1, (width - _PAD) // entry_w)
    legend_h = ((len(legend) + per_line - 1) // per_line) * 18 + 2 * _PAD
    height = _TITLE_H + len(rows) * (cell_h + _PAD) + _PAD + legend_h
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for j, heading in enumerate(columns):
        draw.text((_PAD + j * (cell_w + _PAD), 3), heading, fill=(0, 0, 0), font=font)
    for i, cells in enumerate(rows):
        y = _TITLE_H + i * (cell_h + _PAD)
        for j, cell in enumerate(cells):
            canvas.paste(Image.fromarray(cell), (_PAD + j * (cell_w + _PAD), y))
    y0 = _TITLE_H + len(rows) * (cell_h + _PAD) + _PAD
    for k, (text, colour) in enumerate(legend):
        x, y = _PAD + (k % per_line) * entry_w, y0 + (k // per_line) * 18
        draw.rectangle((x, y + 2, x + 12, y + 14), fill=colour, outline=(0, 0, 0))
        draw.text((x + 17, y), text, fill=(0, 0, 0), font=font)
    return canvas


@dataclass
class ImagePredictions:
    """What :func:`predict_test_images` gives for each chosen test image (lists in the same
    order).

    Attributes:
        indices: the images' indices in the test dataset.
        images: uint8 RGB arrays (H, W, 3), at the size the model saw.
        labels: int arrays (H, W), ground-truth class indices, 255 = void.
        preds: variant name (``module.test_variants``) -> int arrays (H, W).
        seenmask: arrays (H, W), 1 = seen, 0 = unseen, or None without a seenmask head.
    """

    indices: list[int]
    images: list[np.ndarray]
    labels: list[np.ndarray]
    preds: dict[str, list[np.ndarray]]
    seenmask: list[np.ndarray] | None


@torch.no_grad()
def predict_test_images(module, dataset, count: int) -> ImagePredictions:
    """Predict a fixed set of ``count`` test images with a stage module: half of them
    (rounded up) the first ones with a pixel of an unseen (U) class, the rest the first ones
    without (either kind fills in when the other runs short); in dataset order.

    Args:
        module: a ``Stage1Module`` / ``Stage2Module`` (its net, split, class embeddings and
            test variants are used), on the CPU or a GPU.
        dataset: the test dataset as :meth:`ZSSDataModule.test_dataloader` holds it: a
            ``TransformedDataset`` with ``base`` (raw uint8 items) and ``transform``.
        count: number of images, >= 1.
    """
    split = module.split
    unseen = torch.tensor(split.unseen_idx, dtype=torch.int64)
    with_u, without_u = [], []
    for index in range(min(len(dataset), 20 * count)):
        label = dataset.base[index]["label"]
        (with_u if bool(torch.isin(label, unseen).any()) else without_u).append(index)
    n_u = max((count + 1) // 2, count - len(without_u))  # fill up with U images if needed
    chosen = sorted(with_u[:n_u] + without_u[: count - min(n_u, len(with_u))])
    module.eval()
    device = next(module.parameters()).device
    images, labels, seenmask = [], [], []
    variants = tuple(v for v in module.test_variants if v not in GATES)  # the paper's
    preds: dict[str, list[np.ndarray]] = {v: [] for v in variants}
    for index in chosen:
        raw = dataset.base[index]
        image, label, _ = dataset.transform(raw["image"], raw["label"])  # uint8, as shown
        batch = module.on_after_batch_transfer(
            {"image": image[None].to(device), "label": label[None].to(device)}, 0)
        out = module.net(batch["image"])
        labels_b = batch["label"]
        scores = variant_scores(out, module.class_embeddings)
        for v, p in predict_variants(out, labels_b, scores, split, variants).items():
            preds[v].append(p[0].cpu().numpy())
        if "seenmask" in out:
            seenmask.append(out["seenmask"][0].argmax(0).cpu().numpy())
        images.append(image.permute(1, 2, 0).numpy())
        labels.append(label.numpy())
    return ImagePredictions(chosen, images, labels, preds, seenmask or None)


def save_test_predictions(module, dataset, count: int, path: str | Path) -> Path:
    """Save :func:`prediction_grid` of the ``count`` test images of
    :func:`predict_test_images` (arguments as there) to the PNG file ``path``; return it."""
    shown = predict_test_images(module, dataset, count)
    grid = prediction_grid(shown.images, shown.labels, shown.preds, shown.seenmask,
                           module.split)
    path = Path(path)
    grid.save(path)
    return path
