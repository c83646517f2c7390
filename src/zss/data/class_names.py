"""The class lists of the datasets zss knows, by name, in label-index order (docs/data.md).

Plain data without imports, so that what needs only the names (the published class-embedding
tables, ``zss.embeddings``) does not import torch with ``zss.data``; ``zss.data.splits``
re-exports every name.
"""

VOC_CLASSES: tuple[str, ...] = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
"""The 21 PASCAL VOC classes in label-index order (0 = background)."""

VOC20_CLASSES: tuple[str, ...] = VOC_CLASSES[1:]
"""The 20 VOC object classes, index 0 = aeroplane: the SPNet protocol's class set, in which
background is no class and its pixels are void (VOC label value ``v`` becomes ``v - 1``)."""

CONTEXT33_CLASSES: tuple[str, ...] = VOC_CLASSES[1:] + (
    "sky", "grass", "ground", "road", "building", "tree", "water", "mountain", "wall",
    "floor", "track", "keyboard", "ceiling",
)  # fmt: skip
"""The 33-class PASCAL-Context set of the original SZN code (``classes-33.txt``), index 0 =
aeroplane; it has no background class."""

CONTEXT59_CLASSES: tuple[str, ...] = VOC_CLASSES[1:] + (
    "bag", "bed", "bench", "book", "building", "cabinet", "ceiling", "clothes", "computer",
    "cup", "door", "fence", "floor", "flower", "food", "grass", "ground", "keyboard", "light",
    "mountain", "mouse", "curtain", "platform", "sign", "plate", "road", "rock", "shelves",
    "sidewalk", "sky", "snow", "bedcloth", "track", "tree", "truck", "wall", "water",
    "window", "wood",
)  # fmt: skip
"""The 59-class PASCAL-Context task (``classes-59.txt`` without its background), index 0 =
aeroplane; every other labelled pixel is void."""

CONTEXT60_CLASSES: tuple[str, ...] = ("background",) + CONTEXT59_CLASSES
"""The 59 classes plus ``background`` (index 0) for every other labelled pixel: the ZS3
protocol's 60 classes (``classes-59.txt`` with its background)."""

CLASS_LISTS: dict[str, tuple[str, ...]] = {"voc": VOC_CLASSES, "voc20": VOC20_CLASSES,
                                           "context33": CONTEXT33_CLASSES,
                                           "context59": CONTEXT59_CLASSES,
                                           "context60": CONTEXT60_CLASSES}
