"""Nearest-class prediction (zss.inference.nearest): cosine scores, the masked argmax and the
FCN-JE, SZN and SZN-PS predictors."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.helpers import random_labels
from zss.data.splits import IGNORE_INDEX
from zss.inference.nearest import (
    cosine_scores,
    masked_argmax,
    predict_fcn_je,
    predict_szn,
    predict_szn_ps,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def test_masked_argmax_never_leaves_the_candidate_set() -> None:
    c = 6
    candidates = torch.tensor([False, True, False, True, True, False])
    # every candidate cosine negative, non-candidates at 0: a zeroing implementation picks them
    scores = -torch.rand(2, c, 7, 5) - 0.1
    scores[:, ~candidates] = 0.0
    pred = masked_argmax(scores, candidates)
    assert pred.dtype == torch.int64 and pred.shape == (2, 7, 5)
    assert candidates[pred].all()
    ref = scores.masked_fill(~candidates.view(1, c, 1, 1), float("-inf")).argmax(1)
    assert torch.equal(pred, ref)
    scores[:, 3] = float("nan")  # even NaN / -inf candidates cannot leak
    scores[:, 1] = float("-inf")
    assert candidates[masked_argmax(scores, candidates)].all()
    assert torch.equal(predict_fcn_je(scores, torch.ones(c, dtype=torch.bool)), scores.argmax(1))
    with pytest.raises(ValueError, match="empty"):
        masked_argmax(scores, torch.zeros(c, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        masked_argmax(scores, torch.ones(c + 1, dtype=torch.bool))


def test_cosine_scores_range_and_zero_vector() -> None:
    emb = torch.randn(2, 5, 3, 4)
    emb[0, :, 0, 0] = 0.0
    class_emb = torch.randn(7, 5)
    s = cosine_scores(emb, class_emb)
    assert s.shape == (2, 7, 3, 4) and s.dtype == torch.float32
    assert s.abs().max() <= 1.0 and torch.equal(s[0, :, 0, 0], torch.zeros(7))
    ref = F.cosine_similarity(emb[1, :, 2, 3][None], class_emb, dim=1)
    torch.testing.assert_close(s[1, :, 2, 3], ref)


def test_predict_szn_follows_the_seenmask_and_ps_matches_gt_seenmask() -> None:
    c = 6
    seen = torch.tensor([True, True, True, False, False, False])
    unseen = ~seen
    scores = torch.randn(2, c, 8, 9)
    logits = torch.randn(2, 2, 8, 9)
    pred = predict_szn(scores, logits, seen, unseen)
    is_seen = logits.argmax(1) == 1
    assert seen[pred[is_seen]].all() and unseen[pred[~is_seen]].all()
    assert torch.equal(pred[is_seen], masked_argmax(scores, seen)[is_seen])
    assert torch.equal(pred[~is_seen], masked_argmax(scores, unseen)[~is_seen])

    labels = random_labels(2, 8, 9, c)
    gt_seen = (labels != IGNORE_INDEX) & seen[labels.clamp(max=c - 1)]
    gt_logits = torch.stack([(~gt_seen).float(), gt_seen.float()], dim=1)
    ps = predict_szn_ps(scores, labels, seen, unseen)
    assert ps.dtype == torch.int64
    assert torch.equal(ps, predict_szn(scores, gt_logits, seen, unseen))
    with pytest.raises(ValueError, match="unseen_candidates is empty"):
        predict_szn(scores, logits, seen, torch.zeros(c, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\[9\]"):
        predict_szn_ps(scores, torch.full((2, 8, 9), 9), seen, unseen)


def test_predict_szn_on_a_hand_worked_example() -> None:
    # classes 0, 1 seen (train_seen), 2, 3 unseen; one image of 1 x 5 pixels
    seen = torch.tensor([True, True, False, False])
    scores = torch.tensor([[0.9, 0.2, 0.5, 0.1],     # p0
                           [-0.3, -0.6, 0.8, -0.1],  # p1: every seen cosine negative
                           [0.1, 0.4, 0.3, 0.7],     # p2
                           [0.6, 0.1, 0.2, 0.3],     # p3
                           [0.9, 0.1, 0.2, 0.3]]     # p4
                          ).T.reshape(1, 4, 1, 5)
    logits = torch.tensor([[0.0, 1.0],   # p0 seen
                           [0.0, 2.0],   # p1 seen: class 0 (-0.3), never the zeroed 2, 3
                           [2.0, 1.0],   # p2 unseen: class 3 (0.7)
                           [0.5, 0.5],   # p3 a tie counts as unseen: class 3 (0.3 > 0.2)
                           [-1.0, 3.0]]  # p4 seen: class 0
                          ).T.reshape(1, 2, 1, 5)
    assert predict_szn(scores, logits, seen, ~seen).tolist() == [[[0, 0, 3, 3, 0]]]
    # the perfect seenmask follows the labels: seen 1, unseen 2, void, seen 0, unseen 3
    labels = torch.tensor([[[1, 2, IGNORE_INDEX, 0, 3]]])
    assert predict_szn_ps(scores, labels, seen, ~seen).tolist() == [[[0, 2, 3, 0, 3]]]
    assert predict_fcn_je(scores, torch.ones(4, dtype=torch.bool)).tolist() == [[[0, 2, 3, 0, 0]]]
