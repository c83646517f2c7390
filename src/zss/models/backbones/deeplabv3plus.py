"""DeepLabv3+ on a ResNet encoder (the peers' network: ZS3Net, JoEm, CSRL), from
segmentation_models_pytorch (smp), with its weights and their preprocessing.

The network is smp's ``DeepLabV3Plus`` encoder and decoder (Chen et al., ECCV 2018): a
ResNet at output stride 16 (the last stage dilated), ASPP with atrous rates 6, 12, 18 and a
global-pooling branch (ZS3Net ``zs3/modeling/aspp.py``: ``dilations = [1, 6, 12, 18]`` for
``output_stride == 16``; plain, not separable, atrous convolutions, as there), and the decoder
that fuses the ASPP output, bilinearly upsampled (``align_corners=True``), with the 48-channel
projection of the stride-4 features. The zss heads read the decoder's stride-4 feature map and
resize it to the input size with ``F.interpolate(..., align_corners=True)``, as ZS3Net's
``DeepLab.forward`` does (``zs3/modeling/deeplab.py``); for a side divisible by 16 that is smp's
``UpsamplingBilinear2d(scale_factor=4)``. Differences from ZS3Net's own DeepLab (kept as smp
builds them): smp's decoder ends with one separable 3×3 conv (ZS3Net: two 3×3 convs with
dropout 0.5 and 0.1), and smp dilates every block of ResNet's last stage by 2 (ZS3Net: the
multi-grid 2, 4, 8).

Weights (``model.backbone.weights``; every source wants RGB in [0, 1] with ImageNet's
mean/std, ZS3Net ``custom_transforms.Normalize``):

- ``imagenet``: smp's ImageNet ResNet weights, downloaded by smp's own Hugging Face hub
  repository at the revision smp pins (``python -m zss.data.prepare weights --only
  resnet101-imagenet-smp`` fetches them ahead). Full ImageNet-1k: its classes overlap
  PASCAL's, so the unseen classes may have been seen in pretraining.
- a file path with ``weights_format``:
  ``zs3net``, ZS3Net's ``resnet_backbone_pretrained_imagenet_wo_pascalvoc.pth.tar`` (or
  ``..._wo_pascalcontext.pth.tar``): ``torch.save({"state_dict": ...})`` of a ResNet-101 whose
  keys carry a 7-character ``module.`` prefix, read as ZS3Net's
  ``ResNet._load_pretrained_model`` reads it (``zs3/modeling/backbone/resnet.py``) -- or the
  plain state dict of the VOC one that JoEm re-publishes
  (github.com/cvlab-yonsei/JoEm, release v1.0,
  ``resnet_backbone_pretrained_imagenet_wo_pascalvoc.pth``, read without a prefix by JoEm's
  ``model/deeplabv3.py``); ZS3Net trained it on ImageNet without the classes that overlap
  PASCAL, so the run records that its pretraining excludes the unseen classes (ZS3Net's
  claim; zss cannot check the file).
  ``torchvision``, a torchvision ResNet state dict (``resnet101-63fe2227.pth``, keys
  ``conv1.weight``, ``layer1.0.conv1.weight``, …; ``fc.*`` ignored).
- ``null``: random initialisation (tests, CPU demos).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zss.models.backbones.preprocessing import IMAGENET_PREPROCESSING, Preprocessing
from zss.models.backbones.registry import WeightsFormatError, WeightsSpec, register_backbone
from zss.models.backbones.vgg16_weights import WeightsUnavailableError
from zss.runtime.prefetch import Prefetch, prepare_command, register_prefetch

__all__ = ["DeepLabV3PlusBackbone", "RESNET_WEIGHTS_FORMATS", "deeplab_pretraining", "load_deeplab_weights",
           "load_resnet_file", "smp_imagenet_state_dict"]

RESNET_WEIGHTS_FORMATS = ("zs3net", "torchvision")
"""The formats of a user's ResNet weights file (``model.backbone.weights_format``)."""

PREFETCH_NAME = "resnet101-imagenet-smp"


class DeepLabV3PlusBackbone(nn.Module):
    """DeepLabv3+ encoder + decoder (no classifier): the zss heads read its decoder features.

    Args:
        encoder: an smp ResNet encoder name (``resnet101``, the peers'; ``resnet18`` for fast
            tests).
        output_stride: the encoder's, 16 (the peers') or 8.
        fc_width: channels of the decoder's feature map, the features the heads read (256 in
            DeepLabv3+; the name of the key FCN-32s' fc7 width has).
        atrous_rates: the ASPP's dilations (6, 12, 18 at output stride 16: ZS3Net
            ``aspp.py``; 12, 24, 36 at 8).
        aspp_dropout: the dropout after the ASPP projection (0.5: ZS3Net ``aspp.py``).

    Attributes: ``out_channels`` = ``fc_width``; ``output_stride`` = 4 (the decoder's map:
    ⌈H/4⌉ × ⌈W/4⌉ for any H, W); ``upsample_mode`` = ``"interpolate"`` (the heads resize to the
    input with bilinear ``align_corners=True``); ``encoder`` (the ImageNet-pretrained part,
    ``optimizer.head_lr_factor``).

    Shapes: ``forward(x: float32 (N, 3, H, W)) -> (N, fc_width, ceil(H/4), ceil(W/4))``. In
    training the ASPP's global-pooling branch has batch norm over one value per channel and
    image: a batch needs at least 2 images (the peers train with 16).

    Raises:
        ValueError: an encoder smp does not know, or an output stride other than 8 or 16.
    """

    output_stride = 4
    upsample_mode = "interpolate"

    def __init__(self, encoder: str = "resnet101", output_stride: int = 16, fc_width: int = 256,
                 atrous_rates: tuple[int, ...] | list[int] = (6, 12, 18),
                 aspp_dropout: float = 0.5) -> None:
        super().__init__()
        import segmentation_models_pytorch as smp

        if output_stride not in (8, 16):
            raise ValueError(f"DeepLabv3+ output_stride must be 8 or 16, got {output_stride}")
        net = smp.DeepLabV3Plus(encoder, encoder_weights=None, encoder_output_stride=output_stride,
                                decoder_channels=fc_width, decoder_atrous_rates=tuple(atrous_rates),
                                decoder_aspp_separable=False, decoder_aspp_dropout=aspp_dropout)
        self.encoder, self.decoder = net.encoder, net.decoder
        del self.decoder.up  # resized to the stride-4 map's own size in forward
        self.encoder_name, self.out_channels = encoder, fc_width

    def forward(self, x: Tensor) -> Tensor:
        """float32 (N, 3, H, W) -> decoder features (N, fc_width, ceil(H/4), ceil(W/4)).

        The ASPP output is resized to the stride-4 map's size (ZS3Net ``decoder.py``:
        ``F.interpolate(x, size=low_level_feat.size()[2:], mode="bilinear",
        align_corners=True)``), which equals smp's ×4 when H and W are multiples of 16 and
        works for any H, W.
        """
        feats = self.encoder(x)
        high = self.decoder.block1(feats[2])
        aspp = F.interpolate(self.decoder.aspp(feats[-1]), size=high.shape[-2:],
                             mode="bilinear", align_corners=True)
        return self.decoder.block2(torch.cat([aspp, high], dim=1))


def _preprocessing(weights: WeightsSpec, weights_format: str | None) -> Preprocessing:
    """ImageNet RGB mean/std for every source; a file needs a known ``weights_format``."""
    if weights not in (None, "imagenet") and weights_format not in RESNET_WEIGHTS_FORMATS:
        raise WeightsFormatError(
            f"model.backbone.weights={str(weights)!r} is a file, and "
            f"model.backbone.weights_format={weights_format!r} does not say what it holds: set "
            f"it to one of {list(RESNET_WEIGHTS_FORMATS)} (zs3net: ZS3Net's "
            "resnet_backbone_pretrained_imagenet_wo_pascalvoc.pth.tar, {'state_dict': ...} "
            "with 'module.' key prefixes; torchvision: a torchvision ResNet state dict), or "
            "use weights=imagenet (smp's download) or null (random init).")
    return IMAGENET_PREPROCESSING


def _smp_settings(encoder: str) -> dict[str, str]:
    from segmentation_models_pytorch.encoders import encoders

    return encoders[encoder]["pretrained_settings"]["imagenet"]


def smp_imagenet_state_dict(encoder: str = "resnet101") -> dict[str, Tensor]:
    """smp's ImageNet weights of ``encoder`` (the Hugging Face cache, else its download at the
    revision smp pins: ``smp-hub/resnet101.imagenet``).

    Raises:
        WeightsUnavailableError: neither cached nor downloadable; names the fix.
    """
    from huggingface_hub import hf_hub_download
    from safetensors.torch import load_file

    s = _smp_settings(encoder)
    try:
        path = hf_hub_download(s["repo_id"], filename="model.safetensors",
                               revision=s["revision"])
    except Exception as err:  # no network, no cache
        raise WeightsUnavailableError(
            f"Could not load smp's ImageNet {encoder} weights ({s['repo_id']} at "
            f"{s['revision']}): not in the Hugging Face cache (HF_HOME) and the download "
            f"failed ({type(err).__name__}: {err}). Fix: on a machine with internet run "
            f"`{prepare_command(PREFETCH_NAME)}` with the same HF_HOME, or use "
            "model.backbone.weights=/path/to/file with weights_format (zs3net, torchvision), "
            "or weights=null (random init).") from err
    return load_file(path, device="cpu")


def load_resnet_file(path: str | os.PathLike,
                     weights_format: str | None = None) -> dict[str, Tensor]:
    """A ResNet state dict from a user's file, with torchvision's key names.

    ``zs3net``: ``torch.load(path)["state_dict"]`` with the first 7 characters
    (``module.``) of each key dropped (ZS3Net ``ResNet._load_pretrained_model``);
    ``torchvision`` (and ``zs3net`` for JoEm's plain copy): the file's mapping as it is.
    None: told apart by the content (a
    ``"state_dict"`` entry: zs3net), as the run's loader does (the stated format has been
    checked by then: :func:`zss.models.preprocessing_for_backbone`).

    Raises:
        FileNotFoundError: no such file (named); WeightsFormatError: an unknown format, or
            a file that does not hold what its format says.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"model.backbone.weights: no file {str(path)!r}")
    obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    if weights_format is None:
        weights_format = "zs3net" if isinstance(obj, dict) and "state_dict" in obj else "torchvision"
    if weights_format == "zs3net" and isinstance(obj, dict) and "state_dict" in obj:
        if not isinstance(obj["state_dict"], dict):
            raise WeightsFormatError(f"{path}: its 'state_dict' entry is not a mapping")
        return {k[7:]: v for k, v in obj["state_dict"].items()}  # ZS3Net's own file
    if weights_format in RESNET_WEIGHTS_FORMATS:  # torchvision's, or JoEm's copy of ZS3Net's
        if not isinstance(obj, dict) or not all(isinstance(v, Tensor) for v in obj.values()):
            raise WeightsFormatError(
                f"{path} is neither ZS3Net's {{'state_dict': ...}} nor a state dict (a "
                f"mapping of tensors), as weights_format={weights_format} says")
        return dict(obj)
    raise WeightsFormatError(f"unknown weights_format {weights_format!r} for {path}; use one "
                             f"of {list(RESNET_WEIGHTS_FORMATS)}")


def load_deeplab_weights(backbone: DeepLabV3PlusBackbone, weights: WeightsSpec,
                         weights_format: str | None = None) -> None:
    """Load ImageNet (``"imagenet"``) or a file's ResNet weights into ``backbone.encoder``, in
    place; the decoder keeps its initialisation (as in ZS3Net and smp).

    Raises:
        WeightsFormatError: a file whose keys do not fit the encoder (the missing ones
            named); what :func:`smp_imagenet_state_dict` / :func:`load_resnet_file` raise.
    """
    if weights == "imagenet":
        state = smp_imagenet_state_dict(backbone.encoder_name)
    else:
        state = load_resnet_file(weights, weights_format)  # type: ignore[arg-type]
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    # nn.Module's: smp's override returns nothing
    missing, unexpected = nn.Module.load_state_dict(backbone.encoder, state, strict=False)
    if missing:
        raise WeightsFormatError(
            f"the weights {str(weights)!r} do not fit the {backbone.encoder_name} encoder: "
            f"{len(missing)} keys missing (e.g. {missing[:3]}), {len(unexpected)} unexpected "
            f"(e.g. {unexpected[:3]}); is it a ResNet of that depth, in the stated format?")


def deeplab_pretraining(weights: WeightsSpec, weights_format: str | None) -> dict[str, Any]:
    """What the run records of its backbone's pretraining (``metrics.json``
    ``pretraining``): ``weights``, ``format``, ``excludes_unseen`` (True: random init, or
    ZS3Net's file, which ZS3Net says was trained without PASCAL's classes; False: full
    ImageNet-1k, whose classes overlap PASCAL's; None: a torchvision-format file, unknown)
    and ``note``."""
    if weights is None:
        return {"weights": None, "format": None, "excludes_unseen": True,
                "note": "random initialisation: nothing pretrained"}
    if weights == "imagenet":
        return {"weights": "imagenet", "format": "smp", "excludes_unseen": False,
                "note": "smp's ImageNet-1k ResNet: its classes overlap PASCAL's"}
    if weights_format == "zs3net":
        return {"weights": str(weights), "format": "zs3net", "excludes_unseen": True,
                "note": "ZS3Net's ResNet trained on ImageNet without the classes that "
                        "overlap PASCAL (ZS3Net's claim; not checked by zss)"}
    return {"weights": str(weights), "format": weights_format, "excludes_unseen": None,
            "note": "a user's file: whether its pretraining saw the unseen classes is unknown"}


def _fetch(cache_dir: Path) -> list[Path]:  # the Hugging Face cache, not cache_dir
    from huggingface_hub import hf_hub_download

    s = _smp_settings("resnet101")
    return [Path(hf_hub_download(s["repo_id"], filename=f, revision=s["revision"]))
            for f in ("config.json", "model.safetensors")]


register_prefetch(Prefetch(PREFETCH_NAME, "smp's ImageNet ResNet-101 (model=deeplabv3plus_r101 "
                           "weights=imagenet; Hugging Face cache, ~170 MB)", _fetch))
register_backbone("deeplabv3plus", DeepLabV3PlusBackbone, preprocessing=_preprocessing,
                  load_weights=load_deeplab_weights, pretraining=deeplab_pretraining)
