"""Stage 2: the seenmask head on the frozen stage-1 network (docs/method.md, "Stage 2: the
seenmask")."""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric

from zss.data.batches import same_size_parts
from zss.data.splits import IGNORE_INDEX
from zss.evaluation.metrics import confusion_matrix_metric
from zss.models.losses import masked_cross_entropy
from zss.stages.base import ZeroShotModule, make_optimizer
from zss.stages.stage1 import Stage1Module


class Stage2Module(ZeroShotModule):
    """Trains only the seenmask head: per-pixel 2-class cross-entropy, target 1 for
    train_seen pixels, 0 for train_unseen pixels, void ignored (the batch key
    ``"seenmask"``). Backbone and embedding head are frozen (never optimised, features
    computed without gradients). Images with any U pixel never reach it (the data module's
    stage-2 filter).

    Two choices of the original SZN code (``trainer_seenmask.py``, ``train.py``) are
    explicit arguments, the original's behaviour by default:

    - ``dropout``: whether the frozen network's dropout (FCN-32s' ``Dropout2d(0.5)`` after
      fc6 and fc7) is active while the seenmask trains. The original calls ``model.train()``
      in its seenmask epochs, so it is (True). False keeps the frozen parts in eval mode.
      The mode is set at the start of every training epoch (Lightning itself never calls
      ``train()`` at the start of ``fit``; it only restores the modes around validation).
    - ``train_upsampling``: whether the head's ×32 transposed convolution is trained
      (True: the original's ``seenmask_upscore``, bilinear init, ``requires_grad=True``,
      optimised with the 1×1 conv) or stays the fixed bilinear kernel (False).

    Validation on held-out training images, each at its own size: ``val/seenmask/loss``
    (the monitored value: cross-entropy per valid pixel over all held-out pixels together)
    and ``val/seenmask/acc`` (fraction of those pixels decided right), both dataset-level.
    Test: FCN-JE, SZN and SZN-PS. Other arguments: :class:`ZeroShotModule`.

    Raises:
        ValueError: a variant other than ``fcn_je``, or a split without train_unseen classes
            (the seenmask would have no "unseen" pixel to learn from).
    """

    def __init__(self, split: dict, backbone: dict, embed_dim: int | None = None,
                 class_embeddings: torch.Tensor | None = None, variant: str = "fcn_je",
                 optimizer=None, embedding_source: str | None = None, dropout: bool = True,
                 train_upsampling: bool = True, protocol: dict[str, str] | None = None) -> None:
        if variant != "fcn_je":
            raise ValueError("the seenmask (stage 2) needs the joint-embedding model "
                             f"(model.variant=fcn_je), got '{variant}'")
        if not split.get("train_unseen"):
            raise ValueError(f"split '{split.get('name')}' has no train_unseen class: the "
                             "seenmask (stage 2) learns 'unseen' from train_unseen pixels")
        super().__init__(split, backbone, embed_dim, class_embeddings, variant,
                         seenmask=True, optimizer=optimizer, embedding_source=embedding_source,
                         seenmask_learned_upsample=train_upsampling, protocol=protocol)
        for name, p in self.net.named_parameters():
            p.requires_grad_(name.startswith("seenmask_head."))
        self.val_loss = MeanMetric()
        self.val_decisions = confusion_matrix_metric(2)

    @classmethod
    def from_stage1(cls, stage1: Stage1Module, optimizer, dropout: bool = True,
                    train_upsampling: bool = True) -> Stage2Module:
        """A stage-2 module whose backbone, embedding head, class vectors and provenance
        (held-out images included) are copies of ``stage1``'s; ``optimizer``, ``dropout``, ``train_upsampling`` as above."""
        h = stage1.hparams
        module = cls(split=h.split, backbone=h.backbone, embed_dim=h.embed_dim,
                     class_embeddings=stage1.class_embeddings.detach().clone(),
                     optimizer=optimizer, embedding_source=h.get("embedding_source"),
                     dropout=dropout, train_upsampling=train_upsampling,
                     protocol=h.get("protocol"))
        module.heldout = stage1.heldout
        missing, unexpected = module.net.load_state_dict(stage1.net.state_dict(), strict=False)
        if unexpected or any(not k.startswith("seenmask_head.") for k in missing):
            raise RuntimeError(f"stage-1 weights do not fit the stage-2 network: missing "
                               f"{missing}, unexpected {unexpected}")
        return module

    def on_train_epoch_start(self) -> None:
        self.train()

    def train(self, mode: bool = True) -> Stage2Module:
        """Training modes of stage 2 (any ``train()`` call, and the start of every training
        epoch, since Lightning restores modes around validation without calling it): the
        frozen parts in train mode (dropout on) only if ``dropout``; their batch norms
        always in eval mode, so that their running statistics (``running_mean``,
        ``running_var``, ``num_batches_tracked``) stay the stage-1 model's -- they are
        frozen like the weights (DeepLabv3+; FCN-32s has none); the seenmask head trains."""
        super().train(mode)
        if mode:
            self.net.train(self.hparams.dropout)
            for m in self.net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.eval()
            self.net.seenmask_head.train()
        return self

    def _logits(self, image: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            feats = self.net.backbone(image)
        return self.net.seenmask_logits(feats, image.shape[-2:])

    STAGE = "stage2"

    def allowed_classes(self) -> torch.Tensor:
        return ~self.split.mask(self.split.unseen)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        self.check_batch(batch)
        loss = masked_cross_entropy(self._logits(batch["image"]), batch["seenmask"])
        self.check_finite(loss, batch)
        self.log("train/seenmask/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self.check_batch(batch)
        for part in same_size_parts(batch):
            logits = self._logits(part["image"])
            target = part["seenmask"]
            self.val_loss.update(masked_cross_entropy(logits, target),
                                 (target != IGNORE_INDEX).sum())
            self.val_decisions.update(logits.argmax(1), target)

    def on_validation_epoch_end(self) -> None:
        hist = self.val_decisions.compute().double()
        self.log("val/seenmask/loss", self.val_loss.compute())
        self.log("val/seenmask/acc", hist.trace() / hist.sum())  # NaN without valid pixels
        self.val_loss.reset()
        self.val_decisions.reset()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return make_optimizer(self.hparams.optimizer, self.net.seenmask_head.named_parameters())
