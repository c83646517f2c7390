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

Class sets (``task``), each a mapping **by name** from the 459 classes of ``labels.txt``;
what each does with the pixels outside its classes, unlabeled ones (LabelMap 0) included:

- ``context33``: the original SZN code's 33 classes (the 20 VOC object classes + sky, grass,
  ground, road, building, tree, water, mountain, wall, floor, track, keyboard, ceiling); no
  background. Pixels of the other 426 classes and unlabeled pixels are void (255).
- ``context59``: the 59-class task of ``classes-59.txt`` (without background); pixels of the
  other 400 classes and unlabeled pixels are void.
- ``context60``: the same 59 classes plus ``background`` (index 0) for **every** other pixel,
  those of the other 400 classes and unlabeled ones alike: ZS3Net's 60 classes (valeoai/ZS3,
  ``zs3/dataloaders/datasets/context.py``, ``load_label`` starts from zeros and fills in the
  59 classes) and mmsegmentation's Context-60; nothing is void, and background is trained
  and evaluated (unlabeled pixels are 12.7 % of the pixels of 500 trainval maps).

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

Three names of the 59-class list differ in ``labels.txt``: ``diningtable`` is ``table``,
``bedcloth`` is ``bedclothes``, ``clothes`` is ``cloth`` (:data:`LABELS_TXT_NAMES`). The label
maps can also be converted once into index PNGs (``python -m zss.data.convert_context``), so
that training never parses ``.mat`` files; the dataset reads either.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from zss.data.datasets.base import (
    ListSegmentation,
    Transform,
    cached_scan,
    file_stamp,
    read_id_list,
)
from zss.data.files import DataError, read_label_array
from zss.data.splits import CLASS_LISTS, IGNORE_INDEX

__all__ = ["CONTEXT_TASKS", "DROP_RULES", "LABELS_TXT_NAMES", "TASK_FILE",
           "ContextSegmentation", "context_label_table", "outside_class_set",
           "read_context_labels", "read_label_map", "resolve_context_root", "task_marker"]

CONTEXT_TASKS = ("context33", "context59", "context60")
"""The class sets a Context run may name (``data.dataset.task``)."""
LABELS_TXT_NAMES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
"""Class-set names whose ``labels.txt`` entry is spelled otherwise."""
DROP_RULES = ("other_classes", "other_classes_or_unlabeled")
"""The values of ``data.dataset.drop_images`` besides None (see the module docstring)."""
TASK_FILE = "zss_task.txt"
"""Written by the converter into its output folder: the class set of the PNGs there
(:func:`task_marker`)."""
_OTHER, _UNLABELED = 1, 2  # bits of an image's outside_class_set flags
_OUTSIDE_VERSION = 1
"""Part of the drop_images cache key; bumped when the flags change meaning."""
_LINE = re.compile(r"^\s*(\d+)\s*:\s*(.+?)\s*$")


def read_context_labels(path: str | os.PathLike) -> list[str]:
    """The 459 class names of PASCAL-Context's ``labels.txt`` (``"N: name"`` lines).

    Returns:
        names in label-value order: ``names[i - 1]`` is the class of LabelMap value ``i``.

    Raises:
        DataError: a missing file, a line that is not ``N: name``, or values that are not
            1, 2, … in order.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"PASCAL-Context labels file {path} does not exist; it comes with the "
                        "official trainval.tar.gz label maps (labels.txt, 459 classes) and must "
                        "sit in the data root next to trainval/.")
    names = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line)
        if m is None or int(m.group(1)) != len(names) + 1:
            raise DataError(f"{path}, line {n}: expected '{len(names) + 1}: <name>', got "
                            f"{line!r}")
        names.append(m.group(2))
    return names


def context_label_table(names: Sequence[str], task: str) -> np.ndarray:
    """The lookup table from LabelMap values to a class set's indices.

    Args:
        names: the classes of ``labels.txt`` (:func:`read_context_labels`), value i + 1.
        task: ``context33``, ``context59`` or ``context60``.

    Returns:
        uint8 (len(names) + 1,): entry i is the index in ``CLASS_LISTS[task]`` of class
        ``names[i - 1]``, else 255; entry 0 (unlabeled) is 255. ``context60``: every other
        entry, 0 (unlabeled) included, is 0 = background (ZS3Net's ``load_label``).

    Raises:
        ValueError: an unknown task, or a class of the set that no ``labels.txt`` name
            resolves to (named, with its spelling there).
    """
    if task not in CONTEXT_TASKS:
        raise ValueError(f"unknown PASCAL-Context class set {task!r}; use one of "
                         f"{list(CONTEXT_TASKS)} (data.dataset.task)")
    classes = CLASS_LISTS[task]
    value_of = {name: i + 1 for i, name in enumerate(names)}
    table = np.full(len(names) + 1, IGNORE_INDEX, dtype=np.uint8)
    if task == "context60":  # ZS3Net: zeros, then the 59 classes filled in
        table[:] = classes.index("background")
    missing = []
    for index, name in enumerate(classes):
        if name == "background" and task == "context60":
            continue
        value = value_of.get(LABELS_TXT_NAMES.get(name, name))
        if value is None:
            missing.append(f"{name} (looked up as {LABELS_TXT_NAMES.get(name, name)!r})")
        else:
            table[value] = index
    if missing:
        raise ValueError(f"classes of {task} not found in labels.txt: {missing}")
    return table


def read_label_map(path: str | os.PathLike) -> np.ndarray:
    """The ``LabelMap`` of one PASCAL-Context ``trainval/<id>.mat``.

    Returns:
        uint16 (H, W): 1-based indices into ``labels.txt``, 0 = unlabeled.

    Raises:
        DataError: a missing or unreadable file, or one without a ``LabelMap``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"PASCAL-Context label map {path} does not exist; restore it from "
                        "the official trainval.tar.gz or remove its id from the list.")
    try:
        array = loadmat(path)["LabelMap"]
    except KeyError as err:
        raise DataError(f"{path} has no LabelMap; it is not a PASCAL-Context trainval label "
                        "map.") from err
    except Exception as err:  # scipy raises several types for a corrupt file
        raise DataError(f"Cannot read {path} ({type(err).__name__}: {err}); re-extract it "
                        "from trainval.tar.gz.") from err
    return np.asarray(array, dtype=np.uint16)


def outside_class_set(label_map: np.ndarray, table: np.ndarray) -> int:
    """Which kinds of pixel of one label map lie outside a class set.

    Args:
        label_map: uint16 (H, W) LabelMap (:func:`read_label_map`).
        table: the class set's :func:`context_label_table`.

    Returns:
        int flags: 1 = a pixel of a ``labels.txt`` class the set does not have, 2 = an
        unlabeled pixel (LabelMap 0) that the set voids (never with ``context60``, whose
        background takes them); 0 = every pixel is in the set.
    """
    values = np.unique(label_map)
    outside = values[table[values] == IGNORE_INDEX]
    return (_OTHER if np.any(outside > 0) else 0) | (_UNLABELED if np.any(outside == 0) else 0)


def task_marker(task: str) -> str:
    """The text of :data:`TASK_FILE` for PNGs of ``task``: the task, and for ``context60`` the
    rule for unlabeled pixels (older zss versions voided them; such a folder is refused)."""
    return "context60 unlabeled=background" if task == "context60" else task


def resolve_context_root(root: str | os.PathLike) -> Path:
    """The PASCAL-Context data root: the folder holding ``trainval/``, ``labels.txt`` and
    ``VOCdevkit/VOC2010/JPEGImages``.

    Raises:
        DataError: the folder does not exist or lacks one of these (named, with the layout).
    """
    root = Path(root).expanduser()
    layout = ("VOCdevkit/VOC2010/JPEGImages/<id>.jpg, trainval/<id>.mat (the official "
              "trainval.tar.gz), labels.txt and ImageSets/<set>.txt")
    if not root.is_dir():
        raise DataError(f"PASCAL-Context root {root} does not exist; set paths.data_dir to the "
                        f"folder that holds {layout}.")
    lacking = [p for p in ("VOCdevkit/VOC2010/JPEGImages", "trainval", "labels.txt")
               if not (root / p).exists()]
    if lacking:
        raise DataError(f"PASCAL-Context root {root} lacks {lacking}; it must hold {layout}.")
    return root


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
            _check_task_file(self.label_dir, task)
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


def _check_task_file(folder: Path, task: str) -> None:
    marker = folder / TASK_FILE
    if not marker.is_file():
        raise DataError(f"{folder} has no {TASK_FILE}: it was not written by "
                        "python -m zss.data.convert_context; convert the label maps with it, "
                        "or set data.dataset.label_dir=null to read trainval/*.mat.")
    written = marker.read_text().strip()
    if written == task == "context60":
        raise DataError(f"{folder} holds context60 labels written by an older zss, which "
                        "voided unlabeled pixels (context60 now makes them background, as "
                        "ZS3Net): convert again into a new folder with --task context60, or "
                        "set data.dataset.label_dir=null.")
    if written != task_marker(task):
        raise DataError(f"{folder} holds {written.split()[0]} labels (its {TASK_FILE}), but "
                        f"the run asks for data.dataset.task={task}; convert again into another "
                        f"folder with --task {task}, or point data.dataset.label_dir there.")
