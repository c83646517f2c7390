"""Shared LightningModule plumbing: building the network, the test step over every variant,
and the optimiser's parameter groups."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class
from torch import nn

from zss.data.splits import ClassSplit
from zss.models import FCN32sBackbone, SmallBackbone, SZNNet
from zss.modules.evaluation import ZeroShotEvaluator, predict_variants

BACKBONES: dict[str, Callable[..., nn.Module]] = {"fcn32s": FCN32sBackbone,
                                                  "small": SmallBackbone}


def build_backbone(cfg: dict[str, Any]) -> nn.Module:
    """Backbone from its config, **without** pretrained weights (run.py loads those once, so
    that restoring a checkpoint never downloads anything).

    Args:
        cfg: ``{"name": "fcn32s" | "small", **kwargs}``; ``weights`` is ignored here.

    Raises:
        ValueError: unknown backbone name.
    """
    cfg = dict(cfg)
    name = cfg.pop("name")
    cfg.pop("weights", None)
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (model.backbone.name); "
                         f"use one of {sorted(BACKBONES)}")
    return BACKBONES[name](**cfg)


def param_groups(named: Iterable[tuple[str, nn.Parameter]], lr: float,
                 bias_lr_factor: float) -> list[dict[str, Any]]:
    """Weights at ``lr``; biases at ``bias_lr_factor * lr`` with no weight decay when the
    factor is not 1 (the Caffe FCN solver: ``lr_mult: 2, decay_mult: 0`` on biases)."""
    weights, biases = [], []
    for name, p in named:
        if p.requires_grad:
            (biases if name.endswith("bias") else weights).append(p)
    if bias_lr_factor == 1.0:
        return [{"params": weights + biases}]
    return [{"params": weights},
            {"params": biases, "lr": lr * bias_lr_factor, "weight_decay": 0.0}]


class ZeroShotModule(L.LightningModule):
    """Base of the stage modules: holds the split, the class embeddings (a buffer, so that a
    checkpoint carries the vectors it was trained with) and the network, and evaluates every
    applicable variant in ``test_step``.

    Args:
        split: ``ClassSplit`` fields as a dict (``name``, ``class_names``, ``train_seen``,
            ``train_unseen``, ``unseen``).
        backbone: backbone config (see :func:`build_backbone`).
        embed_dim: embedding dimension j; None for FCN-S.
        class_embeddings: float (C, j) class vectors; None when restoring from a checkpoint
            (the buffer is then filled from the state dict).
        variant: ``"fcn_je"`` (joint embedding) or ``"fcn_s"`` (softmax over seen classes).
        seenmask: whether the network has the seenmask head (stage 2).
        optimizer: optimiser config as plain data, ``{"_target_": "torch.optim.Adam",
            "lr": 1e-5, ...}`` (the ``conf/optimizer`` group; ``_partial_`` is ignored). Kept
            as data so that a checkpoint loads without Hydra objects.
        bias_lr_factor: learning-rate multiplier for biases (2 in the Caffe SGD recipe).
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None,
                 class_embeddings: torch.Tensor | None, variant: str, seenmask: bool,
                 optimizer: dict[str, Any],
                 bias_lr_factor: float = 1.0) -> None:
        super().__init__()
        if variant not in ("fcn_je", "fcn_s"):
            raise ValueError(f"model.variant must be 'fcn_je' or 'fcn_s', got '{variant}'")
        self.save_hyperparameters(ignore=["class_embeddings"])
        self.split = ClassSplit(**split)
        c = self.split.num_classes
        if variant == "fcn_je":
            if class_embeddings is None:
                class_embeddings = torch.zeros(c, embed_dim)
            class_embeddings = torch.as_tensor(class_embeddings, dtype=torch.float32)
            if class_embeddings.shape != (c, embed_dim):
                raise ValueError(f"class embeddings have shape {tuple(class_embeddings.shape)}"
                                 f", expected ({c}, {embed_dim}) for split '{self.split.name}'"
                                 f" with j = {embed_dim}")
            self.register_buffer("class_embeddings", class_embeddings)
        else:
            self.class_embeddings = None
        self.net = SZNNet(build_backbone(backbone),
                          embed_dim=embed_dim if variant == "fcn_je" else None,
                          num_classes=c if variant == "fcn_s" else None, seenmask=seenmask)
        self.test_variants = self._variants()
        self.evaluator = ZeroShotEvaluator(self.split, self.test_variants)
        self.test_results: tuple[dict, list] | None = None

    def _variants(self) -> tuple[str, ...]:
        if self.hparams.variant == "fcn_s":
            return ("fcn_s",)
        return ("fcn_je", "szn", "szn_ps") if self.hparams.seenmask else ("fcn_je", "szn_ps")

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.net(image)

    # ---- test: every variant from one forward pass -------------------------------------
    def on_test_epoch_start(self) -> None:
        self.evaluator.reset()

    def test_step(self, batch: dict, batch_idx: int) -> None:
        out = self.net(batch["image"])
        preds = predict_variants(out, batch["label"], self.class_embeddings, self.split,
                                 self.test_variants)
        self.evaluator.update(preds, batch["label"], out.get("seenmask"))

    def on_test_epoch_end(self) -> None:
        scores, table = self.evaluator.compute()
        self.test_results = (scores, table)
        flat = {f"test/{v}/{k}": val for v, s in scores.items() for k, val in s.items()}
        self.log_dict(flat, sync_dist=False)  # already summed across ranks by torchmetrics

    def make_optimizer(self, named: Iterable[tuple[str, nn.Parameter]]) -> torch.optim.Optimizer:
        kwargs = {k: v for k, v in self.hparams.optimizer.items() if not k.startswith("_")}
        optimizer_cls = get_class(self.hparams.optimizer["_target_"])
        return optimizer_cls(param_groups(named, kwargs["lr"], self.hparams.bias_lr_factor),
                             **kwargs)
