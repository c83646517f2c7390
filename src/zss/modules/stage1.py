"""Stage 1: FCN-32s + embedding head (FCN-JE) or softmax head (FCN-S) on train_seen images."""

from __future__ import annotations

import torch

from zss.metrics import confusion_matrix_metric, segmentation_scores
from zss.models.losses import cosine_embedding_loss, masked_cross_entropy, mse_embedding_loss
from zss.models.predict import cosine_scores, masked_argmax
from zss.modules.base import ZeroShotModule


class Stage1Module(ZeroShotModule):
    """Trains backbone + head on images whose labels are all train_seen (DESIGN §1).

    Loss (``loss``): ``"cosine"`` (1 − cos(v, s_label), the paper), ``"mse"`` (ablation) for
    FCN-JE; ``"ce"`` for FCN-S. Every loss is a mean over the valid pixels of the batch.

    Validation runs on held-out *training* images (seen classes only) and logs
    ``val/<variant>/miou`` with the prediction restricted to train_seen -- the checkpoint is
    chosen on it, never on the test split. Other arguments: :class:`ZeroShotModule`.

    Raises:
        ValueError: a loss that does not fit the variant.
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None = None,
                 class_embeddings: torch.Tensor | None = None, variant: str = "fcn_je",
                 loss: str = "cosine", optimizer=None, bias_lr_factor: float = 1.0) -> None:
        super().__init__(split, backbone, embed_dim, class_embeddings, variant,
                         seenmask=False, optimizer=optimizer, bias_lr_factor=bias_lr_factor)
        allowed = {"fcn_je": ("cosine", "mse"), "fcn_s": ("ce",)}[variant]
        if loss not in allowed:
            raise ValueError(f"model.loss='{loss}' does not fit variant '{variant}'; "
                             f"use one of {allowed}")
        self.val_matrix = confusion_matrix_metric(self.split.num_classes)

    def _loss(self, out: dict, labels: torch.Tensor) -> torch.Tensor:
        if self.hparams.variant == "fcn_s":
            return masked_cross_entropy(out["logits"], labels)
        fn = cosine_embedding_loss if self.hparams.loss == "cosine" else mse_embedding_loss
        return fn(out["embedding"], labels, self.class_embeddings)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self._loss(self.net(batch["image"]), batch["label"])
        self.log(f"train/{self.hparams.variant}/loss", loss, prog_bar=True,
                 batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        out = self.net(batch["image"])
        labels = batch["label"]
        self.log(f"val/{self.hparams.variant}/loss", self._loss(out, labels),
                 batch_size=labels.shape[0], sync_dist=True)
        seen = self.split.mask(self.split.train_seen).to(labels.device)
        scores = (out["logits"] if self.hparams.variant == "fcn_s"
                  else cosine_scores(out["embedding"], self.class_embeddings))
        self.val_matrix.update(masked_argmax(scores, seen), labels)

    def on_validation_epoch_end(self) -> None:
        s = segmentation_scores(self.val_matrix.compute())
        self.val_matrix.reset()
        v = self.hparams.variant
        self.log(f"val/{v}/miou", s["miou"], prog_bar=True)
        self.log(f"val/{v}/pixel_acc", s["pixel_acc"])

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return self.make_optimizer(self.net.named_parameters())
