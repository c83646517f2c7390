"""Class lists and zero-shot class splits, given by class **names** (docs/method.md, "The
problem and the split").

A split partitions a dataset's class list into three disjoint sets:

- ``train_seen``   -- classes whose pixels train the embedding (stage 1) and are the
  "seen" side of the seenmask (stage 2);
- ``train_unseen`` -- classes with training labels that stage 1 never sees; stage 2 uses
  their pixels as the "unseen" side of the seenmask;
- ``unseen`` (U)   -- classes never used in training, only their names (embeddings).

``seen`` (S) = train_seen ∪ train_unseen: every class with training labels, as the original
SZN code and the ZS3/SPNet protocols count it for ``miou_seen``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from zss.data.class_names import (  # noqa: F401  (re-exported: zss.data.splits.VOC_CLASSES)
    CLASS_LISTS,
    CONTEXT33_CLASSES,
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    VOC20_CLASSES,
    VOC_CLASSES,
)
from zss.runtime.errors import UserInputError

IGNORE_INDEX = 255
"""Void / ignore label value used everywhere (never -1)."""



class SplitError(UserInputError, ValueError):
    """A class split that names unknown classes, overlaps, misses classes or filters out
    every image."""


@dataclass(frozen=True)
class ClassSplit:
    """A zero-shot class split over an ordered class list.

    Attributes:
        name: split name, e.g. ``"voc_17_2_2"``.
        class_names: the dataset's classes in label-index order (label value ``i`` is
            ``class_names[i]``).
        train_seen, train_unseen, unseen: class names of the three disjoint sets; together
            they cover ``class_names`` exactly.

    Raises:
        SplitError: on an unknown name, a name in two sets, a repeated name, or a class of
            ``class_names`` in no set; the message names the classes at fault.
    """

    name: str
    class_names: tuple[str, ...]
    train_seen: tuple[str, ...]
    train_unseen: tuple[str, ...] = ()
    unseen: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for field in ("class_names", "train_seen", "train_unseen", "unseen"):
            object.__setattr__(self, field, tuple(getattr(self, field)))
        known = set(self.class_names)
        sets = {"train_seen": self.train_seen, "train_unseen": self.train_unseen,
                "unseen": self.unseen}  # fmt: skip
        problems = []
        for key, names in sets.items():
            unknown = [n for n in names if n not in known]
            if unknown:
                problems.append(f"{key} lists unknown classes {unknown}")
            dup = sorted({n for n in names if list(names).count(n) > 1})
            if dup:
                problems.append(f"{key} lists {dup} more than once")
        keys = list(sets)
        for a in range(3):
            for b in range(a + 1, 3):
                both = sorted(set(sets[keys[a]]) & set(sets[keys[b]]))
                if both:
                    problems.append(f"{both} are in both {keys[a]} and {keys[b]}")
        missing = [n for n in self.class_names if not any(n in s for s in sets.values())]
        if missing:
            problems.append(f"classes {missing} are in none of train_seen/train_unseen/unseen")
        if not self.train_seen:
            problems.append("train_seen is empty")
        if problems:
            raise SplitError(
                f"Invalid class split '{self.name}': " + "; ".join(problems)
                + f". The known classes are {list(self.class_names)}; fix the split "
                f"(conf/split/{self.name}.yaml or your split.* overrides) so that every class "
                "is in exactly one set."
            )

    # ---- indices -----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        """Number of classes C (label values 0 … C-1)."""
        return len(self.class_names)

    def indices(self, names: Iterable[str]) -> list[int]:
        """Label indices of ``names``, in ``class_names`` order."""
        wanted = set(names)
        return [i for i, n in enumerate(self.class_names) if n in wanted]

    @property
    def train_seen_idx(self) -> list[int]:
        return self.indices(self.train_seen)

    @property
    def train_unseen_idx(self) -> list[int]:
        return self.indices(self.train_unseen)

    @property
    def unseen_idx(self) -> list[int]:
        return self.indices(self.unseen)

    @property
    def seen(self) -> tuple[str, ...]:
        """S = train_seen ∪ train_unseen, in class-list order."""
        return tuple(self.class_names[i] for i in self.seen_idx)

    @property
    def seen_idx(self) -> list[int]:
        return self.indices(self.train_seen + self.train_unseen)

    def mask(self, names: Sequence[str]) -> torch.Tensor:
        """Boolean candidate mask over classes: shape (C,), True where the class is in
        ``names``."""
        m = torch.zeros(self.num_classes, dtype=torch.bool)
        m[self.indices(names)] = True
        return m

    def lookup(self, values: Sequence[str]) -> torch.Tensor:
        """Lookup table for label values 0…255 → 1 where the class is in ``values``.

        Returns:
            uint8 tensor of shape (256,); entry 255 (void) is 0.
        """
        table = torch.zeros(256, dtype=torch.uint8)
        table[self.indices(values)] = 1
        return table


def split_from_config(name: str, classes: str | Sequence[str], train_seen: Sequence[str],
                      train_unseen: Sequence[str] = (), unseen: Sequence[str] = ()) -> ClassSplit:
    """Build a :class:`ClassSplit` from a ``conf/split/*.yaml`` entry.

    Args:
        name: the split's name.
        classes: a key of :data:`CLASS_LISTS` (``"voc"``, ``"context33"``) or an explicit list.
        train_seen, train_unseen, unseen: class names.

    Raises:
        SplitError: an unknown class list key, or any error of :class:`ClassSplit`.
    """
    if isinstance(classes, str):
        if classes not in CLASS_LISTS:
            raise SplitError(f"Split '{name}': unknown class list '{classes}'; "
                             f"use one of {sorted(CLASS_LISTS)} or list the classes.")
        classes = CLASS_LISTS[classes]
    for key, names in (("train_seen", train_seen), ("train_unseen", train_unseen),
                       ("unseen", unseen)):
        if isinstance(names, str):
            raise SplitError(f"Split '{name}': {key} must be a list of class names, "
                             f"got the string '{names}'.")
    return ClassSplit(name, tuple(classes), tuple(train_seen), tuple(train_unseen),
                      tuple(unseen))
