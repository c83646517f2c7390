"""Frozen bilinear upsampling by a transposed convolution (FCN recipe; docs/method.md, "Recipes").

The ×32 upsampling of FCN-32s (Long et al., "Fully Convolutional Networks for Semantic
Segmentation") is a ``ConvTranspose2d(c, c, 64, stride=32, bias=False)`` whose kernel is a
bilinear filter on the channel diagonal (``upsample_filt`` / ``interp`` in FCN's
``surgery.py``; ``get_upsampling_weight`` in wkentaro/pytorch-fcn), followed by a crop of the
input's size at offset 19 (the offset Caffe's ``Crop`` layer computes for the padding-100
VGG16 net). :class:`BilinearUpsample` keeps the kernel fixed (never optimised: FCN's
``upscore`` and the embedding head); :class:`LearnedBilinearUpsample` starts from it and
trains it (the original SZN code's seenmask ``seenmask_upscore``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FCN32S_CROP_OFFSET = 19
"""Crop offset of FCN-32s' ``upscore`` output (Caffe ``Crop`` layer, ``offset: 19``)."""


def bilinear_filter(kernel_size: int) -> Tensor:
    """The 2-D bilinear filter of FCN ``surgery.py`` ``upsample_filt``.

    Args:
        kernel_size: filter side ``k`` >= 1 (``2 * factor`` for upsampling by ``factor``).

    Returns:
        float32 tensor (k, k), values in (0, 1], peak 1 at the centre for odd ``k``.

    Raises:
        ValueError: if ``kernel_size < 1``.
    """
    if kernel_size < 1:
        raise ValueError(f"kernel_size must be >= 1, got {kernel_size}")
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    og = torch.arange(kernel_size, dtype=torch.float64)
    filt1d = 1 - (og - center).abs() / factor
    return torch.outer(filt1d, filt1d).float()


def bilinear_kernel(channels: int, kernel_size: int) -> Tensor:
    """Dense transposed-conv weight with the bilinear filter on the channel diagonal.

    Exactly FCN ``surgery.py`` ``interp`` / pytorch-fcn ``get_upsampling_weight``: weight
    ``[c, c]`` is :func:`bilinear_filter`, every off-diagonal ``[c, d]`` is zero, so each channel
    is upsampled independently.

    Args:
        channels: number of channels ``C`` >= 1.
        kernel_size: filter side ``k``.

    Returns:
        float32 tensor (C, C, k, k) (``ConvTranspose2d`` layout: in, out, kH, kW).

    Raises:
        ValueError: if ``channels < 1`` or ``kernel_size < 1``.
    """
    if channels < 1:
        raise ValueError(f"channels must be >= 1, got {channels}")
    weight = torch.zeros(channels, channels, kernel_size, kernel_size)
    weight[range(channels), range(channels)] = bilinear_filter(kernel_size)
    return weight


def _crop_offset(channels: int, factor: int, offset: int | None) -> int:
    """Check the upsampling arguments; the crop offset (default ``factor // 2``)."""
    if channels < 1 or factor < 1:
        raise ValueError(f"channels and factor must be >= 1, got {channels}, {factor}")
    offset = factor // 2 if offset is None else offset
    if offset < 0:
        raise ValueError(f"offset must be >= 0, got {offset}")
    return offset


class BilinearUpsample(nn.Module):
    """Frozen bilinear upsampling by ``factor`` then a crop to the requested size.

    Equivalent to ``ConvTranspose2d(C, C, 2*factor, stride=factor, bias=False)`` initialised with
    :func:`bilinear_kernel` and frozen, then ``y[:, :, o:o+H, o:o+W]``. It is implemented as a
    depthwise transposed convolution (weight (C, 1, k, k), ``groups=C``): the same output as the
    dense diagonal kernel but ``C`` times less memory and compute (j = 300 channels would need a
    1.5 GB dense kernel). The kernel is a non-persistent buffer, so it is never a parameter,
    never optimised, and not stored in checkpoints (it is a constant of ``channels, factor``).

    Offsets: ``offset=19`` with ``factor=32`` is FCN-32s on the padding-100 VGG16
    (:data:`FCN32S_CROP_OFFSET`). ``offset=factor // 2`` (the default) aligns the output with
    ``F.interpolate(mode="bilinear", align_corners=False)`` for a backbone whose feature cell
    ``i`` covers input pixels ``[factor*i, factor*i + factor)`` (e.g. ``SmallBackbone``).

    Args:
        channels: channels ``C`` of the input and the output.
        factor: integer upsampling factor (stride) >= 1; kernel side is ``2 * factor``.
        offset: crop offset in output pixels; default ``factor // 2``.

    Raises:
        ValueError: on ``channels < 1``, ``factor < 1`` or ``offset < 0``.
    """

    weight: Tensor

    def __init__(self, channels: int, factor: int, offset: int | None = None) -> None:
        super().__init__()
        offset = _crop_offset(channels, factor, offset)
        self.channels, self.factor, self.offset = channels, factor, offset
        kernel = bilinear_filter(2 * factor).expand(channels, 1, -1, -1).clone()
        self.register_buffer("weight", kernel, persistent=False)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, factor={self.factor}, offset={self.offset}"

    def upsample(self, x: Tensor) -> Tensor:
        """Uncropped transposed convolution: (N, C, h, w) -> (N, C, (h+1)*f, (w+1)*f)."""
        if x.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} channels, got {tuple(x.shape)}")
        weight = self.weight.to(dtype=x.dtype)
        return F.conv_transpose2d(x, weight, stride=self.factor, groups=self.channels)

    def forward(self, x: Tensor, out_hw: tuple[int, int] | torch.Size) -> Tensor:
        """Upsample and crop.

        Args:
            x: float tensor (N, C, h, w).
            out_hw: target ``(H, W)``.

        Returns:
            tensor (N, C, H, W), ``y[:, :, offset:offset+H, offset:offset+W]``.

        Raises:
            ValueError: on a channel mismatch, or if the upsampled map is smaller than
                ``offset + (H, W)`` (the feature map is too small for the requested size).
        """
        return crop(self.upsample(x), out_hw, self.offset, x.shape[-2:], self.factor)


def crop(y: Tensor, out_hw: tuple[int, int] | torch.Size, offset: int,
         feature_hw: tuple[int, int] | torch.Size = (), factor: int = 0) -> Tensor:
    """``y[:, :, offset:offset+H, offset:offset+W]`` (Caffe's ``Crop`` layer of FCN).

    Raises:
        ValueError: if ``y`` is smaller than ``offset + (H, W)``; the message names the
            feature size and factor when given.
    """
    height, width = int(out_hw[0]), int(out_hw[1])
    o = offset
    if y.shape[-2] < o + height or y.shape[-1] < o + width:
        raise ValueError(
            f"upsampled map {tuple(y.shape[-2:])} too small to crop {(height, width)} at "
            f"offset {o} (features {tuple(feature_hw)}, factor {factor})"
        )
    return y[:, :, o : o + height, o : o + width]


class LearnedBilinearUpsample(nn.ConvTranspose2d):
    """A **trainable** ×factor transposed convolution initialised to bilinear upsampling,
    then the same crop as :class:`BilinearUpsample`.

    The original SZN code's seenmask head (``models.FCN32s.seenmask_upscore``:
    ``ConvTranspose2d(2, 2, 64, stride=32, bias=False)``, initialised with FCN's bilinear
    ``get_upsampling_weight``; ``train.py`` sets ``requires_grad=True`` on it and gives it to
    the stage-2 Adam). The weight is a dense (C, C, 2f, 2f) parameter: the bilinear filter on
    the channel diagonal, zeros elsewhere (:func:`bilinear_kernel`), all of it learnable — so
    use it for few channels (the seenmask's 2), not for the embedding (j up to 300).

    Args:
        channels: channels ``C`` of the input and the output.
        factor: integer upsampling factor (stride) >= 1; kernel side is ``2 * factor``.
        offset: crop offset in output pixels; default ``factor // 2`` (19 for FCN-32s).

    Raises:
        ValueError: on ``channels < 1``, ``factor < 1`` or ``offset < 0``.

    Shapes: ``forward(x: (N, C, h, w), out_hw) -> (N, C, H, W)``.
    """

    def __init__(self, channels: int, factor: int, offset: int | None = None) -> None:
        offset = _crop_offset(channels, factor, offset)
        super().__init__(channels, channels, 2 * factor, stride=factor, bias=False)
        self.factor, self.offset = factor, offset
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, 2 * factor))

    def forward(self, x: Tensor, out_hw: tuple[int, int] | torch.Size) -> Tensor:  # type: ignore[override]
        """Upsample (float (N, C, h, w)) and crop to ``out_hw``; raises as :func:`crop`."""
        return crop(super().forward(x), out_hw, self.offset, x.shape[-2:], self.factor)


class Upsample32(BilinearUpsample):
    """FCN-32s ``upscore``: frozen bilinear ×32 (kernel 64, stride 32), crop offset 19.

    Source: Long et al. FCN-32s (Caffe ``voc-fcn32s/net.py``: ``Deconvolution`` kernel 64,
    stride 32, no bias, ``crop(n.upscore, n.data)`` -> offset 19; weights from ``surgery.interp``),
    as in wkentaro/pytorch-fcn ``FCN32s``.

    Args:
        channels: channels ``C`` of the input and the output.
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, factor=32, offset=FCN32S_CROP_OFFSET)


class InterpolateUpsample(nn.Module):
    """Bilinear resize to the requested size, ``align_corners=True``: DeepLab's upsampling of
    its logits to the input (ZS3Net ``zs3/modeling/deeplab.py``: ``F.interpolate(x,
    size=input.size()[2:], mode="bilinear", align_corners=True)``; smp's
    ``UpsamplingBilinear2d(scale_factor=4)`` for sides divisible by 16). No parameter.

    Shapes: ``forward(x: float (N, C, h, w), out_hw) -> (N, C, H, W)``.
    """

    def forward(self, x: Tensor, out_hw: tuple[int, int] | torch.Size) -> Tensor:
        """Resize ``x`` to ``out_hw`` = (H, W)."""
        size = (int(out_hw[0]), int(out_hw[1]))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=True)
