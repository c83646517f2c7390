"""The data line of a run's log: what a DataModule holds, per list and stage, and what the
leakage guards and a dataset's drop rule left out (:meth:`ZSSDataModule.describe`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from zss.data.datasets.base import MAX_NAMED

if TYPE_CHECKING:
    from zss.data.datamodule import ZSSDataModule

__all__ = ["describe_data"]


def describe_data(dm: ZSSDataModule) -> str:
    """One line for the run log, e.g. ``split voc_17_2_2 on 'train' (49 images; 2 left
    out, their label all void: 2007_000032, 2007_000039): stage 1: 31 train / 3 held-out
    images; …``; a dataset rule that drops images adds e.g. ``(5 images; 12 dropped by
    data.dataset.drop_images=other_classes…)`` to each list."""
    s = dm.summary()
    void = ""
    if dm.all_void:
        base = dm._train_base
        shown = [dm._id(base, i) for i in dm.all_void[:MAX_NAMED]]  # type: ignore[arg-type]
        void = (f"; {len(dm.all_void)} left out, their label all void: "
                + ", ".join(shown) + (", …" if len(dm.all_void) > MAX_NAMED else ""))
    dropped = dict.fromkeys(("train", "test"), "")
    for k, n in s.get("dropped_outside_class_set", {}).items():
        rule = getattr(dm._train_base, "drop_images", None)  # one factory: one rule
        dropped[k] = f"; {n} dropped by data.dataset.drop_images={rule}"
    return (f"split {dm.split.name}, {dm.protocol.describe(dm.split)}, on '{dm.train_set}' "
            f"({s['train_list']} images{dropped['train']}{void}): "
            f"stage 1: {s['stage1_train']} train / {s['stage1_val']} held-out images; "
            f"stage 2: {s['stage2_train']} train / {s['stage2_val']} held-out images; "
            f"test '{dm.test_set}': {s['test']} images{dropped['test']}")
