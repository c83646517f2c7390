"""Stage 1: FCN-32s + embedding head (FCN-JE) or softmax head (FCN-S) on train_seen images."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric

from zss.data.batches import same_size_parts
from zss.data.splits import IGNORE_INDEX
from zss.evaluation.metrics import confusion_matrix_metric, segmentation_scores
from zss.inference.nearest import cosine_scores, masked_argmax
from zss.models.losses import LOSSES
from zss.stages.base import ZeroShotModule, make_optimizer, poly_schedule


def epochs_within_image_budget(max_epochs: int, num_train_images: int,
                               max_image_steps: int | None) -> int:
    """Stage-1 epochs under the original SZN code's early stop.

    The original (``trainer_fcn.py``, ``Trainer.train``) validates after each epoch ``e``
    (0-based) and then stops once ``e * len(train_loader) > max_image_steps`` (425,000 on
    VOC, 247,000 on Context, batch 1: images = steps), so that every split sees about as many
    image-steps as 50 epochs of the supervised set although its filtered training set is
    smaller. The first epoch with ``e * n > T`` is ``e = floor(T / n) + 1`` and is still
    trained, hence ``floor(T / n) + 2`` epochs at most.

    Args:
        max_epochs: the configured ``stage1.max_epochs`` (>= 0).
        num_train_images: images in one stage-1 training epoch (all ranks together), >= 1.
        max_image_steps: the budget ``T`` (``stage1.max_image_steps``), or None for no early
            stop.

    Returns:
        ``min(max_epochs, floor(T / n) + 2)``, or ``max_epochs`` when ``T`` is None.

    Raises:
        ValueError: ``num_train_images < 1`` or a negative budget.
    """
    if max_image_steps is None:
        return int(max_epochs)
    if num_train_images < 1 or max_image_steps < 0:
        raise ValueError(f"need num_train_images >= 1 and max_image_steps >= 0, got "
                         f"{num_train_images}, {max_image_steps}")
    return min(int(max_epochs), int(max_image_steps) // int(num_train_images) + 2)


class Stage1Module(ZeroShotModule):
    """Trains backbone + head on images whose labels are all train_seen (docs/method.md,
    "Stage 1: the embedding").

    Loss (``loss``): ``"cosine"`` (1 − cos(v, s_label), the paper), ``"mse"`` (ablation) for
    FCN-JE; ``"ce"`` for FCN-S. Every loss is a mean over the valid pixels of the batch.

    Validation runs on held-out *training* images (seen classes only), each at its own size,
    and logs ``val/<variant>/miou`` (dataset-level, the prediction restricted to train_seen:
    the checkpoint is chosen on it, never on the test split), ``val/<variant>/pixel_acc`` and
    ``val/<variant>/loss`` (the loss per valid pixel over all held-out pixels). Other
    arguments: :class:`ZeroShotModule`.

    Raises:
        ValueError: a loss that does not fit the variant.
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None = None,
                 class_embeddings: torch.Tensor | None = None, variant: str = "fcn_je",
                 loss: str = "cosine", optimizer=None,
                 embedding_source: str | None = None,
                 protocol: dict[str, str] | None = None) -> None:
        super().__init__(split, backbone, embed_dim, class_embeddings, variant,
                         seenmask=False, optimizer=optimizer, embedding_source=embedding_source,
                         protocol=protocol)
        allowed = [n for n, entry in LOSSES.items() if entry.variant == variant]
        if loss not in allowed:
            raise ValueError(f"model.loss='{loss}' does not fit variant '{variant}'; "
                             f"use one of {allowed}")
        self.criterion = LOSSES[loss]
        self.val_matrix = confusion_matrix_metric(self.split.num_classes)
        self.val_loss = MeanMetric()

    def _loss(self, out: dict, labels: torch.Tensor) -> torch.Tensor:
        if self.criterion.variant == "fcn_s":
            return self.criterion.fn(out["logits"], labels, None)
        return self.criterion.fn(out["embedding"], labels, self.class_embeddings)

    STAGE = "stage1"

    def allowed_classes(self) -> torch.Tensor:
        return self.split.mask(self.split.train_seen)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.check_batch(batch)
        loss = self._loss(self.net(batch["image"]), batch["label"])
        self.check_finite(loss, batch)
        self.log(f"train/{self.hparams.variant}/loss", loss, prog_bar=True,
                 batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.check_batch(batch)
        seen = self.split.mask(self.split.train_seen).to(batch["label"].device)
        for part in same_size_parts(batch):
            out = self.net(part["image"])
            labels = part["label"]
            # a per-valid-pixel mean, weighted by its pixels: the dataset-level mean
            self.val_loss.update(self._loss(out, labels), (labels != IGNORE_INDEX).sum())
            scores = (out["logits"] if self.hparams.variant == "fcn_s"
                      else cosine_scores(out["embedding"], self.class_embeddings))
            self.val_matrix.update(masked_argmax(scores, seen), labels)

    def on_validation_epoch_end(self) -> None:
        s = segmentation_scores(self.val_matrix.compute())
        v = self.hparams.variant
        self.log(f"val/{v}/loss", self.val_loss.compute())
        self.val_matrix.reset()
        self.val_loss.reset()
        self.log(f"val/{v}/miou", s["miou"], prog_bar=True)
        self.log(f"val/{v}/pixel_acc", s["pixel_acc"])

    def configure_optimizers(self):
        """The optimiser of ``optimizer``; with ``optimizer.poly_power`` also the poly
        schedule over the fit's optimiser steps (:func:`zss.stages.base.poly_schedule`)."""
        optimizer = make_optimizer(self.hparams.optimizer, self.net.named_parameters())
        power = self.hparams.optimizer.get("poly_power")
        if not power:
            return optimizer
        total = max(1, int(self.trainer.estimated_stepping_batches))
        return {"optimizer": optimizer, "lr_scheduler": {
            "scheduler": poly_schedule(optimizer, total, float(power)), "interval": "step"}}
