"""Gate tuning's rules (zss.evaluation.tuning), each on hand-built confusion matrices whose
choice its definition gives; an objective that does not vary over the grid leaves the gate
untuned."""

import pytest
import torch

from zss.data.splits import ClassSplit
from zss.evaluation.tables import format_tuning
from zss.evaluation.tuning import (
    TUNING_RULES,
    choose,
    choose_seen_budget,
    choose_unseen_rate,
    tuning_objective,
)

NAMES = ["bg", "a", "b", "u"]  # train_seen bg, a; train_unseen b; unseen u
SPLIT = ClassSplit(name="t", class_names=NAMES, train_seen=NAMES[:2], train_unseen=["b"],
                   unseen=["u"])


def _sweep(sent_unseen: list[int], b_right: list[int]) -> torch.Tensor:
    """(G, 4, 4) matrices of held-out pixels: 100 of bg and 20 of b (no u pixel, as held-out
    images hold none). At grid value i, ``sent_unseen[i]`` bg pixels go to b (the unseen
    branch) and ``b_right[i]`` b pixels are predicted b, the others bg."""
    out = torch.zeros(len(sent_unseen), 4, 4, dtype=torch.int64)
    for i, (s, r) in enumerate(zip(sent_unseen, b_right, strict=True)):
        out[i, 0, 0], out[i, 0, 2] = 100 - s, s
        out[i, 2, 2], out[i, 2, 0] = r, 20 - r
    return out


GRID = (-1.0, -0.5, 0.0, 0.5, 1.0)  # seen-leaning to unseen-leaning
SWEEP = _sweep([0, 2, 6, 20, 60], [0, 4, 10, 16, 20])


def test_stand_in_maximises_the_harmonic_mean_of_train_seen_and_train_unseen():
    objectives = [tuning_objective(h, SPLIT)[0] for h in SWEEP]
    best = max(range(len(GRID)), key=lambda i: objectives[i])
    r = choose(SWEEP, GRID, SPLIT)
    assert r["value"] == GRID[best] and r["objective"] == pytest.approx(objectives[best])


def test_seen_budget_takes_the_most_unseen_leaning_value_within_the_budget():
    """Held-out train_seen mIoU per value: bg IoU (100-s)/(100+20-r) ..., a absent: the best
    is at the seen end; a 5-point budget admits the values down to best - 0.05 and the rule
    takes the largest of them."""
    seen = [tuning_objective(h, SPLIT)[1] for h in SWEEP]
    best = max(seen)
    r = choose_seen_budget(SWEEP, GRID, SPLIT, budget=0.05)
    expected = max(i for i, s in enumerate(seen) if s >= best - 0.05)
    assert r["value"] == GRID[expected] and r["seen_best"] == best and r["budget"] == 0.05
    assert seen[expected + 1] < best - 0.05  # the next value spends more than the budget
    assert choose_seen_budget(SWEEP, GRID, SPLIT, budget=0.0)["value"] == GRID[seen.index(best)]
    assert choose_seen_budget(SWEEP, GRID, SPLIT, budget=0.9)["value"] == GRID[-1]
    flat = torch.stack([SWEEP[2]] * 5)  # the gate changes nothing over its grid
    assert "no budget can be measured" in choose_seen_budget(flat, GRID, SPLIT)["untuned"]


def test_unseen_rate_matches_the_share_of_train_unseen_pixels():
    """20 of 120 held-out pixels are train_unseen: the value that sends the closest share of
    pixels to the unseen branch (s + r of 120) is chosen."""
    target = 20 / 120
    rates = [(s + r) / 120 for s, r in zip([0, 2, 6, 20, 60], [0, 4, 10, 16, 20], strict=True)]
    expected = min(range(len(GRID)), key=lambda i: abs(rates[i] - target))
    r = choose_unseen_rate(SWEEP, GRID, SPLIT)
    assert r["value"] == GRID[expected] and r["target_rate"] == pytest.approx(target)
    no_b = SWEEP.clone()
    no_b[:, 2] = 0
    assert choose_unseen_rate(no_b, GRID, SPLIT)["value"] is None


def test_the_rules_and_their_unseen_branches():
    assert TUNING_RULES["stand_in"].unseen_branch == "train_unseen"
    assert {r.unseen_branch for n, r in TUNING_RULES.items() if n != "stand_in"} == {
        "train_unseen + U names"}
    assert TUNING_RULES["all_names"].choose is choose  # the stand-in objective, other branch


def test_a_constant_objective_is_untuned_not_the_grids_middle():
    """The same objective at every grid value (here 0: the gate never sends a train_unseen
    pixel to its class) is no tuning: value None and the reason, as for a NaN objective."""
    grid = (-1.0, 0.0, 1.0)
    flat = torch.zeros(3, 4, 4, dtype=torch.int64)
    flat[:, 0, 0], flat[:, 2, 0] = 10, 5  # b always predicted as bg: train_unseen IoU 0
    r = choose(flat, grid, SPLIT)
    assert r["value"] is None and r["objective"] == 0.0 and "no signal" in r["untuned"]
    varied = flat.clone()
    varied[1, 2, 0], varied[1, 2, 2] = 2, 3  # at 0.0 some b pixels are right
    r = choose(varied, grid, SPLIT)
    assert r["value"] == 0.0 and r["objective"] > 0 and "untuned" not in r
    empty = torch.zeros(3, 4, 4, dtype=torch.int64)
    assert choose(empty, grid, SPLIT)["value"] is None
    text = format_tuning({"objective": "o", "images": 3, "gates": {
        "szn_maxcos": {"parameter": "tau", **choose(flat, grid, SPLIT)}}}, None)
    assert "szn_maxcos" in text and "untuned, not evaluated" in text and "no signal" in text
