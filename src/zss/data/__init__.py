"""zss.data: datasets, class splits, zero-shot image filters, transforms, DataModule."""

from zss.data.context import CONTEXT_TASKS, ContextSegmentation
from zss.data.datamodule import STAGES, TransformedDataset, ZSSDataModule
from zss.data.files import DataError, read_image, read_label, voc_colormap
from zss.data.filters import holdout_split, seenmask_target, stage1_indices, stage2_indices
from zss.data.protocols import PROTOCOLS, Protocol
from zss.data.splits import (
    CLASS_LISTS,
    CONTEXT33_CLASSES,
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    IGNORE_INDEX,
    VOC20_CLASSES,
    VOC_CLASSES,
    ClassSplit,
    SplitError,
    split_from_config,
)
from zss.data.synthetic import SyntheticSegmentation
from zss.data.transforms import (
    EvalTransform,
    TrainTransform,
    pad_collate,
    resize_label,
    resize_short_side,
    same_size_parts,
)
from zss.data.voc import VOCSegmentation

__all__ = [
    "CLASS_LISTS", "CONTEXT33_CLASSES", "CONTEXT59_CLASSES", "CONTEXT60_CLASSES",
    "CONTEXT_TASKS", "ContextSegmentation", "IGNORE_INDEX", "STAGES", "VOC20_CLASSES", "VOC_CLASSES",
    "ClassSplit",
    "DataError", "EvalTransform", "PROTOCOLS", "Protocol", "SplitError", "SyntheticSegmentation", "TrainTransform",
    "TransformedDataset",
    "VOCSegmentation", "ZSSDataModule", "holdout_split", "pad_collate", "read_image",
    "read_label", "resize_label", "resize_short_side", "same_size_parts", "seenmask_target",
    "split_from_config",
    "stage1_indices", "stage2_indices", "voc_colormap",
]
