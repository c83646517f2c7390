"""The backbone registry: what ``model.backbone.name`` can name, with the weights and the
preprocessing that go with each network.

A backbone is an ``nn.Module`` whose ``forward`` maps float32 (N, 3, H, W) images to a
feature map (N, ``out_channels``, ⌈H/s⌉, ⌈W/s⌉) and which has the attributes
``out_channels``, ``output_stride`` (s) and ``upsample_offset`` (the crop of its ×s
upsampling, :class:`zss.models.upsample.BilinearUpsample`), or ``upsample_mode =
"interpolate"`` for a network whose heads resize to the input by bilinear interpolation
(:class:`zss.models.upsample.InterpolateUpsample`, DeepLab's). Adding one is one class and one
:func:`register_backbone` call beside it (``docs/extending.md``); the config check, the
checkpoint check and the model read this table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from zss.models.backbones.preprocessing import Preprocessing
from zss.runtime.errors import UserInputError

__all__ = ["BACKBONES", "Backbone", "WeightsFormatError", "build_backbone", "load_pretrained",
           "preprocessing_for_backbone", "pretraining_record", "register_backbone"]

WeightsSpec = str | os.PathLike | None


class WeightsFormatError(UserInputError, ValueError):
    """A weights file whose format (and so its preprocessing) is unknown or mis-named, or
    pretrained weights for a network they do not fit."""


@dataclass(frozen=True)
class Backbone:
    """A registered backbone.

    Attributes:
        name: its ``model.backbone.name``.
        cls: the ``nn.Module`` class, built with the other keys of ``model.backbone``.
        preprocessing: ``(weights, weights_format) -> Preprocessing``: the input
            normalisation of a weight source (``model.backbone.weights`` /
            ``weights_format``); raises :class:`WeightsFormatError` for a source it cannot
            tell.
        load_weights: ``(module, weights) -> None``, loads pretrained weights in place; None
            for a backbone trained from random initialisation only.
        pretraining: ``(weights, weights_format) -> dict``, what a run records of the
            pretraining (:func:`pretraining_record`); None: the default record.
    """

    name: str
    cls: type[nn.Module]
    preprocessing: Callable[[WeightsSpec, str | None], Preprocessing]
    load_weights: Callable[[nn.Module, WeightsSpec], None] | None = None
    pretraining: Callable[[WeightsSpec, str | None], dict[str, Any]] | None = None


BACKBONES: dict[str, Backbone] = {}
"""The registered backbones by name (``fcn32s``, ``small``, …)."""


def register_backbone(name: str, cls: type[nn.Module], *,
                      preprocessing: Callable[[WeightsSpec, str | None], Preprocessing],
                      load_weights: Callable[[nn.Module, WeightsSpec], None] | None = None,
                      pretraining: Callable[[WeightsSpec, str | None], dict[str, Any]]
                      | None = None) -> type[nn.Module]:
    """Add a backbone to :data:`BACKBONES` (see :class:`Backbone`); returns ``cls``.

    Raises:
        ValueError: the name is taken by another class.
    """
    known = BACKBONES.get(name)
    if known is not None and known.cls is not cls:
        raise ValueError(f"backbone name {name!r} is already registered for {known.cls}")
    BACKBONES[name] = Backbone(name, cls, preprocessing, load_weights, pretraining)
    return cls


def _entry(name: str | None) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone '{name}' (model.backbone.name); "
                         f"use one of {sorted(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(cfg: Mapping[str, Any]) -> nn.Module:
    """Backbone from its config, **without** pretrained weights (the run loads those once,
    :func:`load_pretrained`, so that restoring a checkpoint never downloads anything).

    Args:
        cfg: ``{"name": <registered name>, **constructor kwargs}``; ``weights`` and
            ``weights_format`` are not passed to the constructor.

    Raises:
        ValueError: an unknown backbone name.
    """
    kwargs = {k: v for k, v in cfg.items() if k not in ("name", "weights", "weights_format")}
    return _entry(cfg.get("name")).cls(**kwargs)


def preprocessing_for_backbone(cfg: Mapping[str, Any]) -> Preprocessing:
    """The input normalisation of a backbone config (``model.backbone``, or a checkpoint's
    ``hparams.backbone``): its registry entry's, for its ``weights`` and ``weights_format``
    (either may be absent).

    Raises:
        WeightsFormatError: a weight source of unknown format; ValueError: an unknown name.
    """
    entry = _entry(cfg.get("name", "fcn32s"))
    return entry.preprocessing(cfg.get("weights"), cfg.get("weights_format"))


def load_pretrained(backbone: nn.Module, weights: WeightsSpec) -> None:
    """Load pretrained weights into a built backbone, in place, with its registry entry's
    loader (a no-op for ``weights=None``).

    Raises:
        WeightsFormatError: weights for a backbone that takes none (random init only), or
            that do not fit it; what the entry's loader raises (a missing file, a download
            that failed).
    """
    if weights is None:
        return
    entry = next((b for b in BACKBONES.values() if type(backbone) is b.cls), None)
    if entry is None or entry.load_weights is None:
        takes = sorted(b.name for b in BACKBONES.values() if b.load_weights is not None)
        raise WeightsFormatError(
            f"pretrained weights {str(weights)!r} exist only for the backbones {takes}, not "
            f"{type(backbone).__name__}; use model.backbone.weights=null")
    entry.load_weights(backbone, weights)


def pretraining_record(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What pretrained the backbone of ``cfg`` (``model.backbone`` or a checkpoint's
    ``hparams.backbone``), as ``metrics.json`` records it: ``backbone``, ``weights``,
    ``format`` and ``excludes_unseen`` -- True where the pretraining is known to exclude the
    unseen classes (random initialisation; ZS3Net's ImageNet without PASCAL's classes),
    False where it is known to include them (ImageNet-1k holds classes that overlap PASCAL's
    and Context's), None where unknown -- with a ``note``; the registry entry's
    ``pretraining`` where it has one.

    Raises:
        ValueError: an unknown backbone name.
    """
    name = cfg.get("name", "fcn32s")
    entry = _entry(name)
    weights, fmt = cfg.get("weights"), cfg.get("weights_format")
    if entry.pretraining is not None:
        return {"backbone": name, **entry.pretraining(weights, fmt)}
    if weights is None:
        return {"backbone": name, "weights": None, "format": None, "excludes_unseen": True,
                "note": "random initialisation: nothing pretrained"}
    return {"backbone": name, "weights": str(weights), "format": fmt,
            "excludes_unseen": False if weights == "torchvision" else None,
            "note": "ImageNet-1k, whose classes overlap PASCAL's" if weights == "torchvision"
            else "a user's file: whether its pretraining saw the unseen classes is unknown"}
