"""The loader delivers uint8 images and labels; the stage modules normalise them on the
device with their own backbone's preprocessing (a checkpoint's: docs/method.md, "Recipes"),
in a real Trainer.fit; channels_last on a CPU."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf

from zss.data import SyntheticSegmentation, ZSSDataModule
from zss.data.splits import split_from_config
from zss.models import CAFFE_PREPROCESSING, IMAGENET_PREPROCESSING
from zss.stages import Stage1Module

CONF = Path(__file__).resolve().parents[2] / "conf"


class Batches(L.Callback):
    """The batches the training step receives (after the transfer hook)."""

    def __init__(self) -> None:
        self.seen: list[dict] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.seen.append({k: v.clone() if isinstance(v, torch.Tensor) else v
                          for k, v in batch.items()})


def _fit(backbone: dict, channels_last: bool = False) -> tuple[Stage1Module, ZSSDataModule,
                                                               Batches]:
    split = split_from_config(**OmegaConf.load(CONF / "split" / "voc_17_2_2.yaml"))
    vectors = torch.randn(21, 8, generator=torch.Generator().manual_seed(0))
    dm = ZSSDataModule(
        lambda image_set, **kw: SyntheticSegmentation(
            image_set, appearance=vectors, class_names=split.class_names,
            lengths={"train": 24, "test": 2}, size=32, **kw),
        split, train_set="train", test_set="test", holdout_fraction=0.1, seed=0)
    torch.manual_seed(0)
    module = Stage1Module(split={"name": split.name, "class_names": list(split.class_names),
                                 "train_seen": list(split.train_seen),
                                 "train_unseen": list(split.train_unseen),
                                 "unseen": list(split.unseen)},
                          backbone=backbone, embed_dim=8, class_embeddings=vectors,
                          optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    module.channels_last = channels_last
    probe = Batches()
    L.Trainer(accelerator="cpu", max_steps=3, logger=False, enable_checkpointing=False,
              enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
              callbacks=[probe]).fit(module, datamodule=dm)
    return module, dm, probe


@pytest.mark.parametrize(("fmt", "expected"), [(None, IMAGENET_PREPROCESSING),
                                               ("caffe", CAFFE_PREPROCESSING)])
def test_training_batches_are_normalised_with_the_weights_preprocessing(fmt, expected):
    weights = None if fmt is None else "/nowhere/vgg16_caffe.pth"  # never read by the module
    backbone = {"name": "small", "width": 4, "fc_width": 8, "weights": weights,
                "weights_format": fmt}
    module, dm, probe = _fit(backbone)
    assert module.preprocessing == expected
    assert len(probe.seen) == 3
    raw = dm._train_base
    for batch in probe.seen:
        image, label = batch["image"], batch["label"]
        assert image.dtype == torch.float32 and label.dtype == torch.int64
        item = raw[raw.ids.index(batch["id"][0])]
        # batch 1, full images: the transform only flips; the CPU normalisation of the raw
        # image (or of its mirror) is what the step got, bit for bit
        flipped = not torch.equal(label[0], item["label"].long())
        want = expected(item["image"].flip(-1) if flipped else item["image"])
        assert torch.equal(image[0], want)
        assert torch.equal(label[0], (item["label"].flip(-1) if flipped
                                      else item["label"]).long())


def test_channels_last_on_the_cpu():
    module, _, probe = _fit({"name": "small", "width": 4, "fc_width": 8, "weights": None},
                            channels_last=True)
    image = probe.seen[0]["image"]
    assert image.is_contiguous(memory_format=torch.channels_last)
    assert not image.is_contiguous()  # a real (N, 3, H, W) batch: the formats differ
    conv = next(m for m in module.net.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
