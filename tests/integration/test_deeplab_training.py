"""DeepLabv3+ in real ``Trainer.fit`` runs: stage 2 leaves every backbone parameter and
batch-norm buffer as stage 1 left them (dropout on, the original's setting, and validation
rounds switching modes), and stage 1 follows the poly schedule with the encoder at lr and
the rest at 10 x lr (ZS3Net's recipe)."""

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from tests.integration.test_stage2_training import SPLIT, Tiny
from zss.data.batches import pad_collate
from zss.stages import Stage1Module, Stage2Module

BACKBONE = {"name": "deeplabv3plus", "encoder": "resnet18", "fc_width": 16, "weights": None}
SGD_POLY = {"_target_": "torch.optim.SGD", "lr": 0.007, "momentum": 0.9, "weight_decay": 5e-4,
            "head_lr_factor": 10.0, "poly_power": 0.9}


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(accelerator="cpu", logger=False, enable_checkpointing=False,
                     enable_progress_bar=False, enable_model_summary=False, **kwargs)


class LrProbe(L.Callback):
    def __init__(self) -> None:
        self.lrs: list[list[float]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.lrs.append([g["lr"] for g in trainer.optimizers[0].param_groups])


def test_stage1_poly_schedule_and_stage2_keeps_every_backbone_buffer():
    torch.manual_seed(0)
    stage1 = Stage1Module(split=SPLIT, backbone=BACKBONE, embed_dim=4,
                          class_embeddings=torch.randn(21, 4), optimizer=SGD_POLY)
    stage1.leakage_guard = False  # stage 2's images (train_unseen pixels): a schedule test
    loader = DataLoader(Tiny(), batch_size=2, collate_fn=pad_collate)
    probe = LrProbe()
    _trainer(max_epochs=2, callbacks=[probe]).fit(stage1, loader)
    # 2 epochs x 2 steps: lr(T) = lr * (1 - T/4) ** 0.9 (ZS3Net lr_scheduler.py, poly)
    expected = [[0.007 * f, 0.07 * f] for f in [(1 - t / 4) ** 0.9 for t in range(4)]]
    assert [lr for lrs in probe.lrs for lr in lrs] == pytest.approx(sum(expected, []))
    assert int(stage1.net.backbone.encoder.bn1.num_batches_tracked) == 4  # trained in stage 1

    module = Stage2Module.from_stage1(stage1, optimizer={"_target_": "torch.optim.Adam",
                                                         "lr": 1e-1},
                                      dropout=True, train_upsampling=False)
    module.train()  # as Lightning or a user may: the batch norms stay in eval
    bn = module.net.backbone.encoder.bn1
    assert int(bn.num_batches_tracked) == 4 and not bn.training and module.net.seenmask_head.training
    frozen = {k: v.clone() for k, v in module.net.state_dict().items()
              if not k.startswith("seenmask_head.")}
    assert any(k.endswith("running_var") for k in frozen)
    _trainer(max_epochs=2).fit(module, loader, loader)  # validation rounds switch modes
    changed = [k for k, v in module.net.state_dict().items()
               if k in frozen and not torch.equal(v, frozen[k])]
    assert changed == []  # weights, running_mean/var, num_batches_tracked
    assert not module.net.seenmask_head.conv.weight.eq(0).all()  # the head trained
