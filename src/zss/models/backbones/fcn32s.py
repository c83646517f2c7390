"""FCN-32s' VGG16 backbone (conv1_1 ... fc7) and the copy of VGG16's weights into it.

Recipe (Long et al., FCN-32s; Caffe ``voc-fcn32s/net.py``; wkentaro/pytorch-fcn ``FCN32s``):
conv1_1 ``padding=100``, the other 3×3 convs ``padding=1``, five 2×2/2 max-pools with
``ceil_mode=True``, fc6 = ``Conv2d(512, 4096, 7)`` and fc7 = ``Conv2d(4096, 4096, 1)``, each
followed by ReLU and ``Dropout2d(0.5)``; fc6/fc7 take VGG16's ``classifier[0]`` /
``classifier[3]`` weights reshaped (FCN ``surgery.transplant``). Its weight sources and their
preprocessing: :mod:`zss.models.backbones.vgg16_weights`.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init

from zss.models.backbones.registry import register_backbone
from zss.models.backbones.vgg16_weights import (
    _VGG16_CFG,
    VGG16_CONV_INDICES,
    WeightsSpec,
    _fc_width_error,
    preprocessing_for,
    vgg16_state_dict,
)


class FCN32sBackbone(nn.Module):
    """VGG16 conv1_1 ... fc7 of FCN-32s (the recipe in the module docstring).

    Args:
        fc_width: channels of fc6/fc7 (4096 in VGG16; smaller only with random init, for tests).
        weights: ``None`` (PyTorch default init), ``"torchvision"``
            (``VGG16_Weights.IMAGENET1K_V1``, from the torch hub cache or downloaded) or a path
            to a VGG16 ``.pth`` state dict with torchvision's key names. Use
            :func:`preprocessing_for` (with the file's ``weights_format``) for the input
            normalisation.

    Attributes:
        output_stride: 32. out_channels: ``fc_width``. upsample_offset: 19 (the FCN-32s crop).

    Raises:
        ValueError: ``fc_width != 4096`` with pretrained weights, or a malformed state dict.
        FileNotFoundError: a weights path that does not exist.
        KeyError: a state dict missing VGG16 keys (named).
        RuntimeError: ``"torchvision"`` weights neither cached nor downloadable.

    Shapes: ``forward(x: float32 (N, 3, H, W)) -> (N, fc_width, h', w')`` with
    ``h' = ceil((H + 198) / 32) - 6`` (>= 1 for any H >= 1).
    """

    output_stride = 32
    upsample_offset = 19

    def __init__(self, fc_width: int = 4096, weights: WeightsSpec = None) -> None:
        super().__init__()
        if weights is not None and fc_width != 4096:
            raise _fc_width_error(fc_width)
        state = vgg16_state_dict(weights)  # fetched before building: a failure is immediate
        self.out_channels = fc_width
        # every conv is overwritten by pretrained weights: skip the (slow, 134M) default init
        conv = nn.Conv2d if state is None else partial(skip_init, nn.Conv2d)
        layers: list[nn.Module] = []
        in_ch = 3
        for v in _VGG16_CFG:
            if v == "M":
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
            else:
                pad = 100 if in_ch == 3 else 1
                layers += [conv(in_ch, int(v), 3, padding=pad), nn.ReLU(inplace=True)]
                in_ch = int(v)
        self.features = nn.Sequential(*layers)
        self.fc6 = nn.Sequential(conv(512, fc_width, 7), nn.ReLU(inplace=True), nn.Dropout2d(0.5))
        self.fc7 = nn.Sequential(
            conv(fc_width, fc_width, 1), nn.ReLU(inplace=True), nn.Dropout2d(0.5)
        )
        if state is not None:
            copy_vgg16_weights(self, state)

    def forward(self, x: Tensor) -> Tensor:
        """float32 (N, 3, H, W) preprocessed image -> fc7 features (N, fc_width, h', w')."""
        return self.fc7(self.fc6(self.features(x)))


def _conv_layers(backbone: FCN32sBackbone) -> dict[str, nn.Conv2d]:
    """Our conv layers keyed by the torchvision VGG16 key prefix they take weights from."""
    layers: dict[str, nn.Conv2d] = {
        f"features.{i}": backbone.features[i] for i in VGG16_CONV_INDICES
    }
    layers["classifier.0"] = backbone.fc6[0]
    layers["classifier.3"] = backbone.fc7[0]
    return layers


@torch.no_grad()
def copy_vgg16_weights(backbone: FCN32sBackbone, state_dict: Mapping[str, Tensor]) -> None:
    """Copy a torchvision-style VGG16 state dict into an FCN-32s backbone (FCN
    ``surgery.transplant``).

    The 13 convs are copied as is (``features.N.{weight,bias}``); fc6/fc7 take
    ``classifier.0`` (4096, 25088) / ``classifier.3`` (4096, 4096) reshaped to
    (4096, 512, 7, 7) / (4096, 4096, 1, 1). ``classifier.6`` (ImageNet scores) is unused.

    Raises:
        KeyError: naming every missing key.
        ValueError: naming a tensor whose element count does not match (e.g. ``fc_width``
            != 4096).
    """
    layers = _conv_layers(backbone)
    keys = [f"{p}.{s}" for p in layers for s in ("weight", "bias")]
    missing = [k for k in keys if k not in state_dict]
    if missing:
        raise KeyError(f"VGG16 state dict lacks keys {missing}")
    for prefix, conv in layers.items():
        for name in ("weight", "bias"):
            dst, src = getattr(conv, name), state_dict[f"{prefix}.{name}"]
            if src.numel() != dst.numel():
                raise ValueError(
                    f"{prefix}.{name} has shape {tuple(src.shape)}, cannot fill {tuple(dst.shape)}"
                )
            dst.copy_(src.reshape(dst.shape))


def load_vgg16_weights(backbone: FCN32sBackbone, weights: WeightsSpec) -> None:
    """Load pretrained VGG16 weights into an FCN-32s backbone, in place (the registry's
    loader; :func:`zss.models.backbones.load_pretrained` calls it).

    Args:
        backbone: an :class:`FCN32sBackbone` with ``fc_width=4096``.
        weights: ``None`` (no-op), ``"torchvision"`` or a Caffe-converted VGG16 ``.pth`` path.

    Raises:
        WeightsFormatError: ``fc_width != 4096``.
        FileNotFoundError, KeyError, RuntimeError: as :class:`FCN32sBackbone`.
    """
    if weights is None:
        return
    if backbone.out_channels != 4096:
        raise _fc_width_error(backbone.out_channels)
    state = vgg16_state_dict(weights)
    assert state is not None
    copy_vgg16_weights(backbone, state)


register_backbone("fcn32s", FCN32sBackbone, preprocessing=preprocessing_for,
                  load_weights=load_vgg16_weights)
