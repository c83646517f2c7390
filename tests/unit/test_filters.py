"""The zero-shot leakage filters (zss.data.filters): the stage-1 and stage-2 image filters,
the seenmask target, the held-out split, and the runtime check of a batch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from zss.data import (
    IGNORE_INDEX,
    VOC_CLASSES,
    SplitError,
    holdout_split,
    seenmask_target,
    split_from_config,
    stage1_indices,
    stage2_indices,
)
from zss.data.filters import LeakageError, check_no_leakage


# ---- filters -----------------------------------------------------------------------------
def test_stage_filters_synthetic(split_17_2_2):
    sp = split_17_2_2
    bg, aero, bird, horse, sheep, train = (VOC_CLASSES.index(c) for c in
                                           ("background", "aeroplane", "bird", "horse",
                                            "sheep", "train"))
    presence = [
        frozenset({bg, bird}),          # 0: seen only
        frozenset({bg, aero}),          # 1: train_unseen
        frozenset({bg, sheep}),         # 2: unseen
        frozenset({bird}),              # 3: seen only
        frozenset(),                    # 4: all void
        frozenset({horse, train}),      # 5: train_unseen + unseen
        frozenset({bg, bird, horse}),   # 6: seen + train_unseen
    ]
    assert stage1_indices(presence, sp) == [0, 3]
    assert stage2_indices(presence, sp) == [0, 1, 3, 6]


def test_filter_leaving_nothing_raises(split_17_2_2):
    sheep, aero = VOC_CLASSES.index("sheep"), VOC_CLASSES.index("aeroplane")
    with pytest.raises(SplitError) as err:
        stage1_indices([frozenset({0, aero}), frozenset({sheep})], split_17_2_2)
    msg = str(err.value)
    assert "voc_17_2_2" in msg and "2 scanned" in msg and "aeroplane" in msg and "sheep" in msg
    with pytest.raises(SplitError) as err:
        stage2_indices([frozenset({sheep})] * 3, split_17_2_2)
    msg = str(err.value)
    assert "stage 2" in msg and "3 scanned" in msg and "['sheep', 'train']" in msg


def test_seenmask_target(split_17_2_2):
    sp = split_17_2_2
    aero, horse, bird, sheep = (VOC_CLASSES.index(c) for c in ("aeroplane", "horse", "bird",
                                                                "sheep"))
    label = torch.tensor([[[0, aero, bird], [horse, IGNORE_INDEX, 0]]])
    out = seenmask_target(label, sp)
    assert out.dtype == torch.int64 and out.shape == label.shape
    assert out.tolist() == [[[1, 0, 1], [0, IGNORE_INDEX, 1]]]
    small = seenmask_target(label.to(torch.uint8), sp)  # the loader's labels: uint8 stays
    assert small.dtype == torch.uint8 and small.tolist() == out.tolist()
    with pytest.raises(ValueError, match="sheep"):
        seenmask_target(torch.tensor([[0, sheep]]), sp)
    with pytest.raises(ValueError):
        seenmask_target(torch.tensor([[0, 30]]), sp)


def test_holdout_split():
    idx = list(range(0, 40, 2))
    train, held = holdout_split(idx, 0.1, seed=3)
    assert len(held) == 2 and len(train) == 18
    assert sorted(train + held) == idx and not set(train) & set(held)
    assert holdout_split(idx, 0.1, seed=3) == (train, held)
    assert holdout_split(idx, 0.1, seed=4) != (train, held)
    assert holdout_split([5, 7], 0.01, 0)[1] != []       # at least one held out
    assert holdout_split([5, 7], 0.9, 0)[0] != []         # train never empty
    assert holdout_split([5], 0.5, 0) == ([5], [])
    assert holdout_split(idx, 0.0, 0) == (idx, [])
    with pytest.raises(ValueError):
        holdout_split(idx, 1.0, 0)


REPO = Path(__file__).resolve().parents[2]


def _split():
    from omegaconf import OmegaConf
    return split_from_config(**OmegaConf.load(REPO / "conf" / "split" / "voc_17_2_2.yaml"))


def test_check_no_leakage_names_images_and_classes():
    split = _split()
    labels = torch.zeros(2, 4, 4, dtype=torch.int64)
    labels[0, 0, 0] = 255
    labels[1, 1, 1] = split.class_names.index("sheep")
    allowed = split.mask(split.train_seen)
    check_no_leakage(labels[:1], allowed, ["a"], "stage1", split)  # void and seen: fine
    with pytest.raises(LeakageError, match=r"image\(s\) b: \['sheep'\].*stage1_indices"):
        check_no_leakage(labels, allowed, ["a", "b"], "stage1", split)
    labels[1, 1, 1] = split.class_names.index("horse")  # train_unseen: fine in stage 2 only
    check_no_leakage(labels, ~split.mask(split.unseen), ["a", "b"], "stage2", split)
    with pytest.raises(LeakageError, match=r"\['horse'\]"):
        check_no_leakage(labels, allowed, ["a", "b"], "stage1", split)
