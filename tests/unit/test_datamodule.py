"""ZSSDataModule on tiny data: a dataset factory that transforms is refused; the seed draws
the held-out images."""

from __future__ import annotations

import functools

import pytest

from zss.data import (
    EvalTransform,
    VOCSegmentation,
    ZSSDataModule,
)


def test_datamodule_rejects_transforming_factory(tiny_voc, split_17_2_2):
    factory = functools.partial(VOCSegmentation, tiny_voc, transform=EvalTransform())
    dm = ZSSDataModule(factory, split_17_2_2)
    with pytest.raises(ValueError, match="transform=None"):
        dm.setup("fit")
