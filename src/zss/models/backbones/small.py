"""A tiny CNN backbone for CPU demos and tests (not part of the paper)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from zss.models.backbones.registry import register_backbone
from zss.models.backbones.vgg16_weights import preprocessing_for


class SmallBackbone(nn.Module):
    """A tiny CNN for CPU demos and tests (not part of the paper).

    ``log2(output_stride)`` stages of [3×3 conv (padding 1) + GroupNorm + ReLU + 2×2/2 max-pool
    (``ceil_mode=True``)], channels ``width * 2**k`` capped at ``4 * width``, then a 3×3 conv to
    ``fc_width`` + ReLU (+ ``Dropout2d(dropout)``, in the place of FCN-32s' fc7 dropout, when
    ``dropout > 0``). Feature cell ``i`` covers input pixels ``[s*i, s*i + s)``, so
    ``BilinearUpsample(c, s)`` with its default offset ``s // 2`` aligns the output
    (``upsample_offset``). GroupNorm, not BatchNorm, so batch size 1 (the paper's) and 1×1
    maps work.

    Args:
        width: channels of the first stage.
        fc_width: output channels (``out_channels``).
        output_stride: 4, 8, 16 or 32.
        dropout: probability of the final ``Dropout2d``, in [0, 1); 0 (none) by default.

    Raises:
        ValueError: on another ``output_stride``.

    Shapes: ``forward(x: float32 (N, 3, H, W)) -> (N, fc_width, ceil(H/s), ceil(W/s))``.
    """

    def __init__(self, width: int = 64, fc_width: int = 128, output_stride: int = 8,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if output_stride not in (4, 8, 16, 32):
            raise ValueError(f"output_stride must be 4, 8, 16 or 32, got {output_stride}")
        self.output_stride = output_stride
        self.upsample_offset = output_stride // 2
        self.out_channels = fc_width
        layers: list[nn.Module] = []
        in_ch = 3
        for k in range(int(math.log2(output_stride))):
            ch = width * 2 ** min(k, 2)
            layers += [
                nn.Conv2d(in_ch, ch, 3, padding=1, bias=False),
                nn.GroupNorm(math.gcd(8, ch), ch),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2, stride=2, ceil_mode=True),
            ]
            in_ch = ch
        layers += [nn.Conv2d(in_ch, fc_width, 3, padding=1), nn.ReLU(inplace=True)]
        if dropout > 0:
            layers.append(nn.Dropout2d(dropout))
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        """float32 (N, 3, H, W) -> (N, fc_width, ceil(H/s), ceil(W/s))."""
        return self.features(x)


# random initialisation only; ImageNet's normalisation, as random init of FCN-32s
register_backbone("small", SmallBackbone, preprocessing=preprocessing_for)
