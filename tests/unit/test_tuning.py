"""Gate tuning's choice (zss.evaluation.tuning): an objective that does not vary over the
grid leaves the gate untuned."""

import torch

from zss.data.splits import ClassSplit


def test_a_constant_objective_is_untuned_not_the_grids_middle():
    """The same objective at every grid value (here 0: the gate never sends a train_unseen
    pixel to its class) is no tuning: value None and the reason, as for a NaN objective."""
    from zss.evaluation.tuning import choose, format_tuning

    names = ["bg", "a", "b", "u"]
    split = ClassSplit(name="t", class_names=names, train_seen=names[:2],
                       train_unseen=["b"], unseen=["u"])
    grid = (-1.0, 0.0, 1.0)
    flat = torch.zeros(3, 4, 4, dtype=torch.int64)
    flat[:, 0, 0], flat[:, 2, 0] = 10, 5  # b always predicted as bg: train_unseen IoU 0
    r = choose(flat, grid, split)
    assert r["value"] is None and r["objective"] == 0.0 and "no signal" in r["untuned"]
    varied = flat.clone()
    varied[1, 2, 0], varied[1, 2, 2] = 2, 3  # at 0.0 some b pixels are right
    r = choose(varied, grid, split)
    assert r["value"] == 0.0 and r["objective"] > 0 and "untuned" not in r
    empty = torch.zeros(3, 4, 4, dtype=torch.int64)
    assert choose(empty, grid, split)["value"] is None
    text = format_tuning({"objective": "o", "images": 3, "gates": {
        "szn_maxcos": {"parameter": "tau", **choose(flat, grid, split)}}}, None)
    assert "szn_maxcos" in text and "untuned, not evaluated" in text and "no signal" in text
