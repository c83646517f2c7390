"""PASCAL-Context (Mottaghi et al., CVPR 2014) segmentation, with its class set chosen by name
(DESIGN §2, §4).

Layout on disk (the VOC2010 images, the official ``trainval.tar.gz`` label maps and their
``labels.txt``; the layout of the shared ``pascal-context-sample``)::

    <root>/
        VOCdevkit/VOC2010/JPEGImages/<id>.jpg
        trainval/<id>.mat                  LabelMap: uint16 (H, W), 1-based indices into
                                           labels.txt (459 classes), 0 = unlabeled
        labels.txt                         "N: name" lines, N = 1 … 459
        ImageSets/<set>.txt                one id per line (official: train 4,998, val 5,105)

Class sets (``task``), each a mapping **by name** from the 459 classes of ``labels.txt``:

- ``context33``: the original SZN code's 33 classes (the 20 VOC object classes + sky, grass,
  ground, road, building, tree, water, mountain, wall, floor, track, keyboard, ceiling); no
  background. Pixels of the other 426 classes and unlabeled pixels are void (255). The
  original code instead dropped every image with such a pixel; zss keeps the image and voids
  those pixels, so that the training set is not cut to the few images made only of these 33
  classes, and no pixel of another class is ever taught as one of them.
- ``context59``: the 59-class task of ``classes-59.txt`` (without background); every other
  pixel is void.
- ``context60``: the same 59 classes plus ``background`` (index 0) for every other labelled
  pixel (the ZS3 protocol's 60 classes); unlabeled pixels are void.

Three names of the 59-class list differ in ``labels.txt``: ``diningtable`` is ``table``,
``bedcloth`` is ``bedclothes``, ``clothes`` is ``cloth`` (:data:`LABELS_TXT_NAMES`). The label
maps can also be converted once into index PNGs (``python -m zss.data.convert_context``), so
that training never parses ``.mat`` files; the dataset reads either.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from zss.data.base import ListSegmentation, Transform, read_id_list
from zss.data.files import DataError, read_label_array
from zss.data.splits import CLASS_LISTS, IGNORE_INDEX

__all__ = ["CONTEXT_TASKS", "LABELS_TXT_NAMES", "TASK_FILE", "ContextSegmentation",
           "context_label_table", "read_context_labels", "read_label_map",
           "resolve_context_root"]

CONTEXT_TASKS = ("context33", "context59", "context60")
"""The class sets a Context run may name (``data.dataset.task``)."""
LABELS_TXT_NAMES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
"""Class-set names whose ``labels.txt`` entry is spelled otherwise."""
TASK_FILE = "zss_task.txt"
"""Written by the converter into its output folder: the class set of the PNGs there."""
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
        uint8 (len(names) + 1,): entry 0 (unlabeled) is 255; entry i is the index in
        ``CLASS_LISTS[task]`` of class ``names[i - 1]``, else 255 (``context60``: 0 =
        background for every other labelled class).

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
    if task == "context60":
        table[1:] = classes.index("background")
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
        transform: optional joint transform (see :class:`~zss.data.base.ListSegmentation`).
        cache_dir: optional folder for the class-presence cache.
        label_dir: None to read ``trainval/<id>.mat`` and map it by name on the fly; or the
            folder of index PNGs written for the same task by
            ``python -m zss.data.convert_context`` (absolute, or relative to the root).

    Items: ``dict(image uint8 (3, H, W), label uint8 (H, W) in [0, C) ∪ {255}, id)``.

    Raises:
        DataError: a bad root, list or label file, missing JPEGs or labels (named), or a
            label folder converted for another task.
        ValueError: an unknown task (names the valid ones).
    """

    def __init__(self, root: str | os.PathLike, image_set: str = "train",
                 task: str | None = None, transform: Transform | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 label_dir: str | os.PathLike | None = None) -> None:
        if task is None:
            raise DataError("PASCAL-Context needs its class set named: set data.dataset.task "
                            f"to one of {list(CONTEXT_TASKS)} (the original SZN code uses "
                            "context33, ZS3 context60).")
        if task not in CONTEXT_TASKS:
            raise DataError(f"unknown PASCAL-Context class set data.dataset.task={task!r}; "
                            f"use one of {list(CONTEXT_TASKS)}")
        self.root = resolve_context_root(root)
        self.task = task
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

    def label_path(self, id_: str) -> Path:
        if self.label_dir is None:
            return self.root / "trainval" / f"{id_}.mat"
        return self.label_dir / f"{id_}.png"

    def read_label_array(self, id_: str) -> np.ndarray:
        if self.label_dir is not None:
            return read_label_array(self.label_path(id_))
        label_map = read_label_map(self.label_path(id_))
        if int(label_map.max(initial=0)) >= len(self.table):
            raise DataError(f"{self.label_path(id_)} holds value {int(label_map.max())}, but "
                            f"labels.txt has {len(self.table) - 1} classes")
        return self.table[label_map]

    def cache_params(self) -> list:
        return [self.task, None if self.label_dir is None else str(self.label_dir)]


def _check_task_file(folder: Path, task: str) -> None:
    marker = folder / TASK_FILE
    if not marker.is_file():
        raise DataError(f"{folder} has no {TASK_FILE}: it was not written by "
                        "python -m zss.data.convert_context; convert the label maps with it, "
                        "or set data.dataset.label_dir=null to read trainval/*.mat.")
    written = marker.read_text().strip()
    if written != task:
        raise DataError(f"{folder} holds {written} labels (its {TASK_FILE}), but the run asks "
                        f"for data.dataset.task={task}; convert again into another folder with "
                        f"--task {task}, or point data.dataset.label_dir there.")
