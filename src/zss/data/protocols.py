"""Zero-shot benchmark protocols: what the training images may show, and how.

Zero-shot segmentation papers report on incompatible benchmarks; a number is comparable only
with numbers of the same protocol, so every run names one (the ``protocol`` config group,
recorded in ``metrics.json``):

- ``szn`` (the SZN paper: Rohan Doshi, "Zero-Shot Semantic Segmentation", senior thesis,
  Princeton University, 2018; its code: github.com/RohanDoshi2018/ZeroshotSemanticSegmentation):
  background is a seen class on VOC; a training image that shows a class its stage may not
  see is **dropped** (stage 1: any class but train_seen; stage 2: any unseen class U);
  evaluation over every class of the split.
- ``zs3`` (ZS3Net, Bucher et al., NeurIPS 2019; then JoEm, CSRL): VOC with 21 classes and
  PASCAL-Context with 60 (``context60``), background seen; K = 2 … 10 cumulative unseen
  classes (the split configs ``conf/split/zs3_*.yaml``, from ZS3Net's unseen lists); training images with any unseen pixel **dropped**. The image
  rule is the ``szn`` one: the protocols differ in their class sets and splits.
- ``spnet`` (SPNet, Xian et al., CVPR 2019; then CaGNet, ZegFormer): VOC's 20 object classes
  (class set ``voc20``), 15 seen / 5 unseen; background **ignored** (void) in training and
  evaluation; training images with unseen objects **kept**, their unseen pixels set to void.
  zss applies that rule to everything a stage may not see: stage 1 also keeps images with
  train_unseen objects, those pixels void (as U's are), so that the seenmask learns
  "unseen" from classes in the same situation as U at test time.

The runtime leakage guard (:func:`zss.data.filters.check_no_leakage`) holds under every
protocol: a pixel a stage may not see is either in no image of the stage (drop) or 255
(void) by the time a batch is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass

import torch

from zss.data.splits import IGNORE_INDEX, ClassSplit
from zss.runtime.errors import ConfigError

__all__ = ["PROTOCOLS", "Protocol", "ZS3_NAMES"]

PROTOCOLS = ("szn", "zs3", "spnet")
"""The protocol names (``conf/protocol/<name>.yaml``)."""
RULES = {"unseen_training_images": ("drop", "void"), "background": ("seen", "ignored")}

ZS3_NAMES = {"airplane": "aeroplane", "tv": "tvmonitor", "potted plant": "pottedplant"}
"""ZS3Net's spellings of class names in its unseen lists (``pascal_voc_unseen_classes.txt``)
that zss spells otherwise (VOC's names); every other name of both lists is zss's."""

@dataclass(frozen=True)
class Protocol:
    """A zero-shot benchmark protocol (the ``protocol`` config group).

    Attributes:
        name: ``"szn"``, ``"zs3"`` or ``"spnet"`` (:data:`PROTOCOLS`).
        unseen_training_images: ``"drop"`` (a training image that shows a class its stage
            may not see is not used) or ``"void"`` (it is used, those pixels set to 255).
        background: ``"seen"`` (a class of the split: if the class list has ``background``,
            it must be train_seen) or ``"ignored"`` (no class: the class list must not have
            it, its pixels are void, e.g. class set ``voc20``).

    Raises:
        ConfigError: an unknown name or rule value, naming the ``protocol.*`` key.
    """

    name: str = "szn"
    unseen_training_images: str = "drop"
    background: str = "seen"

    def __post_init__(self) -> None:
        problems = [] if self.name in PROTOCOLS else [
            f"protocol.name={self.name!r} (use one of {list(PROTOCOLS)})"]
        problems += [f"protocol.{key}={getattr(self, key)!r} (use one of {list(values)})"
                     for key, values in RULES.items() if getattr(self, key) not in values]
        if problems:
            raise ConfigError("unknown protocol setting(s): " + "; ".join(problems)
                              + ". Pick a protocol with protocol=szn|zs3|spnet.")

    def as_dict(self) -> dict[str, str]:
        """The protocol as plain data (``metrics.json``, checkpoints)."""
        return asdict(self)

    @classmethod
    def recorded(cls, data: dict[str, str] | None) -> Protocol:
        """The protocol a checkpoint or a ``metrics.json`` records (:meth:`as_dict`); None
        (written before zss recorded protocols, when ``szn`` was the only one) is ``szn``.

        Raises:
            ConfigError: unknown names or rule values (as the constructor).
        """
        return cls(**(data or {}))

    def check(self, split: ClassSplit) -> None:
        """Check that ``split`` fits the protocol's background rule.

        Raises:
            ConfigError: ``background: ignored`` with a class list that has background, or
                ``background: seen`` with background outside train_seen; naming the split
                and the fix.
        """
        has_bg = "background" in split.class_names
        if self.background == "ignored" and has_bg:
            raise ConfigError(
                f"protocol {self.name} ignores background (void in training and evaluation), "
                f"but split '{split.name}' has a background class: use a class set without "
                "it (split.classes=voc20 with data.dataset.task=voc20) or another protocol.")
        if self.background == "seen" and has_bg and "background" not in split.train_seen:
            raise ConfigError(
                f"protocol {self.name} counts background as a seen class, but split "
                f"'{split.name}' does not list it in train_seen: move it there, or use "
                "protocol=spnet (background ignored).")

    def hidden(self, split: ClassSplit, stage: str) -> list[int]:
        """Class indices the training images of ``stage`` may not show: stage 1 every class
        but train_seen, stage 2 the unseen classes U.

        Raises:
            ValueError: ``stage`` is not ``"stage1"`` or ``"stage2"``.
        """
        if stage == "stage1":
            return split.train_unseen_idx + split.unseen_idx
        if stage == "stage2":
            return split.unseen_idx
        raise ValueError(f"stage must be 'stage1' or 'stage2', got {stage!r}")

    def training_presence(self, presence: Sequence[AbstractSet[int]], split: ClassSplit,
                          stage: str) -> list[frozenset[int]]:
        """Per image, the classes ``stage`` gets to see: the presence sets as they are
        (``drop``: the stage filters then drop the images with hidden classes) or without
        the hidden classes (``void``: their pixels become 255, so an image left with no
        class carries nothing and is skipped).

        Args:
            presence: per image, the label values present (255 excluded).
            split, stage: as :meth:`hidden`.
        """
        if self.unseen_training_images == "drop":
            return [frozenset(p) for p in presence]
        hidden = set(self.hidden(split, stage))
        return [frozenset(p) - hidden for p in presence]

    def label_table(self, split: ClassSplit, stage: str) -> torch.Tensor | None:
        """The map applied to the training labels of ``stage`` before anything else: int64
        (256,), label value -> value (hidden classes -> 255, others unchanged) under
        ``void``; None under ``drop`` (labels unchanged)."""
        if self.unseen_training_images == "drop":
            return None
        table = torch.arange(256, dtype=torch.int64)
        table[self.hidden(split, stage)] = IGNORE_INDEX
        return table

    def describe(self, split: ClassSplit) -> str:
        """One phrase for the run log, e.g. ``protocol spnet (training images with hidden
        classes kept, those pixels void; background ignored)``; a class list of ``split``
        without background under ``background: seen`` (e.g. PASCAL-Context's 33 classes)
        says so instead of the rule."""
        images = ("dropped" if self.unseen_training_images == "drop"
                  else "kept, those pixels void")
        background = f"background {self.background}"
        if self.background == "seen" and "background" not in split.class_names:
            background = f"no background class in split '{split.name}'"
        return (f"protocol {self.name} (training images with classes their stage may not "
                f"see {images}; {background})")
