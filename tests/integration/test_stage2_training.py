"""Stage 2 in a real ``Trainer.fit``: what is frozen, which modes the frozen network runs in,
and whether the seenmask's upsampling trains — for both settings of each choice."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from zss.data.batches import pad_collate
from zss.data.filters import seenmask_target
from zss.data.splits import VOC_CLASSES, ClassSplit
from zss.models import bilinear_kernel
from zss.stages import Stage1Module, Stage2Module

SPLIT = {"name": "s", "class_names": list(VOC_CLASSES), "train_seen": list(VOC_CLASSES[2:]),
         "train_unseen": [VOC_CLASSES[1]], "unseen": [VOC_CLASSES[0]]}


class Tiny(Dataset):
    """Four 16x16 images with train_seen and train_unseen pixels (no U: class 0)."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8, generator=g)
        self.labels = torch.randint(1, 21, (4, 16, 16), generator=g)
        self.split = ClassSplit(**SPLIT)

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> dict:
        return {"image": self.images[i], "label": self.labels[i], "id": f"tiny_{i}",
                "seenmask": seenmask_target(self.labels[i], self.split)}


class ModeProbe(L.Callback):
    """After every training step: the modes of the frozen network, and whether two forward
    passes of the batch's image give identical fc7 features (they do iff dropout is off)."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool, bool]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        net = pl_module.net
        with torch.no_grad():
            a, b = net.backbone(batch["image"]), net.backbone(batch["image"])
        dropout = net.backbone.fc6[2]
        assert isinstance(dropout, torch.nn.Dropout2d)
        self.seen.append((dropout.training, net.seenmask_head.training, torch.equal(a, b)))


@pytest.mark.parametrize(("dropout", "train_upsampling"), [(True, True), (False, False)])
def test_stage2_fit_dropout_and_upsampling_as_configured(dropout, train_upsampling):
    torch.manual_seed(0)
    stage1 = Stage1Module(split=SPLIT, backbone={"name": "fcn32s", "fc_width": 8,
                                                 "weights": None},
                          embed_dim=4, class_embeddings=torch.randn(21, 4),
                          optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    module = Stage2Module.from_stage1(stage1, optimizer={"_target_": "torch.optim.Adam",
                                                         "lr": 1e-1, "bias_lr_factor": 3.0},
                                      dropout=dropout, train_upsampling=train_upsampling)
    frozen = {k: v.clone() for k, v in module.net.state_dict().items()
              if not k.startswith("seenmask_head.")}
    probe = ModeProbe()
    loader = DataLoader(Tiny(), batch_size=2, collate_fn=pad_collate)
    trainer = L.Trainer(accelerator="cpu", max_epochs=2, logger=False, callbacks=[probe],
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)  # sanity validation on: modes restored
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=loader)

    assert len(probe.seen) == 4  # 2 batches x 2 epochs, each after a validation round
    assert all(seen == (dropout, True, not dropout) for seen in probe.seen), probe.seen
    for k, v in module.net.state_dict().items():  # backbone and embedding head never move
        if k in frozen:
            assert torch.equal(v, frozen[k]), k
    upsample = module.net.seenmask_head.upsample
    if train_upsampling:  # the original's seenmask_upscore: a parameter that trained
        assert isinstance(upsample.weight, torch.nn.Parameter)
        assert not torch.equal(upsample.weight.detach(), bilinear_kernel(2, 64))
    else:  # the fixed bilinear kernel, not a parameter at all
        assert "seenmask_head.upsample.weight" not in dict(module.net.named_parameters())
    assert "seenmask_head.conv.weight" in dict(module.net.named_parameters())
    assert not module.net.seenmask_head.conv.weight.eq(0).all()  # zero init has trained
    # stage 2's own optimiser config, bias rule included, reached the optimiser
    weights, biases = trainer.optimizers[0].param_groups
    head = module.net.seenmask_head
    assert [id(p) for p in biases["params"]] == [id(head.conv.bias)]
    assert biases["lr"] == pytest.approx(0.3) and weights["lr"] == pytest.approx(0.1)
    trained = {id(p) for p in weights["params"]}
    assert id(head.conv.weight) in trained
    assert (id(head.upsample.weight) in trained) == train_upsampling


def _small_stage2() -> Stage2Module:
    torch.manual_seed(0)
    stage1 = Stage1Module(split=SPLIT, backbone={"name": "small", "width": 4, "fc_width": 8},
                          embed_dim=4, class_embeddings=torch.randn(21, 4),
                          optimizer={"_target_": "torch.optim.Adam", "lr": 1e-3})
    module = Stage2Module.from_stage1(stage1, optimizer={"_target_": "torch.optim.Adam",
                                                         "lr": 1e-3})
    with torch.no_grad():  # a seenmask that is right on some pixels, wrong on others
        module.net.seenmask_head.conv.weight.normal_()
    return module


def test_stage2_validation_scores_are_dataset_level():
    module = _small_stage2()
    data = Tiny()
    data.labels[2] = 255  # the last batch has no valid pixel at all
    data.labels[1, :12] = 255  # and the first batch's images have different valid counts
    loader = DataLoader(torch.utils.data.Subset(data, [0, 1, 2]), batch_size=2,
                        collate_fn=pad_collate)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.validate(module, loader, verbose=False)
    # reference: every valid pixel of the split pooled, independently of the batches
    module.eval()
    correct = total = 0
    ce = 0.0
    with torch.no_grad():
        for i in range(3):
            item = data[i]
            image = module.preprocessing(item["image"][None])  # what the module does
            logits = module.net(image)["seenmask"][0]  # (2, H, W)
            valid = item["seenmask"] != 255
            target = item["seenmask"][valid]
            correct += int((logits.argmax(0)[valid] == target).sum())
            total += int(valid.sum())
            ce += float(torch.nn.functional.cross_entropy(
                logits.permute(1, 2, 0)[valid], target, reduction="sum"))
    assert 0 < correct < total
    metrics = trainer.callback_metrics
    assert float(metrics["val/seenmask/acc"]) == pytest.approx(correct / total, abs=1e-6)
    assert float(metrics["val/seenmask/loss"]) == pytest.approx(ce / total, rel=1e-5)
