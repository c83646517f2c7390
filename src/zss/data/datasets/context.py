"""PASCAL-Context (Mottaghi et al., CVPR 2014) segmentation, with its class set chosen by name
(docs/data.md, "PASCAL-Context").

Layout on disk (the VOC2010 images, the official ``trainval.tar.gz`` label maps and their
``labels.txt``; the layout of the shared ``pascal-context-sample``)::

    <root>/
        VOCdevkit/VOC2010/JPEGImages/<id>.jpg
        trainval/<id>.mat                  LabelMap: uint16 (H, W), 1-based indices into
                                           labels.txt (459 classes), 0 = unlabeled
        labels.txt                         "N: name" lines, N = 1 … 459
        ImageSets/<set>.txt                one id per line (official: train 4,998, val 5,105)

Class sets (``task``): ``context33``, ``context59`` and ``context60``, mappings by name from
the 459 classes of ``labels.txt`` (:mod:`zss.data.datasets.context_labels` says what each
does with the pixels outside its classes).

Images with pixels outside the class set (``drop_images``): by default (None) every image is
kept and those pixels are void, so that the training set is not cut to the images made only
of the set's classes and no pixel of another class is taught as one of them. The original
SZN code (RohanDoshi2018/ZeroshotSemanticSegmentation, ``context_dataset.py``) instead drops,
from every list it reads (train and val alike), each image whose 33-class label PNG
(``33_context_labels``, value 0 = none of the 33) has a pixel of value 0:
``drop_images="other_classes_or_unlabeled"`` drops an image with a pixel of another class or
an unlabeled pixel, ``"other_classes"`` only one with a pixel of another class. The decision
is read from the ``.mat`` label maps (even when ``label_dir`` PNGs are read), once per list
(cached with ``cache_dir``); ``dropped`` names the images left out. With ``context60`` no
pixel is outside the set, so neither rule drops an image.

The label maps can also be converted once into index PNGs (``python -m
zss.data.convert_context``), so that training never parses ``.mat`` files; the dataset reads
either.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

from zss.data.datasets.base import (
    ListSegmentation,
    Transform,
    cached_scan,
    file_stamp,
    read_id_list,
)
from zss.data.datasets.context_labels import (
    _OTHER,
    _UNLABELED,
    CONTEXT_TASKS,
    check_task_file,
    context_label_table,
    outside_class_set,
    read_context_labels,
    read_label_map,
    resolve_context_root,
)
from zss.data.files import DataError, read_label_array
from zss.data.splits import CLASS_LISTS

__all__ = ["DROP_RULES", "ContextSegmentation"]

DROP_RULES = ("other_classes", "other_classes_or_unlabeled")
"""The values of ``data.dataset.drop_images`` besides None (see the module docstring)."""
_OUTSIDE_VERSION = 1
"""Part of the drop_images cache key; bumped when the flags change meaning."""


class ContextSegmentation(ListSegmentation):
    """PASCAL-Context over the VOC2010 images, in the class set ``task``.

    Args:
        root: the data root (:func:`resolve_context_root`).
        image_set: ``ImageSets/<image_set>.txt`` under the root (e.g. ``train``, ``val``,
            ``official/train``), or the path of any list file.
        task: the class set, ``context33``, ``context59`` or ``context60``; no default: every
            Context run names it.
        transform: optional joint transform (see :class:`~zss.data.datasets.base.ListSegmentation`).
        cache_dir: optional folder for the class-presence and ``drop_images`` caches.
        label_dir: None to read ``trainval/<id>.mat`` and map it by name on the fly; or the
            folder of index PNGs written for the same task by
            ``python -m zss.data.convert_context`` (absolute, or relative to the root).
        drop_images: None (keep every image, pixels outside the class set void),
            ``"other_classes"`` or ``"other_classes_or_unlabeled"``: leave out each image
            with a pixel of another class (or, with the latter, an unlabeled pixel) -- the
            original SZN code's rule, see the module docstring.

    Attributes:
        ids: the ids of the list that the rule keeps.
        dropped: the ids it left out, in list order (empty without a rule).

    Items: ``dict(image uint8 (3, H, W), label uint8 (H, W) in [0, C) ∪ {255}, id)``.

    Raises:
        DataError: a bad root, list or label file, missing JPEGs or labels (named), a label
            folder converted for another task, an unknown ``drop_images``, or a rule that
            leaves no image of the list (naming the counts each setting keeps).
        ValueError: an unknown task (names the valid ones).
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 task: str | None = None, transform: Transform | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 label_dir: str | os.PathLike | None = None,
                 drop_images: str | None = None) -> None:
        if task is None:
            raise DataError("PASCAL-Context needs its class set named: set data.dataset.task "
                            f"to one of {list(CONTEXT_TASKS)} (the original SZN code uses "
                            "context33, ZS3 context60).")
        if task not in CONTEXT_TASKS:
            raise DataError(f"unknown PASCAL-Context class set data.dataset.task={task!r}; "
                            f"use one of {list(CONTEXT_TASKS)}")
        if drop_images is not None and drop_images not in DROP_RULES:
            raise DataError(f"unknown data.dataset.drop_images={drop_images!r}; use null (keep "
                            "every image, pixels outside the class set void) or one of "
                            f"{list(DROP_RULES)}.")
        self.root = resolve_context_root(root)
        self.task, self.drop_images = task, drop_images
        self.table = context_label_table(read_context_labels(self.root / "labels.txt"), task)
        self.label_dir = None if label_dir is None else self.root / label_dir
        if self.label_dir is not None:
            check_task_file(self.label_dir, task)
        list_file = Path(image_set) if Path(image_set).suffix == ".txt" \
            else self.root / "ImageSets" / f"{image_set}.txt"
        sets = sorted(str(p.relative_to(self.root / "ImageSets").with_suffix(""))
                      for p in (self.root / "ImageSets").rglob("*.txt")) \
            if (self.root / "ImageSets").is_dir() else []
        hint = f" (the lists under {self.root / 'ImageSets'} are {sets})" if sets else ""
        super().__init__(read_id_list(list_file, hint), list_file, Path(image_set).stem,
                         self.root / "VOCdevkit" / "VOC2010" / "JPEGImages", CLASS_LISTS[task],
                         task, transform=transform, cache_dir=cache_dir,
                         missing_hint="The VOC2010 trainval archive holds the JPEGs and "
                                      "trainval.tar.gz the label maps: restore the files or "
                                      "remove these ids from the list.")
        self.dropped: list[str] = []
        if drop_images is not None:
            self._drop(drop_images)

    def label_path(self, id_: str) -> Path:
        if self.label_dir is None:
            return self._mat_path(id_)
        return self.label_dir / f"{id_}.png"

    def _mat_path(self, id_: str) -> Path:
        return self.root / "trainval" / f"{id_}.mat"

    def _label_map(self, id_: str) -> np.ndarray:
        label_map = read_label_map(self._mat_path(id_))
        if int(label_map.max(initial=0)) >= len(self.table):
            raise DataError(f"{self._mat_path(id_)} holds value {int(label_map.max())}, but "
                            f"labels.txt has {len(self.table) - 1} classes")
        return label_map

    def read_label_array(self, id_: str) -> np.ndarray:
        if self.label_dir is not None:
            return read_label_array(self.label_path(id_))
        return self.table[self._label_map(id_)]

    def cache_params(self) -> list:
        # the table: a change of mapping (context60's unlabeled pixels) is a new key
        return [self.task, None if self.label_dir is None else str(self.label_dir),
                self.table.tolist()]

    # -- the original's rule: images with pixels outside the class set --
    def _drop(self, rule: str) -> None:
        missing = [i for i in self.ids if not self._mat_path(i).is_file()]
        if missing:
            raise DataError(f"data.dataset.drop_images={rule} decides from the .mat label "
                            f"maps, but {len(missing)} of the {len(self.ids)} ids of {self.list_file} "
                            f"have none (e.g. "
                            f"{self._mat_path(missing[0])}): restore trainval/ from "
                            "trainval.tar.gz, or set data.dataset.drop_images=null.")
        flags = self.outside_flags()
        mask = _OTHER if rule == "other_classes" else _OTHER | _UNLABELED
        kept = [i for i, f in zip(self.ids, flags, strict=True) if not f & mask]
        self.dropped = [i for i, f in zip(self.ids, flags, strict=True) if f & mask]
        if not kept:
            n_other = sum(not f & _OTHER for f in flags)
            also = (f" (data.dataset.drop_images=other_classes would keep {n_other})"
                    if rule != "other_classes" else "")
            raise DataError(
                f"data.dataset.drop_images={rule} (the original SZN code's rule) leaves none "
                f"of the {len(self.ids)} images of {self.list_file}: each has a pixel outside "
                f"the {len(self.class_names)} classes of {self.task} (of another class"
                f"{', or unlabeled' if rule != 'other_classes' else ''}). To run on this "
                f"list, set data.dataset.drop_images=null, which keeps all {len(self.ids)} "
                f"with those pixels void{also}; or use a larger list (the rule applies to the "
                "training and the test list alike).")
        self.ids = kept

    def outside_flags(self) -> list[int]:
        """:func:`outside_class_set` of every id of the list, read from the ``.mat`` label
        maps once (cached as json with ``cache_dir``, keyed by the class set, ``labels.txt``
        and each map's modification time and size).

        Raises:
            DataError: a missing or unreadable label map, or a value beyond labels.txt.
        """
        cache, key = None, ""
        if self.cache_dir is not None:
            payload = [_OUTSIDE_VERSION, self.task, file_stamp(self.root / "labels.txt"),
                       [[i, *file_stamp(self._mat_path(i))] for i in self.ids]]
            key = hashlib.sha256(json.dumps(payload).encode()).hexdigest()
            cache = self.cache_dir / f"{self.task}_outside_{self.image_set}_{key[:16]}.json"
        return cached_scan(cache, key, self.ids, "outside",
                           lambda: [outside_class_set(self._label_map(i), self.table)
                                    for i in self.ids], list=str(self.list_file))
