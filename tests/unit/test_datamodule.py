"""ZSSDataModule on tiny data: a dataset factory that transforms is refused; the seed draws
the held-out images."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from zss.data import EvalTransform, VOCSegmentation, ZSSDataModule


def test_datamodule_rejects_transforming_factory(tiny_voc, split_17_2_2):
    factory = functools.partial(VOCSegmentation, tiny_voc, transform=EvalTransform())
    dm = ZSSDataModule(factory, split_17_2_2)
    with pytest.raises(ValueError, match="transform=None"):
        dm.setup("fit")


REPO = Path(__file__).resolve().parents[2]


def test_seed_changes_the_held_out_images():
    from omegaconf import OmegaConf

    from zss.data import SyntheticSegmentation, ZSSDataModule
    from zss.data.splits import split_from_config

    split = split_from_config(**OmegaConf.load(REPO / "conf" / "split" / "voc_17_2_2.yaml"))
    vectors = torch.randn(21, 8, generator=torch.Generator().manual_seed(0))
    parts = {}
    for seed in (12345, 7):
        dm = ZSSDataModule(
            lambda image_set, **kw: SyntheticSegmentation(
                image_set, appearance=vectors, class_names=split.class_names,
                lengths={"train": 64, "test": 4}, size=32, **kw),
            split,
            train_set="train", test_set="test", holdout_fraction=0.1, seed=seed)
        dm.setup("fit")
        parts[seed] = dm.ids("stage1_val")
    assert len(parts[7]) == len(parts[12345]) >= 2 and set(parts[7]) != set(parts[12345])
