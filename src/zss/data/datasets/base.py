"""The base of list-driven segmentation datasets (VOC, SBD-converted VOC, PASCAL-Context).

A dataset is a list of ids, a folder of RGB JPEGs and, per id, a label map of class
indices (255 = void). Subclasses differ only in where a label comes from and how its values
map to the class list (:meth:`ListSegmentation.read_label_array`); the ids, the checks at
construction, image reading, the size and value checks and the class-presence cache live
here.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from zss.data.files import DataError, check_label_values, read_image, size_error
from zss.data.splits import IGNORE_INDEX

Transform = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
MAX_NAMED = 5
"""How many missing ids an error names (it gives the count of all)."""
_PRESENCE_VERSION = 2
"""Part of the presence-cache key; bumped when the scan checks more (2: images decoded)."""


def read_id_list(path: Path, hint: str = "") -> list[str]:
    """Ids of a list file, one per line (the first word of each non-empty line).

    Raises:
        DataError: a missing or empty list (``hint`` says which lists exist), or an id listed
            twice (named).
    """
    if not path.is_file():
        raise DataError(f"Image-set list {path} does not exist{hint}; choose an existing "
                        "list (data.train_set / data.test_set), or write the list (one image "
                        "id per line).")
    with open(path) as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise DataError(f"Image-set list {path} is empty; write one image id per line into "
                        "it, or choose another list (data.train_set / data.test_set).")
    seen: set[str] = set()
    twice = sorted({i for i in ids if i in seen or seen.add(i)})
    if twice:
        shown = ", ".join(twice[:MAX_NAMED]) + (", …" if len(twice) > MAX_NAMED else "")
        raise DataError(f"Image-set list {path} lists {len(twice)} id(s) more than once "
                        f"({shown}); every image must appear once: delete the repeated "
                        "lines.")
    return ids


def cached_scan(cache: Path | None, key: str, ids: list[str], field: str,
                scan: Callable[[], list], **extra: object) -> list:
    """One json value per id, computed once: read from the json file ``cache`` when it holds
    the same ``key`` and ``ids``, else ``scan()`` and written there atomically (with
    ``extra`` entries, for a human reader). None for ``cache``: always ``scan()``. An
    unreadable cache file is recomputed."""
    if cache is not None and cache.is_file():
        try:
            data = json.loads(cache.read_text())
            if data.get("key") == key and data.get("ids") == ids:
                return list(data[field])
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable cache: recompute
    values = scan()
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"key": key, **extra, "ids": ids, field: values}))
        os.replace(tmp, cache)
    return values


def file_stamp(path: Path) -> list[int]:
    """``[mtime_ns, size]`` of a file: its part of a cache key."""
    st = path.stat()
    return [st.st_mtime_ns, st.st_size]


class ListSegmentation(Dataset):
    """Images and label maps of the ids in a list file.

    Subclasses call ``super().__init__`` once ``image_dir`` is known and implement
    :meth:`label_path` and :meth:`read_label_array`.

    Args:
        ids: the image ids.
        list_file: the list they came from (named in messages, part of the cache key).
        image_set: a short name of the list (cache file names, ``repr``).
        image_dir: folder of ``<id>.jpg``.
        class_names: the class list; label values must be < ``len(class_names)`` or 255.
        class_set: the name of that class list (``"voc"``, ``"context33"``, …), recorded by
            runs.
        transform: optional ``(image uint8 (3, H, W), label uint8 (H, W)) -> (image, label)``.
        cache_dir: optional folder for the :meth:`class_presence` cache (json).
        missing_hint: what to do about missing files, ending that error (default: restore
            them or remove their ids from the list).

    Items are ``dict(image, label, id)``: without a transform, image is uint8 (3, H, W) RGB
    and label uint8 (H, W) with values in ``[0, C)`` ∪ {255}.

    Raises:
        DataError: ids whose JPEG or label is missing (up to five named, with the count),
            checked for every id at construction; reading an item raises it for a bad label
            or an image/label size mismatch.
    """

    def __init__(self, ids: Sequence[str], list_file: Path, image_set: str, image_dir: Path,
                 class_names: Sequence[str], class_set: str,
                 transform: Transform | None = None,
                 cache_dir: str | os.PathLike | None = None,
                 missing_hint: str = "Restore the files or remove these ids from the list.",
                 ) -> None:
        self.ids = list(ids)
        self.list_file = Path(list_file)
        self.image_set = image_set
        self.image_dir = Path(image_dir)
        self.class_names = tuple(class_names)
        self.class_set = class_set
        self.num_classes = len(self.class_names)
        self.transform = transform
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._presence: list[frozenset[int]] | None = None
        self._check_files(missing_hint)

    # -- what a subclass defines --
    def label_path(self, id_: str) -> Path:
        """The file the label of ``id_`` is read from."""
        raise NotImplementedError

    def read_label_array(self, id_: str) -> np.ndarray:
        """The label of ``id_`` as uint8 (H, W) class indices of :attr:`class_names`, 255 =
        void (not yet checked against the class count)."""
        raise NotImplementedError

    def cache_params(self) -> list:
        """What besides the files decides the labels (part of the presence-cache key)."""
        return []

    # -- construction checks --
    def _check_files(self, hint: str) -> None:
        for kind, path_of in (("JPEG", self.image_path), ("label", self.label_path)):
            missing = [i for i in self.ids if not os.path.exists(path_of(i))]
            if missing:
                shown = ", ".join(missing[:MAX_NAMED]) + (", …" if len(missing) > MAX_NAMED
                                                          else "")
                raise DataError(
                    f"{len(missing)} of {len(self.ids)} ids in {self.list_file} have no "
                    f"{kind} file (e.g. {path_of(missing[0])}; missing ids: {shown}). "
                    f"{hint}")

    # -- items --
    def image_path(self, id_: str) -> Path:
        return self.image_dir / f"{id_}.jpg"

    def __len__(self) -> int:
        return len(self.ids)

    def _checked_label(self, id_: str) -> np.ndarray:
        array = self.read_label_array(id_)
        # two elementwise passes over uint8 instead of a 256-bin histogram (~5x faster per
        # item); the histogram is made only to describe a bad label in the error
        if np.any((array >= self.num_classes) & (array != IGNORE_INDEX)):
            check_label_values(np.bincount(array.ravel(), minlength=256),
                               self.label_path(id_), self.num_classes)
        return array

    def load(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The untransformed pair: image uint8 (3, H, W) RGB, label uint8 (H, W).

        Raises:
            DataError: a bad label or an image/label size mismatch.
        """
        id_ = self.ids[index]
        image = read_image(self.image_path(id_))
        label = torch.from_numpy(self._checked_label(id_))
        if tuple(image.shape[-2:]) != tuple(label.shape):
            raise size_error(id_, tuple(image.shape[-2:]), tuple(label.shape),
                             self.image_path(id_), self.label_path(id_))
        return image, label

    def __getitem__(self, index: int) -> dict:
        image, label = self.load(index)
        if self.transform is not None:
            image, label = self.transform(image, label)
        return {"image": image, "label": label, "id": self.ids[index]}

    # -- class presence --
    def class_presence(self) -> list[frozenset[int]]:
        """The set of label values (void 255 excluded) of every image, in ``ids`` order.

        Reads every label and decodes every image once (a truncated or corrupt file, a bad
        label value or a size mismatch is found before training); with ``cache_dir`` the
        result is cached as json, keyed by the class set, the list and every label's and
        image's modification time and size. An image whose label is all void has the empty
        set (the stage filters leave it out).

        Raises:
            DataError: a bad image or label, or an image/label size mismatch (as for items).
        """
        if self._presence is not None:
            return self._presence
        cache, key = None, ""
        if self.cache_dir is not None:
            key = self._cache_key()
            cache = self.cache_dir / f"{self.class_set}_presence_{self.image_set}_{key[:16]}.json"
        values = cached_scan(cache, key, self.ids, "presence",
                             lambda: [sorted(self._scan(i)) for i in range(len(self.ids))],
                             list=str(self.list_file))
        self._presence = [frozenset(int(v) for v in p) for p in values]
        return self._presence

    def _scan(self, index: int) -> frozenset[int]:
        id_ = self.ids[index]
        array = self._checked_label(id_)
        # decoded whole, by the decoder training uses: a truncated or corrupt JPEG stops the
        # run here, before anything trains, not in the middle of an epoch
        height, width = read_image(self.image_path(id_)).shape[-2:]
        if (height, width) != array.shape:
            raise size_error(id_, (height, width), array.shape, self.image_path(id_),
                             self.label_path(id_))
        counts = np.bincount(array.ravel(), minlength=256)
        return frozenset(int(v) for v in np.flatnonzero(counts) if v != IGNORE_INDEX)

    def _cache_key(self) -> str:
        payload = [_PRESENCE_VERSION, type(self).__name__, self.class_set,
                   list(self.class_names), self.cache_params(), str(self.list_file.resolve()),
                   file_stamp(self.list_file)]
        payload += [[i, *file_stamp(self.label_path(i)), *file_stamp(self.image_path(i))]
                    for i in self.ids]
        return hashlib.sha256(json.dumps(payload).encode()).hexdigest()

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(image_set={self.image_set!r}, n={len(self)}, "
                f"class_set={self.class_set!r})")
