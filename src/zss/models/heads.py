"""Per-pixel heads: 1×1 conv on the backbone features, frozen bilinear upsampling, crop.

FCN-32s ``score_fr`` + ``upscore`` + ``crop`` (Long et al.; docs/method.md, "The network" and
"Recipes"). Used for the
embedding head (j channels), the seenmask head (2) and the FCN-S softmax head (C).
"""

from __future__ import annotations

from torch import Tensor, nn

from zss.models.upsample import BilinearUpsample, InterpolateUpsample, LearnedBilinearUpsample


class PixelHead(nn.Module):
    """1×1 conv ``in_channels -> out_channels``, then ``upsample(·, out_hw)``.

    Args:
        in_channels: channels of the backbone features.
        out_channels: channels of the per-pixel output.
        upsample: module called as ``upsample(x, out_hw)`` that maps (N, out_channels, h, w)
            to (N, out_channels, H, W), e.g. :class:`~zss.models.upsample.Upsample32`.
        zero_init: zero the 1×1 conv (FCN's ``score_fr`` initialisation); otherwise PyTorch's
            default init. Leave False for an embedding head trained with the cosine loss
            (a zero vector has no direction).
    """

    def __init__(
        self, in_channels: int, out_channels: int, upsample: nn.Module, zero_init: bool = False
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1)
        if zero_init:
            nn.init.zeros_(self.conv.weight)
            nn.init.zeros_(self.conv.bias)
        self.upsample = upsample

    @classmethod
    def for_backbone(
        cls, backbone: nn.Module, out_channels: int, zero_init: bool = False,
        learned_upsample: bool = False,
    ) -> PixelHead:
        """A head whose upsampling matches ``backbone``.

        The backbone must have ``out_channels`` and ``output_stride`` attributes and may have
        ``upsample_offset`` (default ``output_stride // 2``); FCN32sBackbone gives the FCN-32s
        ×32 deconvolution cropped at 19. ``learned_upsample`` makes that deconvolution a
        trainable parameter initialised bilinear (:class:`LearnedBilinearUpsample`, the
        original SZN seenmask head) instead of a fixed buffer (:class:`BilinearUpsample`).
        A backbone with ``upsample_mode == "interpolate"`` (DeepLabv3+) gets
        :class:`InterpolateUpsample` (bilinear resize, nothing to learn).

        Raises:
            ValueError: ``learned_upsample`` for an interpolating backbone (stage2.train_upsampling
                needs a transposed convolution to train).
        """
        if getattr(backbone, "upsample_mode", "deconv") == "interpolate":
            if learned_upsample:
                raise ValueError(
                    f"{type(backbone).__name__} resizes its heads' outputs by bilinear "
                    "interpolation, which has nothing to train: set stage2.train_upsampling="
                    "false (conf/model/deeplabv3plus_r101.yaml does)")
            return cls(int(backbone.out_channels), out_channels, InterpolateUpsample(),
                       zero_init=zero_init)
        stride = int(backbone.output_stride)
        offset = getattr(backbone, "upsample_offset", stride // 2)
        kind = LearnedBilinearUpsample if learned_upsample else BilinearUpsample
        up = kind(out_channels, stride, offset=offset)
        return cls(int(backbone.out_channels), out_channels, up, zero_init=zero_init)

    def forward(self, feats: Tensor, out_hw: tuple[int, int]) -> Tensor:
        """(N, in_channels, h, w) features -> (N, out_channels, H, W) with ``(H, W) = out_hw``."""
        return self.upsample(self.conv(feats), out_hw)
