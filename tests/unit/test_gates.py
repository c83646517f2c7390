"""The seen/unseen gates, their one-pass threshold sweep and AUSUC (zss.inference.gates,
zss.evaluation.threshold_sweep, the evaluator's γ curve)."""

import math

import pytest
import torch

from zss.data.splits import ClassSplit
from zss.evaluation.evaluator import CURVE_GAMMAS, ZeroShotEvaluator, curve_inputs
from zss.evaluation.metrics import confusion_matrix_metric, zero_shot_scores
from zss.evaluation.threshold_sweep import ThresholdSweep, ausuc
from zss.inference.gates import (
    GATES,
    calibrated_stacking,
    decision,
    max_cosine,
    seenmask,
    seenmask_threshold,
    take_branch,
)
from zss.inference.nearest import cosine_scores, masked_argmax, predict_fcn_je, predict_szn

# classes 1, 2 seen; 0, 3 unseen (an unseen class below the seen ones, for the tie rule)
SEEN = torch.tensor([False, True, True, False])
UNSEEN = ~SEEN
# four pixels, dyadic cosines (exact in float32); per pixel a = best seen, b = best unseen:
# p0 a=1 (0.75) b=0 (0.5); p1 all tied: a=1, b=0; p2 all negative: a=1 (-0.5), b=3 (-0.25);
# p3 seen tie 1/2 -> a=1 (0.5), b=0 (0.125)
SCORES = torch.tensor([[0.5, 0.75, 0.25, 0.125],
                       [0.375, 0.375, 0.375, 0.375],
                       [-0.75, -0.5, -0.875, -0.25],
                       [0.125, 0.5, 0.5, -0.5]]).T.reshape(1, 4, 1, 4)
# seenmask logits (unseen, seen) per pixel: z = 2, 0 (tie), -3, 0.5
LOGITS = torch.tensor([[0.0, 1.0, 3.0, 0.0], [2.0, 1.0, 0.0, 0.5]]).reshape(1, 2, 1, 4)


def _px(pred):
    return pred.flatten().tolist()


@pytest.mark.parametrize("gamma, expected", [
    (0.0, [1, 0, 3, 1]),     # FCN-JE: p1's four-way tie goes to class 0
    (0.25, [0, 0, 3, 1]),    # p0: 0.75 - 0.25 ties 0.5, lowest index 0 (unseen)
    (-0.25, [1, 1, 1, 1]),   # p2: -0.5 + 0.25 ties -0.25, lowest index 1 (seen)
    (0.375, [0, 0, 3, 0]),
    (2.5, [0, 0, 3, 0]),     # never seen
    (-2.5, [1, 1, 1, 1]),    # always seen
])
def test_calibrated_stacking_by_hand(gamma, expected):
    assert _px(calibrated_stacking(SCORES, SEEN, UNSEEN, gamma)) == expected
    # Chao et al.'s definition: argmax over all after subtracting gamma from the seen scores
    shifted = SCORES - gamma * SEEN.float()[None, :, None, None]
    assert _px(masked_argmax(shifted, torch.ones(4, dtype=torch.bool))) == expected


@pytest.mark.parametrize("tau, expected", [
    (-1.0, [1, 1, 1, 1]),    # never unseen
    (-0.5, [1, 1, 1, 1]),    # p2's max seen cosine -0.5 is not below -0.5
    (0.375, [1, 1, 3, 1]),   # p1 at exactly tau stays seen; p2 (all negative) unseen -> 3
    (0.5, [1, 0, 3, 1]),
    (2.0, [0, 0, 3, 0]),     # always unseen
])
def test_max_cosine_by_hand(tau, expected):
    assert _px(max_cosine(SCORES, SEEN, UNSEEN, tau)) == expected


@pytest.mark.parametrize("t, expected", [
    (0.5, [1, 0, 3, 1]),     # the argmax; p1's tied logits count as unseen
    (0.8, [1, 0, 3, 0]),     # logit 0.8 = 1.386: p3 (z = 0.5) becomes unseen
    (0.95, [0, 0, 3, 0]),    # logit 2.94 > p0's z = 2
    (0.01, [1, 1, 1, 1]),    # logit -4.6: below every z, p2's -3 included
    (0.0, [1, 1, 1, 1]),
    (1.0, [0, 0, 3, 0]),
])
def test_seenmask_threshold_by_hand(t, expected):
    assert _px(seenmask_threshold(SCORES, LOGITS, SEEN, UNSEEN, t)) == expected
    # P(seen) > t, computed the direct way
    p_seen = LOGITS.softmax(1)[:, 1]
    a, b = masked_argmax(SCORES, SEEN), masked_argmax(SCORES, UNSEEN)
    assert _px(torch.where(p_seen > t, a, b)) == expected


def _random_case(seed, n=3, c=6, h=9, w=7, levels=4):
    g = torch.Generator().manual_seed(seed)
    # coarse values: many ties, and rows whose every cosine is negative
    scores = torch.randint(-levels, levels + 1, (n, c, h, w), generator=g).float() / levels
    logits = torch.randint(-2, 3, (n, 2, h, w), generator=g).float()
    seen = torch.zeros(c, dtype=torch.bool)
    seen[torch.randperm(c, generator=g)[: c // 2]] = True
    return scores, logits, seen


@pytest.mark.parametrize("seed", range(5))
def test_the_limits_equal_the_known_variants(seed):
    scores, logits, seen = _random_case(seed)
    everything = torch.ones_like(seen)
    assert torch.equal(calibrated_stacking(scores, seen, ~seen, 0.0),
                       predict_fcn_je(scores, everything))
    assert torch.equal(max_cosine(scores, seen, ~seen, -1.0), masked_argmax(scores, seen))
    assert torch.equal(max_cosine(scores, seen, ~seen, 2.0), masked_argmax(scores, ~seen))
    szn = predict_szn(scores, logits, seen, ~seen)
    assert torch.equal(seenmask_threshold(scores, logits, seen, ~seen, 0.5), szn)
    assert torch.equal(seenmask(scores, logits, seen, ~seen), szn)
    # gamma beyond the cosines' range: unseen candidates only
    assert bool((~seen)[calibrated_stacking(scores, seen, ~seen, 2.05)].all())
    assert bool(seen[calibrated_stacking(scores, seen, ~seen, -2.05)].all())


@pytest.mark.parametrize("gate", sorted(GATES))
def test_the_sweep_equals_one_confusion_matrix_per_threshold(gate):
    scores, logits, seen = _random_case(7, levels=8)
    c = scores.shape[1]
    g = torch.Generator().manual_seed(1)
    target = torch.randint(0, c, scores[:, 0].shape, generator=g)
    target[torch.rand(target.shape, generator=g) < 0.2] = 255
    z, tie, a, b = decision(gate, scores, seen, ~seen, logits)
    # grid points on the values z takes (ties at the threshold), between them, and beyond
    grid = [-math.inf, -2.5, -1.0, -0.5, -0.25, -0.1, 0.0, 0.125, 0.5, 1.0, 2.0, math.inf]
    sweep = ThresholdSweep(grid, c)
    half = target.shape[0] // 2 + 1  # two batches
    for sl in (slice(0, half), slice(half, None)):
        sweep.update(z[sl], tie[sl], a[sl], b[sl], target[sl])
    got = sweep.compute()
    assert got.shape == (len(grid), c, c)
    for i, theta in enumerate(grid):
        ref = confusion_matrix_metric(c)
        ref.update(take_branch(z, tie, theta, a, b), target)
        assert torch.equal(got[i], ref.compute()), theta


def test_the_sweep_refuses_an_unsorted_grid():
    with pytest.raises(ValueError, match="strictly increasing"):
        ThresholdSweep([0.0, 0.0, 1.0], 3)


def test_ausuc_of_known_curves():
    assert ausuc([0.0, 0.5, 1.0], [1.0, 0.5, 0.0]) == pytest.approx(0.5)
    assert ausuc([0.0, 1.0], [0.8, 0.8]) == pytest.approx(0.8)
    # (.2, .3) is dominated by (.2, .6): frontier (0, .6), (.2, .6), (.5, 0): .12 + .09
    assert ausuc([0.0, 0.2, 0.2, 0.5], [0.6, 0.6, 0.3, 0.0]) == pytest.approx(0.21)
    # a curve that turns back (mIoU: U false positives): the return leg is dominated
    assert ausuc([0.0, 0.3, 0.1], [0.6, 0.5, 0.0]) == pytest.approx(0.3 * 1.1 / 2)
    assert ausuc([0.1, 0.3, 0.0], [0.0, 0.5, 0.6]) == pytest.approx(0.3 * 1.1 / 2)  # any order
    # a point above the seen-only one: held at its height down to unseen 0 (.12 + .09)
    assert ausuc([0.0, 0.2, 0.5], [0.5, 0.6, 0.0]) == pytest.approx(0.21)
    assert ausuc([0.0, math.nan, 1.0], [1.0, 0.3, 1.0]) == pytest.approx(1.0)  # NaN skipped
    assert math.isnan(ausuc([0.1], [0.2]))
    with pytest.raises(ValueError):
        ausuc([0.0, 1.0], [1.0])


def test_the_test_curve_runs_from_seen_only_to_unseen_only():
    names = [f"c{i}" for i in range(6)]
    split = ClassSplit(name="t", class_names=names, train_seen=names[:3],
                       train_unseen=[names[3]], unseen=names[4:])
    g = torch.Generator().manual_seed(3)
    out = {"embedding": torch.randn(2, 5, 8, 8, generator=g)}
    vectors = torch.randn(6, 5, generator=g)
    labels = torch.randint(0, 6, (2, 8, 8), generator=g)
    labels[0, :2] = 255
    ev = ZeroShotEvaluator(split, ("fcn_je",))
    preds = {"fcn_je": predict_fcn_je(cosine_scores(out["embedding"], vectors),
                                      torch.ones(6, dtype=torch.bool))}
    ev.update(preds, labels, curve_inputs(cosine_scores(out["embedding"], vectors), split))
    matrices = ev.curve.compute()
    seen = split.mask(split.seen)  # S = train_seen and train_unseen: Chao et al.'s seen axis
    assert matrices[0][:, ~seen].sum() == 0 and matrices[0].sum() == (labels != 255).sum()
    assert matrices[-1][:, seen].sum() == 0  # gamma = 2.05: U candidates only
    curve = ev.tradeoff()
    assert curve["gamma"] == list(CURVE_GAMMAS) and curve["miou_unseen"][0] == 0.0
    # gamma = 0 is FCN-JE
    fcn_je = zero_shot_scores(ev.matrices["fcn_je"].compute(), split)
    i = CURVE_GAMMAS.index(0.0)
    assert torch.equal(matrices[i], ev.matrices["fcn_je"].compute())
    assert (curve["miou_unseen"][i], curve["miou_seen"][i]) == (fcn_je["miou_unseen"],
                                                               fcn_je["miou_seen"])
    assert curve["ausuc"] == pytest.approx(ausuc(curve["miou_unseen"], curve["miou_seen"]))


def test_the_test_curve_is_chao_et_al_calibrated_stacking_of_s_against_u():
    """Each point of the curve against calibrated stacking written out (Chao et al. 2016,
    eq. 3): argmax over all classes of the cosine minus gamma on every class with training
    labels (train_seen and train_unseen), the lowest index on a tie."""
    names = [f"c{i}" for i in range(6)]
    split = ClassSplit(name="t", class_names=names, train_seen=names[:3],
                       train_unseen=names[3:5], unseen=names[5:])
    g = torch.Generator().manual_seed(5)
    cos = cosine_scores(torch.randn(2, 4, 9, 7, generator=g), torch.randn(6, 4, generator=g))
    labels = torch.randint(0, 6, (2, 9, 7), generator=g)
    ev = ZeroShotEvaluator(split, ("fcn_je",))
    ev.update({"fcn_je": predict_fcn_je(cos, torch.ones(6, dtype=torch.bool))}, labels,
              curve_inputs(cos, split))
    curve, matrices = ev.tradeoff(), ev.curve.compute()
    offset = torch.tensor([1.0, 1, 1, 1, 1, 0])[None, :, None, None]  # 1 on S
    for i in (0, 150, 190, 205, 230, len(CURVE_GAMMAS) - 1):
        gamma = CURVE_GAMMAS[i]
        pred = (cos - gamma * offset).argmax(1)  # torch's argmax: the first maximum
        ref = torch.bincount(labels.flatten() * 6 + pred.flatten(), minlength=36).view(6, 6)
        assert torch.equal(matrices[i], ref), gamma
        ref_scores = zero_shot_scores(ref, split)
        assert curve["miou_seen"][i] == ref_scores["miou_seen"]
        assert curve["miou_unseen"][i] == ref_scores["miou_unseen"]
