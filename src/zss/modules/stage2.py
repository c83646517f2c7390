"""Stage 2: the seenmask head on the frozen stage-1 network (DESIGN §1)."""

from __future__ import annotations

import torch

from zss.models.losses import masked_cross_entropy
from zss.modules.base import ZeroShotModule
from zss.modules.stage1 import Stage1Module


class Stage2Module(ZeroShotModule):
    """Trains only the seenmask head: per-pixel 2-class cross-entropy, target 1 for
    train_seen pixels, 0 for train_unseen pixels, void ignored (the batch key
    ``"seenmask"``). Backbone and embedding head are frozen and kept in eval mode (no
    dropout). Images with any U pixel never reach it (the data module's stage-2 filter).

    Validation: loss and accuracy of the seenmask on held-out training images
    (``val/seenmask/loss``, ``val/seenmask/acc``). Test: FCN-JE, SZN and SZN-PS.
    Arguments: :class:`ZeroShotModule` (``seenmask`` is always True).
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None = None,
                 class_embeddings: torch.Tensor | None = None, variant: str = "fcn_je",
                 optimizer=None, bias_lr_factor: float = 1.0) -> None:
        if variant != "fcn_je":
            raise ValueError("the seenmask (stage 2) needs the joint-embedding model "
                             f"(model.variant=fcn_je), got '{variant}'")
        super().__init__(split, backbone, embed_dim, class_embeddings, variant,
                         seenmask=True, optimizer=optimizer, bias_lr_factor=bias_lr_factor)
        self._freeze()

    def _freeze(self) -> None:
        for name, p in self.net.named_parameters():
            p.requires_grad_(name.startswith("seenmask_head."))

    @classmethod
    def from_stage1(cls, stage1: Stage1Module, optimizer, bias_lr_factor: float = 1.0
                    ) -> Stage2Module:
        """A stage-2 module whose backbone and embedding head are copies of ``stage1``'s."""
        h = stage1.hparams
        module = cls(split=h.split, backbone=h.backbone, embed_dim=h.embed_dim,
                     class_embeddings=stage1.class_embeddings.detach().clone(),
                     optimizer=optimizer, bias_lr_factor=bias_lr_factor)
        missing, unexpected = module.net.load_state_dict(stage1.net.state_dict(), strict=False)
        if unexpected or any(not k.startswith("seenmask_head.") for k in missing):
            raise RuntimeError(f"stage-1 weights do not fit the stage-2 network: missing "
                               f"{missing}, unexpected {unexpected}")
        return module

    def train(self, mode: bool = True) -> Stage2Module:
        """Only the seenmask head ever trains: the frozen parts stay in eval mode (no
        dropout), whenever Lightning switches the module back to training."""
        super().train(mode)
        if mode:
            self.net.eval()
            self.net.seenmask_head.train()
        return self

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self.net.backbone(image)
        return self.net.seenmask_logits(feats, image.shape[-2:])

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = masked_cross_entropy(self._logits(batch["image"]), batch["seenmask"])
        self.log("train/seenmask/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        logits = self._logits(batch["image"])
        target = batch["seenmask"]
        n = target.shape[0]
        self.log("val/seenmask/loss", masked_cross_entropy(logits, target), batch_size=n,
                 sync_dist=True)
        valid = target != 255
        acc = (logits.argmax(1)[valid] == target[valid]).float().mean() if valid.any() else 0.0
        self.log("val/seenmask/acc", acc, batch_size=n, sync_dist=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.net.seenmask_head.named_parameters())
