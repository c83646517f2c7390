"""PASCAL-Context's label maps (Mottaghi et al., CVPR 2014): ``labels.txt``, the
``trainval/<id>.mat`` LabelMaps, and the class sets as lookup tables by name.

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

Three names of the 59-class list differ in ``labels.txt``: ``diningtable`` is ``table``,
``bedcloth`` is ``bedclothes``, ``clothes`` is ``cloth`` (:data:`LABELS_TXT_NAMES`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.io import loadmat

from zss.data.files import DataError
from zss.data.splits import CLASS_LISTS, IGNORE_INDEX

__all__ = ["CONTEXT_TASKS", "LABELS_TXT_NAMES", "TASK_FILE", "check_task_file",
           "context_label_table", "outside_class_set", "read_context_labels",
           "read_label_map", "resolve_context_root", "task_marker"]

CONTEXT_TASKS = ("context33", "context59", "context60")
"""The class sets a Context run may name (``data.dataset.task``)."""
LABELS_TXT_NAMES = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
"""Class-set names whose ``labels.txt`` entry is spelled otherwise."""
TASK_FILE = "zss_task.txt"
"""Written by the converter into its output folder: the class set of the PNGs there
(:func:`task_marker`)."""
_OTHER, _UNLABELED = 1, 2  # bits of an image's outside_class_set flags
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


def check_task_file(folder: Path, task: str) -> None:
    """Refuse a folder of converted PNGs that is not of class set ``task`` (its
    :data:`TASK_FILE`), or a context60 folder an older zss wrote (it voided unlabeled pixels).

    Raises:
        DataError: naming the folder, what it holds and the command that converts again.
    """
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
