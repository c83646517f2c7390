"""zss.data: datasets, class lists and splits, benchmark protocols, the zero-shot leakage
filters, transforms and the DataModule.

Names are imported from their modules on first use (PEP 562), so that a light module of the
package, e.g. :mod:`zss.data.class_names` (which :mod:`zss.embeddings` reads), can be imported
without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "zss.data.datasets.context": ("ContextSegmentation",),
    "zss.data.datasets.context_labels": ("CONTEXT_TASKS",),
    "zss.data.datamodule": ("STAGES", "TransformedDataset", "ZSSDataModule"),
    "zss.data.files": ("DataError", "read_image", "read_label", "voc_colormap"),
    "zss.data.filters": ("holdout_split", "seenmask_target", "stage1_indices",
                         "stage2_indices"),
    "zss.data.protocols": ("PROTOCOLS", "Protocol"),
    "zss.data.splits": ("CLASS_LISTS", "CONTEXT33_CLASSES", "CONTEXT59_CLASSES",
                        "CONTEXT60_CLASSES", "IGNORE_INDEX", "VOC20_CLASSES", "VOC_CLASSES",
                        "ClassSplit", "SplitError", "split_from_config"),
    "zss.data.datasets.synthetic": ("SyntheticSegmentation",),
    "zss.data.transforms": ("EvalTransform", "TrainTransform", "resize_label",
                            "resize_short_side"),
    "zss.data.batches": ("normalize_batch", "pad_collate", "same_size_parts"),
    "zss.data.datasets.voc": ("VOCSegmentation",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'zss.data' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
