"""Nearest-embedding inference for FCN-JE, SZN and SZN-PS (docs/method.md, "Test time: the
variants" and "Recipes"). Pure functions.

Seenmask convention: channel 1 = "seen" (train_seen), channel 0 = "unseen".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from zss.data.splits import IGNORE_INDEX


def check_labels(labels: Tensor, num_classes: int) -> Tensor:
    """Validate labels and return the valid-pixel mask.

    Args:
        labels: integer tensor (N, H, W), values in ``[0, num_classes)`` or 255 (void).
        num_classes: number of classes ``C``.

    Returns:
        bool tensor (N, H, W), True where ``labels != 255``.

    Raises:
        TypeError: if ``labels`` is not an integer tensor.
        ValueError: naming the offending values if any is outside ``[0, C)`` and not 255.
    """
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got {labels.dtype}")
    valid = labels != IGNORE_INDEX
    bad = valid & ((labels < 0) | (labels >= num_classes))
    if bool(bad.any()):
        values = torch.unique(labels[bad]).tolist()[:10]
        raise ValueError(f"labels {values} outside [0, {num_classes}) and not {IGNORE_INDEX}")
    return valid


def cosine_scores(emb: Tensor, class_emb: Tensor, eps: float = 1e-8) -> Tensor:
    """Cosine similarity of every pixel embedding to every class embedding.

    Args:
        emb: float tensor (N, j, H, W), pixel embeddings.
        class_emb: float tensor (C, j), class embeddings (moved to ``emb``'s device).
        eps: lower bound on the norms (a zero vector scores 0 against everything).

    Returns:
        float32 tensor (N, C, H, W), values in [-1, 1].

    Raises:
        ValueError: if the embedding dimensions differ.
    """
    if emb.dim() != 4 or class_emb.dim() != 2 or emb.shape[1] != class_emb.shape[1]:
        raise ValueError(
            f"expected emb (N,j,H,W) and class_emb (C,j), got {tuple(emb.shape)}, "
            f"{tuple(class_emb.shape)}"
        )
    with torch.autocast(emb.device.type, enabled=False):  # float32 even under AMP
        v = F.normalize(emb.float(), dim=1, eps=eps)
        s = F.normalize(class_emb.to(device=emb.device, dtype=torch.float32), dim=1, eps=eps)
        return torch.einsum("njhw,cj->nchw", v, s).clamp(-1.0, 1.0)


def _check_candidates(candidates: Tensor, num_classes: int, name: str = "candidates") -> Tensor:
    if candidates.dtype != torch.bool or candidates.shape != (num_classes,):
        raise ValueError(
            f"{name} must be a bool tensor of shape ({num_classes},), got "
            f"{candidates.dtype} {tuple(candidates.shape)}"
        )
    if not bool(candidates.any()):
        raise ValueError(f"{name} is empty: no class to predict")
    return candidates


def masked_argmax(scores: Tensor, candidates: Tensor) -> Tensor:
    """Per-pixel argmax restricted to a candidate set (docs/method.md, "Recipes").

    Equivalent to setting the non-candidates' scores to −inf before the argmax, but done by
    selecting the candidate channels, so a non-candidate can never win — not even with NaN or
    −inf scores. (Zeroing non-candidates, as the original code did, lets them win when every
    candidate's cosine is negative.) Ties go to the lowest class index.

    Args:
        scores: float tensor (N, C, H, W).
        candidates: bool tensor (C,), True for the classes that may be predicted.

    Returns:
        int64 tensor (N, H, W) of class indices in ``[0, C)``, all candidates.

    Raises:
        ValueError: if ``candidates`` is empty, not bool or not of length C.
    """
    _check_candidates(candidates, scores.shape[1])
    idx = candidates.to(scores.device).nonzero().squeeze(1)
    return idx[scores.index_select(1, idx).argmax(dim=1)]


def predict_fcn_je(scores: Tensor, candidates: Tensor) -> Tensor:
    """FCN-JE: nearest class among ``candidates`` (all evaluated classes), no seenmask.

    Shapes as :func:`masked_argmax`: (N, C, H, W), bool (C,) -> int64 (N, H, W).
    """
    return masked_argmax(scores, candidates)


def _branch(scores: Tensor, is_seen: Tensor, seen: Tensor, unseen: Tensor) -> Tensor:
    num_classes = scores.shape[1]
    _check_candidates(seen, num_classes, "seen_candidates")
    _check_candidates(unseen, num_classes, "unseen_candidates")
    return torch.where(is_seen, masked_argmax(scores, seen), masked_argmax(scores, unseen))


def predict_szn(
    scores: Tensor, seenmask_logits: Tensor, seen_candidates: Tensor, unseen_candidates: Tensor
) -> Tensor:
    """SZN: the seenmask picks, per pixel, the best seen or the best unseen candidate.

    A pixel is "seen" when ``seenmask_logits[:, 1] > seenmask_logits[:, 0]`` (argmax = 1;
    a tie counts as unseen).

    Args:
        scores: float (N, C, H, W), e.g. :func:`cosine_scores`.
        seenmask_logits: float (N, 2, H, W); channel 1 = seen, 0 = unseen.
        seen_candidates: bool (C,), classes of the seen branch (train_seen).
        unseen_candidates: bool (C,), classes of the unseen branch (train_unseen ∪ U at test).

    Returns:
        int64 (N, H, W) class indices.

    Raises:
        ValueError: on an empty or malformed candidate set, or mismatched shapes.
    """
    if seenmask_logits.shape[1] != 2 or seenmask_logits.shape[-2:] != scores.shape[-2:]:
        raise ValueError(
            f"seenmask_logits {tuple(seenmask_logits.shape)} do not match scores "
            f"{tuple(scores.shape)} (expected (N, 2, H, W))"
        )
    is_seen = seenmask_logits[:, 1] > seenmask_logits[:, 0]
    return _branch(scores, is_seen, seen_candidates, unseen_candidates)


def predict_szn_ps(
    scores: Tensor, labels: Tensor, seen_candidates: Tensor, unseen_candidates: Tensor
) -> Tensor:
    """SZN-PS: SZN with the perfect seenmask taken from the ground truth (upper bound).

    Pixels whose label is a seen candidate take the seen branch; all others (unseen
    candidates and void, which metrics ignore) take the unseen branch.

    Args:
        scores: float (N, C, H, W).
        labels: int64 (N, H, W), values in ``[0, C)`` or 255.
        seen_candidates, unseen_candidates: bool (C,), as in :func:`predict_szn`.

    Returns:
        int64 (N, H, W) class indices.

    Raises:
        ValueError: on labels outside ``[0, C)`` ∪ {255}, or bad candidate sets.
    """
    num_classes = scores.shape[1]
    _check_candidates(seen_candidates, num_classes, "seen_candidates")
    valid = check_labels(labels, num_classes)
    seen = seen_candidates.to(labels.device)
    is_seen = seen[labels.where(valid, 0)] & valid
    return _branch(scores, is_seen.to(scores.device), seen_candidates, unseen_candidates)
