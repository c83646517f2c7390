"""Per-pixel losses, averaged over the valid pixels of the whole batch, and the registry of
stage 1's losses (``model.loss``: :data:`LOSSES`).

Every loss is a mean over ALL valid pixels (label != 255) of the batch — not a mean of
per-image means — so it does not depend on how pixels are grouped into batches. With no valid
pixel the loss is a zero that still has a graph (``backward()`` works, gradients are 0).
All losses are computed in float32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from zss.data.splits import IGNORE_INDEX
from zss.inference.nearest import check_labels, cosine_scores


def _check_shapes(pred: Tensor, labels: Tensor) -> None:
    if pred.dim() != 4 or labels.shape != (pred.shape[0], *pred.shape[2:]):
        raise ValueError(
            f"expected prediction (N,K,H,W) and labels (N,H,W), got {tuple(pred.shape)}, "
            f"{tuple(labels.shape)}"
        )


def cosine_embedding_loss(
    emb: Tensor, labels: Tensor, class_emb: Tensor, eps: float = 1e-8
) -> Tensor:
    """Stage-1 loss of SZN: mean over valid pixels of ``1 − cos(v, s_label)``.

    Args:
        emb: float (N, j, H, W), pixel embeddings ``v``.
        labels: int64 (N, H, W), class indices in ``[0, C)`` or 255 (ignored).
        class_emb: float (C, j), class embeddings ``s``.
        eps: norm floor of :func:`~zss.inference.nearest.cosine_scores`.

    Returns:
        float32 scalar in [0, 2]; 0 for a perfect embedding or when no pixel is valid.

    Raises:
        ValueError: on mismatched shapes or labels outside ``[0, C)`` ∪ {255}.
    """
    _check_shapes(emb, labels)
    valid = check_labels(labels, class_emb.shape[0])
    cos = cosine_scores(emb, class_emb, eps=eps)  # (N, C, H, W): cheaper than (N, H, W, j)
    cos_label = cos.gather(1, labels.where(valid, 0).long().unsqueeze(1)).squeeze(1)
    return ((1.0 - cos_label) * valid).sum() / valid.sum().clamp(min=1)


def mse_embedding_loss(emb: Tensor, labels: Tensor, class_emb: Tensor) -> Tensor:
    """MSE ablation of the stage-1 loss: ``1/|I| Σ_{i ∈ I} ||v_i − s_{label(i)}||²``.

    The squared distance is **summed over the j channels** and averaged over the valid
    pixels I only: the paper's formula and the original code's
    ``utils.mse_loss`` (sum over pixels and channels divided by the number of valid pixels).
    ``nn.MSELoss``'s element mean would be j times smaller.

    Args:
        emb: float (N, j, H, W); labels: int64 (N, H, W) (255 ignored); class_emb: float (C, j).

    Returns:
        float32 scalar >= 0; 0 for a perfect embedding or when no pixel is valid.

    Raises:
        ValueError: on mismatched shapes or labels outside ``[0, C)`` ∪ {255}.
    """
    _check_shapes(emb, labels)
    if class_emb.dim() != 2 or class_emb.shape[1] != emb.shape[1]:
        raise ValueError(
            f"class_emb {tuple(class_emb.shape)} does not match emb {tuple(emb.shape)}"
        )
    valid = check_labels(labels, class_emb.shape[0])
    if not bool(valid.any()):
        return emb.sum() * 0.0
    v = emb.permute(0, 2, 3, 1)[valid].float()  # (P, j)
    s = class_emb.to(device=emb.device, dtype=torch.float32)[labels[valid].long()]
    return (v - s).square().sum(dim=1).mean()


def masked_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Per-pixel softmax cross-entropy, mean over valid pixels (target != 255).

    Used for FCN-S (K = number of classes) and the stage-2 seenmask (K = 2; with two logits
    it equals the binary cross-entropy of the logit difference).

    Args:
        logits: float (N, K, H, W).
        target: int64 (N, H, W), values in ``[0, K)`` or 255.

    Returns:
        float32 scalar >= 0; 0 when no pixel is valid.

    Raises:
        ValueError: on mismatched shapes or targets outside ``[0, K)`` ∪ {255}.
    """
    _check_shapes(logits, target)
    valid = check_labels(target, logits.shape[1])
    total = F.cross_entropy(
        logits.float(), target.long(), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    return total / valid.sum().clamp(min=1)


@dataclass(frozen=True)
class Loss:
    """A stage-1 loss.

    Attributes:
        name: its ``model.loss``.
        variant: the model it trains: ``"fcn_je"`` (its function gets the embedding (N, j, H,
            W) and the class vectors (C, j)) or ``"fcn_s"`` (the logits (N, C, H, W) and None).
        fn: ``(prediction, labels int64 (N, H, W) with 255 void, class vectors or None) ->``
            float32 scalar, a mean over the valid pixels of the batch.
    """

    name: str
    variant: str
    fn: Callable[[Tensor, Tensor, Tensor | None], Tensor]


LOSSES: dict[str, Loss] = {}
"""The stage-1 losses by ``model.loss`` (:func:`register_loss`); the config check and
stage 1 read this table."""


def register_loss(name: str, variant: str = "fcn_je") -> Callable:
    """Decorator: add ``fn`` to :data:`LOSSES` under ``name`` for ``variant`` (see
    :class:`Loss`); returns ``fn`` unchanged.

    Raises:
        ValueError: a name that is taken, or a variant other than ``fcn_je`` / ``fcn_s``.
    """
    if variant not in ("fcn_je", "fcn_s"):
        raise ValueError(f"a loss trains fcn_je or fcn_s, not {variant!r}")

    def add(fn: Callable[[Tensor, Tensor, Tensor | None], Tensor]) -> Callable:
        if name in LOSSES:
            raise ValueError(f"loss name {name!r} is already registered")
        LOSSES[name] = Loss(name, variant, fn)
        return fn

    return add


register_loss("cosine")(cosine_embedding_loss)  # the paper's
register_loss("mse")(mse_embedding_loss)  # the paper's ablation
register_loss("ce", "fcn_s")(lambda logits, labels, _: masked_cross_entropy(logits, labels))
