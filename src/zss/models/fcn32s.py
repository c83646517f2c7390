"""FCN-32s VGG16 backbone (conv1_1 ... fc7), its weight sources and their preprocessing.

Recipe (Long et al., FCN-32s; Caffe ``voc-fcn32s/net.py``; wkentaro/pytorch-fcn ``FCN32s``;
DESIGN §3): conv1_1 ``padding=100``, the other 3×3 convs ``padding=1``, five 2×2/2 max-pools
with ``ceil_mode=True``, fc6 = ``Conv2d(512, 4096, 7)`` and fc7 = ``Conv2d(4096, 4096, 1)``,
each followed by ReLU and ``Dropout2d(0.5)``; fc6/fc7 take VGG16's ``classifier[0]`` /
``classifier[3]`` weights reshaped (FCN ``surgery.transplant``).

Weights and preprocessing go together (DESIGN §3): torchvision's ImageNet VGG16 wants RGB in
[0, 1] normalised with the ImageNet mean/std; a Caffe-converted VGG16 (the one FCN and the
original SZN used) wants BGR in 0-255 minus the mean (104.008, 116.669, 122.679).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.utils import skip_init

from zss.runtime.errors import UserInputError

VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""Indices of the 13 convs in ``torchvision.models.vgg16().features`` (and in ours)."""
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")  # fmt: skip
TORCHVISION_FILENAME = "vgg16-397923af.pth"
"""File name of torchvision's VGG16 IMAGENET1K_V1 weights in the torch hub cache."""

WeightsSpec = str | os.PathLike | None
"""``None`` (random init), ``"torchvision"`` or a path to a Caffe-converted VGG16 ``.pth``."""


@dataclass(frozen=True)
class Preprocessing:
    """Image normalisation matching a weight source (DESIGN §3).

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


WEIGHTS_FORMATS = ("torchvision", "caffe")
"""What a VGG16 ``.pth`` file was trained with: ``torchvision`` (RGB in [0, 1], ImageNet
mean/std) or ``caffe`` (BGR 0-255 minus the mean; FCN's and the original SZN's VGG16)."""


class WeightsFormatError(UserInputError, ValueError):
    """A weights file whose format (and so its preprocessing) is unknown or mis-named, or
    pretrained weights for a network they do not fit."""


def _fc_width_error(fc_width: int) -> WeightsFormatError:
    return WeightsFormatError(
        f"pretrained VGG16 weights need model.backbone.fc_width=4096 (VGG16's fc6/fc7), got "
        f"{fc_width}; +debug=cpu sets 512 for random init: with pretrained weights add "
        "model.backbone.fc_width=4096, or use model.backbone.weights=null.")


def weights_format(weights: WeightsSpec, fmt: str | None = None) -> str | None:
    """The format of a weight source, which fixes the preprocessing (DESIGN §3).

    Args:
        weights: ``None`` (random init), ``"torchvision"`` or a path to a VGG16 ``.pth``
            state dict with torchvision's key names.
        fmt: ``model.backbone.weights_format``: ``"torchvision"``, ``"caffe"`` or None.

    Returns:
        None for random init, else ``"torchvision"`` or ``"caffe"``: ``fmt`` when given;
        ``"torchvision"`` for ``weights="torchvision"`` and for a file named like torchvision's
        own download (``vgg16-397923af.pth``); nothing else is guessed.

    Raises:
        WeightsFormatError: an unknown ``fmt``, ``fmt="caffe"`` with ``weights="torchvision"``,
            or a path of unknown format with ``fmt`` None (the message says which key to set).
    """
    if fmt is not None and fmt not in WEIGHTS_FORMATS:
        raise WeightsFormatError(f"model.backbone.weights_format must be one of "
                                 f"{WEIGHTS_FORMATS} or null, got {fmt!r}")
    if weights is None:
        return None
    if weights == "torchvision":
        if fmt == "caffe":
            raise WeightsFormatError("model.backbone.weights=torchvision are torchvision's "
                                     "ImageNet weights; weights_format=caffe contradicts them")
        return "torchvision"
    if fmt is not None:
        return fmt
    if Path(weights).name == TORCHVISION_FILENAME:
        return "torchvision"
    raise WeightsFormatError(
        f"model.backbone.weights={str(weights)!r}: say how these VGG16 weights were trained, "
        "because the input preprocessing depends on it (mixing them costs ~5 mIoU): "
        "model.backbone.weights_format=caffe for a Caffe-converted VGG16 (FCN's and the "
        "original SZN's: BGR 0-255 minus the mean) or model.backbone.weights_format="
        "torchvision for torchvision's ImageNet VGG16 (RGB [0, 1], ImageNet mean/std)."
    )


def preprocessing_for(weights: WeightsSpec, fmt: str | None = None) -> Preprocessing:
    """The preprocessing a weight source expects (DESIGN §3 "Weights and preprocessing go
    together").

    Args:
        weights, fmt: as :func:`weights_format`. Random init (None) and torchvision weights
            -> :data:`IMAGENET_PREPROCESSING`; ``caffe`` -> :data:`CAFFE_PREPROCESSING`.

    Raises:
        WeightsFormatError: as :func:`weights_format`.
    """
    if weights_format(weights, fmt) == "caffe":
        return CAFFE_PREPROCESSING
    return IMAGENET_PREPROCESSING


def preprocessing_for_backbone(backbone: Mapping) -> Preprocessing:
    """:func:`preprocessing_for` of a backbone config (``model.backbone`` or a checkpoint's
    ``hparams.backbone``): its ``weights`` and ``weights_format`` keys (either may be absent)."""
    return preprocessing_for(backbone.get("weights"), backbone.get("weights_format"))


class WeightsUnavailableError(UserInputError, RuntimeError):
    """Pretrained weights can be neither read from the cache nor downloaded."""


def load_torchvision_vgg16_state_dict() -> dict[str, Tensor]:
    """torchvision's ``VGG16_Weights.IMAGENET1K_V1`` state dict (torch hub cache or download).

    Raises:
        WeightsUnavailableError: (a RuntimeError) if the weights can be neither read from the torch hub cache nor
            downloaded; the message names the cache directory and how to fix it.
    """
    from torchvision.models import VGG16_Weights

    weights = VGG16_Weights.IMAGENET1K_V1
    try:
        return weights.get_state_dict(progress=False)
    except Exception as err:  # URLError / OSError (no network), corrupt file, hash mismatch
        hub = torch.hub.get_dir()
        raise WeightsUnavailableError(
            f"Could not load torchvision's VGG16 ImageNet weights: not found in the torch hub "
            f"cache directory {hub!r} (looked for {os.path.join(hub, 'checkpoints', TORCHVISION_FILENAME)!r}) "
            f"and the download from {weights.url} failed ({type(err).__name__}: {err}). "
            f"Fix: copy {TORCHVISION_FILENAME} into {os.path.join(hub, 'checkpoints')!r} "
            f"(or set TORCH_HOME), or use model.backbone.weights=null (random init) or "
            f"model.backbone.weights=/path/to/caffe_vgg16.pth (a Caffe-converted VGG16 state dict)."
        ) from err


def load_vgg16_file(path: str | os.PathLike) -> dict[str, Tensor]:
    """Read a VGG16 state dict (torchvision key names) saved with ``torch.save``.

    Raises:
        FileNotFoundError: if ``path`` does not exist (the message names it).
        ValueError: if the file does not hold a mapping of tensors.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"VGG16 weights file not found: {str(path)!r}")
    try:  # memory-mapped: no second 528 MB copy in RAM while the weights are copied
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except RuntimeError:  # legacy (non-zip) serialisation cannot be memory-mapped
        state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, Mapping):
        raise ValueError(f"{str(path)!r} does not hold a state dict (got {type(state).__name__})")
    return dict(state)


def vgg16_state_dict(weights: WeightsSpec) -> dict[str, Tensor] | None:
    """The VGG16 state dict a weight source names: None for ``None``, torchvision's for
    ``"torchvision"`` (:func:`load_torchvision_vgg16_state_dict`), else the file
    (:func:`load_vgg16_file`); raises what those raise."""
    if weights is None:
        return None
    if weights == "torchvision":
        return load_torchvision_vgg16_state_dict()
    return load_vgg16_file(weights)


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


class FCN32sBackbone(nn.Module):
    """VGG16 conv1_1 ... fc7 of FCN-32s (DESIGN §3).

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


def load_pretrained(backbone: nn.Module, weights: WeightsSpec) -> None:
    """Load pretrained VGG16 weights into an existing backbone, in place.

    For code that builds the backbone without weights (so that restoring a checkpoint never
    downloads anything) and loads them once before training.

    Args:
        backbone: an :class:`FCN32sBackbone` with ``fc_width=4096`` (any backbone if
            ``weights`` is None).
        weights: ``None`` (no-op), ``"torchvision"`` or a Caffe-converted VGG16 ``.pth`` path.

    Raises:
        ValueError: pretrained weights for another backbone or ``fc_width != 4096``.
        FileNotFoundError, KeyError, RuntimeError: as :class:`FCN32sBackbone`.
    """
    if weights is None:
        return
    if not isinstance(backbone, FCN32sBackbone):
        raise WeightsFormatError(
            f"pretrained weights {str(weights)!r} exist only for FCN32sBackbone, not "
            f"{type(backbone).__name__}; use model.backbone.weights=null"
        )
    if backbone.out_channels != 4096:
        raise _fc_width_error(backbone.out_channels)
    state = vgg16_state_dict(weights)
    assert state is not None
    copy_vgg16_weights(backbone, state)
