"""A stage's view of a raw dataset: its images, the protocol's voiding, the transform and,
for stage 2, the seenmask target built after the per-item leakage check."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from zss.data.filters import check_no_leakage, seenmask_target
from zss.data.sampling import seeded
from zss.data.splits import ClassSplit

__all__ = ["TransformedDataset"]


class TransformedDataset(Dataset):
    """Applies a joint transform to the items of a raw dataset (uint8 image, integer label),
    and optionally adds ``"seenmask"`` = :func:`seenmask_target` of the transformed label,
    after checking that the label has no unseen (U) pixel (:func:`check_no_leakage`).

    Items: ``dict(image uint8 (3, h, w), label uint8 (h, w), box int64 (4,), id, [seenmask
    uint8 (h, w)])``; the modules normalise on the device
    (:func:`zss.data.batches.normalize_batch`).

    Args:
        base: the raw dataset.
        transform: ``(image, label) -> (image, label, box)`` (:mod:`zss.data.transforms`).
        split: adds ``"seenmask"`` when given.
        indices: the items of ``base`` it serves (position ``i`` is ``base[indices[i]]``);
            None for all.
        label_table: int64 (256,) map applied to every raw label before the transform (the
            protocol's voiding, :meth:`~zss.data.protocols.Protocol.label_table`); None for
            none.

    A key is a position or ``(position, augmentation_seed)``
    (:class:`~zss.data.sampling.SeededRandomSampler`); with a seed the transform's random
    draws come from that seed alone (:func:`~zss.data.sampling.seeded`).
    """

    def __init__(self, base: Dataset, transform: Callable, split: ClassSplit | None = None,
                 indices: Sequence[int] | None = None,
                 label_table: torch.Tensor | None = None):
        self.base = base
        self.label_table = label_table
        self.transform = transform
        self.split = split
        self.indices = list(range(len(base))) if indices is None else list(indices)  # type: ignore[arg-type]
        # stage 2 may see every class but U (computed once, not per item)
        self._allowed = None if split is None else ~split.mask(split.unseen)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        index, aug_seed = key if isinstance(key, tuple) else (key, None)
        item = dict(self.base[self.indices[index]])
        if self.label_table is not None:  # (a uint8 index would be read as a mask)
            label = item["label"]
            item["label"] = self.label_table[label.long()].to(label.dtype)
        with seeded(aug_seed):
            item["image"], item["label"], item["box"] = self.transform(item["image"],
                                                                       item["label"])
        if self.split is not None:  # stage 2: the leakage guard before the target is built
            check_no_leakage(item["label"][None], self._allowed, [item.get("id", str(index))],
                             "stage2", self.split, optional=False)
            item["seenmask"] = seenmask_target(item["label"], self.split)
        return item
