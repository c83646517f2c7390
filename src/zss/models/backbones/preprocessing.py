"""The input normalisation a backbone's weights were trained with: weights and preprocessing
go together (a Caffe-converted VGG16 fed torchvision's normalisation loses about 5 mIoU, as
FCN users reported), so every backbone's registry entry names the preprocessing of its weight
sources (:func:`zss.models.backbones.preprocessing_for_backbone`)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["CAFFE_PREPROCESSING", "IMAGENET_PREPROCESSING", "Preprocessing"]


@dataclass(frozen=True)
class Preprocessing:
    """Image normalisation matching a weight source (docs/method.md, "Recipes").

    ``out = (x[order] * scale - mean) / std`` per channel, with ``order`` = BGR if ``bgr``.

    Attributes:
        mean: per-channel mean, in the *output* channel order, on the scaled range.
        std: per-channel std, same order and range.
        bgr: reverse RGB to BGR (Caffe models).
        scale: multiplier applied to the 0-255 input (1/255 for torchvision, 1 for Caffe).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool
    scale: float

    def __call__(self, img: Tensor) -> Tensor:
        """Normalise an RGB image.

        Args:
            img: RGB image (3, H, W) or batch (N, 3, H, W), ``uint8`` or a float tensor on the
                0-255 scale (e.g. after a bilinear resize of a uint8 image).

        Returns:
            float32 tensor, same shape, channels in the model's order (BGR if ``bgr``).

        Raises:
            TypeError: on an integer dtype other than uint8 (or bool).
            ValueError: if the channel dimension (-3) is not 3.
        """
        if not (img.dtype == torch.uint8 or img.is_floating_point()):
            raise TypeError(f"expected a uint8 or 0-255 float image, got dtype {img.dtype}")
        if img.dim() not in (3, 4) or img.shape[-3] != 3:
            raise ValueError(f"expected an RGB image (3,H,W) or (N,3,H,W), got {tuple(img.shape)}")
        x = img.float()
        if self.bgr:
            x = x.flip(-3)
        mean = torch.tensor(self.mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32, device=x.device).view(3, 1, 1)
        return (x * self.scale - mean) / std


IMAGENET_PREPROCESSING = Preprocessing(
    mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225), bgr=False, scale=1 / 255
)
"""torchvision ImageNet weights (and random init): RGB in [0, 1], ImageNet mean/std."""
CAFFE_PREPROCESSING = Preprocessing(
    mean=(104.00698793, 116.66876762, 122.67891434), std=(1.0, 1.0, 1.0), bgr=True, scale=1.0
)
"""Caffe-converted VGG16 (FCN, original SZN): BGR in 0-255 minus the BGR mean (FCN
``voc_layers.py``)."""
