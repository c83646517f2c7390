"""Zero-shot leakage guards: which training images each stage may use (docs/running.md, "The
leakage guard").

- Stage 1 trains the embedding on images whose labelled pixels are **all** train_seen.
- Stage 2 trains the seenmask on images with **no** pixel of U (the test-only unseen classes);
  train_seen pixels are target 1, train_unseen pixels target 0.

Pure functions over per-image class-presence sets (``VOCSegmentation.class_presence()``);
the unseen classes never reach a loss or an image filter except to exclude images.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

import torch

from zss.data.splits import IGNORE_INDEX, ClassSplit, SplitError
from zss.runtime.errors import UserInputError

__all__ = ["LeakageError", "check_no_leakage", "holdout_split", "seenmask_target",
           "stage1_indices", "stage2_indices", "stage_parts"]

Presence = Sequence[AbstractSet[int]]


def _names(split: ClassSplit, idx: Sequence[int]) -> list[str]:
    return [split.class_names[i] for i in idx]


def stage1_indices(presence: Presence, split: ClassSplit) -> list[int]:
    """Images usable in stage 1: every labelled pixel is train_seen (void allowed).

    Images without any labelled pixel are skipped (they carry no training signal).

    Args:
        presence: per image, the set of label values present (255 excluded).
        split: the class split.

    Returns:
        Sorted image indices.

    Raises:
        SplitError: no image qualifies; names the split, the classes allowed and the number
            of images scanned.
    """
    allowed = set(split.train_seen_idx)
    return _some(
        [i for i, p in enumerate(presence) if p and set(p) <= allowed], presence, split, 1,
        f"stage 1 needs images whose labels are all train_seen {list(split.train_seen)} "
        f"(excluding any pixel of train_unseen {list(split.train_unseen)} or unseen "
        f"{list(split.unseen)}). Use a training set that has such images, or move classes "
        "into train_seen.")


def stage2_indices(presence: Presence, split: ClassSplit) -> list[int]:
    """Images usable in stage 2: no pixel of an unseen (U) class; train_seen and
    train_unseen pixels allowed. Images without any labelled pixel are skipped. Arguments,
    result and error (naming the excluded classes) as :func:`stage1_indices`."""
    excluded = set(split.unseen_idx)
    return _some(
        [i for i, p in enumerate(presence) if p and not (set(p) & excluded)], presence, split,
        2, f"stage 2 excludes every image with a pixel of unseen {list(split.unseen)} and "
        f"needs pixels of train_seen {list(split.train_seen)} / train_unseen "
        f"{list(split.train_unseen)}. Use a training set that has such images.")


def _some(keep: list[int], presence: Presence, split: ClassSplit, stage: int,
          rule: str) -> list[int]:
    """``keep``, or the :class:`SplitError` of a stage filter that left no image."""
    if not keep:
        raise SplitError(f"Split '{split.name}': no image for stage {stage} among the "
                         f"{len(presence)} scanned — {rule}")
    return keep


def seenmask_target(label: torch.Tensor, split: ClassSplit) -> torch.Tensor:
    """Stage-2 target of the seenmask head (docs/method.md, "Stage 2: the seenmask").

    Args:
        label: integer tensor (..., H, W), class indices and 255 (void).
        split: the class split.

    Returns:
        tensor of the label's shape and dtype (uint8 in the loader, int64 otherwise): 1 for
        train_seen pixels, 0 for train_unseen pixels, 255 for void.

    Raises:
        ValueError: a pixel of an unseen (U) class — such an image must never reach stage 2
            (the message names the class) — or a value that is no class and not 255.
    """
    table = torch.full((256,), -1, dtype=torch.int64)
    table[split.train_seen_idx] = 1
    table[split.train_unseen_idx] = 0
    table[IGNORE_INDEX] = IGNORE_INDEX
    if label.numel() == 0:
        return label.clone()
    lo, hi = int(label.min()), int(label.max())
    if lo < 0 or hi > 255:
        raise ValueError(f"seenmask_target: label values must be class indices or "
                         f"{IGNORE_INDEX}, got values in [{lo}, {hi}].")
    out = table.to(label.device)[label.long()]
    if bool((out < 0).any()):
        bad = sorted(int(v) for v in torch.unique(label[out < 0]))
        names = [split.class_names[v] if v < split.num_classes else f"<no class {v}>"
                 for v in bad]
        raise ValueError(
            f"seenmask_target (split '{split.name}'): label has pixels of {names} (values "
            f"{bad}), which are not train_seen/train_unseen. Unseen-class pixels must never "
            "reach stage 2: filter the training images with stage2_indices()."
        )
    return out.to(label.dtype)


def holdout_split(indices: Sequence[int], fraction: float,
                  seed: int) -> tuple[list[int], list[int]]:
    """Deterministically split training images into a training part and a held-out part
    (for checkpoint selection on training images, never the test split).

    Args:
        indices: the filtered training-image indices.
        fraction: share to hold out, 0 <= fraction < 1; round(fraction · n) images, at least
            1 when fraction > 0 and n > 1, never all of them.
        seed: random seed; the same (indices, fraction, seed) give the same split.

    Returns:
        (train, held_out), each sorted; train is non-empty whenever indices is.

    Raises:
        ValueError: fraction outside [0, 1).
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}.")
    items = sorted(indices)
    n = len(items)
    n_held = round(fraction * n)
    if fraction > 0 and n > 1:
        n_held = max(1, n_held)
    n_held = min(n_held, max(n - 1, 0))
    held = set(random.Random(seed).sample(items, n_held))
    return [i for i in items if i not in held], [i for i in items if i in held]


def stage_parts(stage1: Sequence[int], stage2: Sequence[int], fraction: float, seed: int,
                held: AbstractSet[int] | None = None) -> dict[str, list[int]]:
    """The training and held-out images of both stages (checkpoint selection and gate tuning
    on held-out *training* images, never the test split).

    One held-out set for both stages: ``fraction`` of the stage-1 images plus the same
    fraction of the images only stage 2 may use (:func:`holdout_split`, ``seed``), so that no
    image is trained on in one stage and validated on in the other; on small data stage 2
    still gets one held-out image of its own (never a stage-1 training image, whose features
    stage 1 fitted). With ``held`` (a stage-1 checkpoint's held-out images) those are held
    out instead and every other usable image is trained on.

    Args:
        stage1, stage2: the images each stage may use (:func:`stage1_indices`,
            :func:`stage2_indices`; stage 1's are stage 2's too).
        fraction, seed: as :func:`holdout_split`.
        held: image indices to hold out, or None to draw them.

    Returns:
        ``{"stage1_train", "stage1_val", "stage2_train", "stage2_val"}``: sorted indices;
        ``stage2_val`` holds ``stage1_val``.
    """
    only_s2 = sorted(set(stage2) - set(stage1))
    if held is not None:
        s1_train, s1_held = [i for i in stage1 if i not in held], [i for i in stage1 if i in held]
        extra_train = [i for i in only_s2 if i not in held]
        extra_held = [i for i in only_s2 if i in held]
    else:
        s1_train, s1_held = holdout_split(stage1, fraction, seed)
        extra_train, extra_held = holdout_split(only_s2, fraction, seed)
        if fraction > 0 and not (s1_held or extra_held) and only_s2:
            pick = random.Random(seed).choice(only_s2)
            extra_train, extra_held = [i for i in only_s2 if i != pick], [pick]
    return {"stage1_train": sorted(s1_train), "stage1_val": sorted(s1_held),
            "stage2_train": sorted(s1_train + extra_train),
            "stage2_val": sorted(s1_held + extra_held)}


class LeakageError(UserInputError, RuntimeError):
    """A training or validation batch holds a class its stage may not see."""


_STAGE_RULES = {
    "stage1": ("stage1_indices", "images whose labels are all train_seen"),
    "stage2": ("stage2_indices", "images without a pixel of an unseen (U) class"),
}


def check_no_leakage(labels: torch.Tensor, allowed: torch.Tensor, ids: Sequence[str],
                     stage: str, split: ClassSplit, optional: bool = True) -> None:
    """The runtime leakage guard: stop when a batch that a stage trains or validates on
    holds a class the stage may not see (the image filters above should have removed it).

    Args:
        labels: int (N, H, W) class indices, void = 255 (allowed).
        allowed: bool (C,), the classes ``stage`` may see: train_seen for stage 1, every
            class but U for stage 2.
        ids: the N image ids of the batch.
        stage: ``"stage1"`` or ``"stage2"`` (names the filter in the message).
        split: the class split (names the classes).
        optional: whether the ``leakage_guard`` key turns this check off (said in the
            message); False for the per-item check before a seenmask target is built.

    Raises:
        LeakageError: naming each image id, its forbidden classes and the filter that let
            it through. One host sync per call (the ``any``) when nothing is wrong.
    """
    lut = torch.zeros(256, dtype=torch.bool, device=labels.device)
    lut[: allowed.numel()] = allowed.to(labels.device)
    lut[IGNORE_INDEX] = True
    bad = ~lut[labels.long().clamp(0, 255)]
    if not bool(bad.any()):
        return
    found = []
    for i in range(labels.shape[0]):
        classes = torch.unique(labels[i][bad[i]]).tolist()
        if classes:
            found.append(f"{ids[i]}: {_names(split, classes)}")
    fn, rule = _STAGE_RULES[stage]
    raise LeakageError(
        f"leakage guard: a {stage.replace('stage', 'stage ')} batch holds classes that stage "
        f"may not see, in image(s) {'; '.join(found)}. The filter that chose these images, "
        f"zss.data.filters.{fn} ({rule}), let them through: a changed label file since the "
        "class presence was scanned, a custom dataset whose class_presence() disagrees with "
        "its labels, or a bug. The batch was not trained on; fix the data "
        "(or the filter) and run again. " + (
            "(leakage_guard=false turns this check off.)" if optional else
            "(This check, made on each item before its seenmask target is built, is always "
            "on: a seenmask target from such a label would teach U as 'unseen'.)"))
