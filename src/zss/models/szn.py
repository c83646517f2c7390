"""SZNNet: a backbone plus the per-pixel heads of FCN-S, FCN-JE and SZN (docs/method.md, "The
network")."""

from __future__ import annotations

from torch import Tensor, nn

from zss.models.heads import PixelHead


class SZNNet(nn.Module):
    """Backbone + optional embedding (j), softmax (C, FCN-S) and seenmask (2) heads.

    Each head is a :class:`~zss.models.heads.PixelHead` built for the backbone
    (``PixelHead.for_backbone``: the FCN-32s ×32 deconvolution cropped at 19 for
    :class:`~zss.models.backbones.FCN32sBackbone`). The softmax and seenmask heads' 1×1 convs are
    zero-initialised like FCN's ``score_fr``; the embedding head keeps PyTorch's default init
    (the cosine loss needs non-zero vectors).

    Stage 2 (docs/method.md, "Stage 2: the seenmask") runs the frozen backbone under
    ``torch.no_grad()`` (its dropout active unless ``stage2.dropout=false``) and
    trains only the seenmask head: ``model.seenmask_logits(model.backbone(x), x.shape[-2:])``.

    Args:
        backbone: module with ``out_channels`` and ``output_stride`` attributes (and optionally
            ``upsample_offset``) mapping float32 (N, 3, H, W) to (N, out_channels, h, w).
        embed_dim: j, channels of the embedding head; None for no embedding head.
        num_classes: C, channels of the softmax head (FCN-S); None for none.
        seenmask: add the 2-channel seenmask head (channel 1 = seen, 0 = unseen).
        seenmask_learned_upsample: the seenmask head's ×stride upsampling is a trainable
            parameter initialised bilinear (the original SZN code's ``seenmask_upscore``)
            instead of the fixed bilinear kernel of the other heads.

    Raises:
        ValueError: if no head is requested or a size is < 1.
    """

    def __init__(
        self,
        backbone: nn.Module,
        embed_dim: int | None,
        num_classes: int | None = None,
        seenmask: bool = False,
        seenmask_learned_upsample: bool = False,
    ) -> None:
        super().__init__()
        if embed_dim is None and num_classes is None and not seenmask:
            raise ValueError("SZNNet needs at least one head (embed_dim, num_classes, seenmask)")
        for name, value in (("embed_dim", embed_dim), ("num_classes", num_classes)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 or None, got {value}")
        self.backbone = backbone
        self.embedding_head = (
            PixelHead.for_backbone(backbone, embed_dim) if embed_dim is not None else None
        )
        self.softmax_head = (
            PixelHead.for_backbone(backbone, num_classes, zero_init=True)
            if num_classes is not None
            else None
        )
        self.seenmask_head = (
            PixelHead.for_backbone(backbone, 2, zero_init=True,
                                   learned_upsample=seenmask_learned_upsample)
            if seenmask else None
        )

    def seenmask_logits(self, features: Tensor, out_hw: tuple[int, int]) -> Tensor:
        """Seenmask head only: fc7 features (N, c, h, w) -> logits (N, 2, H, W).

        Raises:
            RuntimeError: if the model has no seenmask head.
        """
        if self.seenmask_head is None:
            raise RuntimeError("this SZNNet was built without a seenmask head (seenmask=False)")
        return self.seenmask_head(features, out_hw)

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        """Run the backbone and every head.

        Args:
            x: float32 (N, 3, H, W) preprocessed images (see ``preprocessing_for``).

        Returns:
            dict with ``"features"`` (N, c, h, w) and, for the heads present,
            ``"embedding"`` (N, j, H, W), ``"logits"`` (N, C, H, W), ``"seenmask"``
            (N, 2, H, W); H, W equal the input's.
        """
        out_hw = (int(x.shape[-2]), int(x.shape[-1]))
        feats = self.backbone(x)
        out = {"features": feats}
        if self.embedding_head is not None:
            out["embedding"] = self.embedding_head(feats, out_hw)
        if self.softmax_head is not None:
            out["logits"] = self.softmax_head(feats, out_hw)
        if self.seenmask_head is not None:
            out["seenmask"] = self.seenmask_head(feats, out_hw)
        return out
