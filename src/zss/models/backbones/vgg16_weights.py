"""VGG16's weight sources and the preprocessing each one wants: torchvision's ImageNet VGG16
(RGB in [0, 1] with the ImageNet mean/std) and a Caffe-converted VGG16 ``.pth`` (the one FCN
and the original SZN used: BGR in 0-255 minus the mean (104.008, 116.669, 122.679))."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor

from zss.models.backbones.preprocessing import (
    CAFFE_PREPROCESSING,
    IMAGENET_PREPROCESSING,
    Preprocessing,
)
from zss.models.backbones.registry import WeightsFormatError, WeightsSpec
from zss.runtime.errors import UserInputError
from zss.runtime.prefetch import Prefetch, prepare_command, register_prefetch

VGG16_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
"""Indices of the 13 convs in ``torchvision.models.vgg16().features`` (and in ours)."""
_VGG16_CFG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
              512, 512, 512, "M")  # fmt: skip
TORCHVISION_FILENAME = "vgg16-397923af.pth"
"""File name of torchvision's VGG16 IMAGENET1K_V1 weights in the torch hub cache."""



WEIGHTS_FORMATS = ("torchvision", "caffe")
"""What a VGG16 ``.pth`` file was trained with: ``torchvision`` (RGB in [0, 1], ImageNet
mean/std) or ``caffe`` (BGR 0-255 minus the mean; FCN's and the original SZN's VGG16)."""


def _fc_width_error(fc_width: int) -> WeightsFormatError:
    return WeightsFormatError(
        f"pretrained VGG16 weights need model.backbone.fc_width=4096 (VGG16's fc6/fc7), got "
        f"{fc_width}; +debug=cpu sets 512 for random init: with pretrained weights add "
        "model.backbone.fc_width=4096, or use model.backbone.weights=null.")


def weights_format(weights: WeightsSpec, fmt: str | None = None) -> str | None:
    """The format of a weight source, which fixes the preprocessing.

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
    """The preprocessing a weight source expects ("Weights and preprocessing go
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
            f"Fix: run {prepare_command(PREFETCH_NAME)} on a machine with internet (with the "
            f"same TORCH_HOME), or copy {TORCHVISION_FILENAME} into {os.path.join(hub, 'checkpoints')!r} "
            f"(or set TORCH_HOME), or use model.backbone.weights=null (random init) or "
            f"model.backbone.weights=/path/to/caffe_vgg16.pth (a Caffe-converted VGG16 state dict)."
        ) from err


PREFETCH_NAME = "vgg16-torchvision"


def _prefetch(cache_dir: Path) -> list[Path]:
    load_torchvision_vgg16_state_dict()
    return [Path(torch.hub.get_dir()) / "checkpoints" / TORCHVISION_FILENAME]


register_prefetch(Prefetch(
    PREFETCH_NAME, "torchvision's VGG16 ImageNet weights (model.backbone.weights=torchvision), "
    "528 MB, into torch hub's cache ($TORCH_HOME/hub/checkpoints)", _prefetch))


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
