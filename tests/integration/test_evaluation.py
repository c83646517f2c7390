"""Evaluation does not depend on how test images are batched (real ``Trainer.test`` on the
shared VOC sample)."""

import functools

import lightning as L
import pytest
import torch

from zss.data import VOCSegmentation, ZSSDataModule, split_from_config
from zss.data.splits import VOC_CLASSES
from zss.stages import Stage1Module

SPLIT = dict(name="voc_17_2_2", classes="voc",
             train_seen=[c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep",
                                                               "train")],
             train_unseen=["aeroplane", "horse"], unseen=["sheep", "train"])


@pytest.mark.parametrize("backbone", [{"name": "small", "width": 4, "fc_width": 8},
                                      {"name": "fcn32s", "fc_width": 8, "weights": None}])
def test_batch_size_does_not_change_the_confusion_matrix(voc_sample, tmp_path, backbone):
    # the sample's val images have different sizes: batches of 4 are zero-padded, which
    # changes a CNN's predictions at real pixels (receptive fields, GroupNorm statistics)
    split = split_from_config(**SPLIT)
    torch.manual_seed(0)
    module = Stage1Module(split=dict(name=split.name, class_names=list(split.class_names),
                                     train_seen=list(split.train_seen),
                                     train_unseen=list(split.train_unseen),
                                     unseen=list(split.unseen)),
                          backbone=backbone, embed_dim=4, class_embeddings=torch.randn(21, 4),
                          optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    dataset = functools.partial(VOCSegmentation, voc_sample, cache_dir=tmp_path)
    matrices, images = [], []
    for batch_size in (1, 4):
        dm = ZSSDataModule(dataset, split, test_set="val",
                           eval_batch_size=batch_size, max_short_side=48)
        trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                            limit_test_batches=8 // batch_size)  # the same 8 images
        trainer.test(module, datamodule=dm, verbose=False)
        matrices.append({v: h.clone() for v, h in module.test_result.matrices.items()})
        images.append(module.test_result.images)
    assert images == [8, 8]
    sizes = {tuple(dm.test_dataloader().dataset[i]["label"].shape) for i in range(8)}
    assert len(sizes) > 1  # the batches of 4 were padded
    for v in matrices[0]:
        assert matrices[0][v].sum() > 0 and torch.equal(matrices[0][v], matrices[1][v]), v
