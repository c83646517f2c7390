"""Adding a gate and a loss is one function and one registry entry each: a toy gate and a toy
loss, registered here and nowhere else, run through a real fit and test of a shrunk demo and
reach every output — the metrics, the per-class table, the tuning lines and the reading."""

import contextlib
import io
import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from zss.inference.gates import GATES, Gate, register_gate
from zss.models.losses import LOSSES, register_loss
from zss.runtime.runner import train_and_test

CONF = Path(__file__).resolve().parents[2] / "conf"
SHRUNK = ["data.dataset.lengths.train=800", "data.dataset.lengths.test=40",
          "model.backbone.width=16", "model.backbone.fc_width=64", "data.batch_size=4",
          "stage1.max_epochs=3", "stage2.max_epochs=2"]


def margin_score(branches, seenmask_logits):
    """The toy gate's rule: "seen" when the best seen cosine beats the best unseen one by
    more than θ (calibrated stacking without its tie rule)."""
    _, score_a, _, score_b = branches
    z = (score_a - score_b).float()
    return z, torch.zeros_like(z, dtype=torch.bool)


def l1_to_class_vector(embedding, labels, class_vectors):
    """The toy loss: mean over valid pixels of the L1 distance between the unit pixel
    embedding and its class's unit vector."""
    valid = labels != 255
    v = torch.nn.functional.normalize(embedding, dim=1).permute(0, 2, 3, 1)[valid]
    s = torch.nn.functional.normalize(class_vectors, dim=1)[labels[valid]]
    return (v - s).abs().sum(1).mean() if len(v) else embedding.sum() * 0


@pytest.fixture()
def toy_gate_and_loss():
    gate = register_gate(Gate("szn_margin", "SZN-margin", "a toy margin on the cosines", "m",
                              "m", tuple(x / 10 for x in range(-10, 11)), margin_score))
    register_loss("l1_toy")(l1_to_class_vector)
    yield gate
    GATES.pop("szn_margin")
    LOSSES.pop("l1_toy")


def test_a_registered_gate_and_loss_run_through_fit_and_test(toy_gate_and_loss, tmp_path,
                                                             glove_cache):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=demo", f"paths.output_dir={tmp_path}",
                                           f"paths.cache_dir={glove_cache}", "model.loss=l1_toy",
                                           "visualize=0", *SHRUNK])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        payload = train_and_test(cfg)
    stage1 = torch.load(payload["stage1_ckpt"], map_location="cpu", weights_only=True)
    assert stage1["hyper_parameters"]["loss"] == "l1_toy"
    tuned = payload["gate_tuning"]["gates"]["szn_margin"]
    assert tuned["parameter"] == "m" and tuned["value"] in toy_gate_and_loss.grid
    m = payload["metrics"]
    assert m["tune/szn_margin/m"] == tuned["value"]
    assert {"miou", "hiou", "miou_unseen", "seenmask_recall", "paper/unseen/miou"} <= {
        k.split("/", 2)[2] for k in m if k.startswith("test/szn_margin/")}
    header = (tmp_path / "per_class_iou.csv").read_text().splitlines()[0].split(",")
    assert "iou_percent/szn_margin" in header
    text = printed.getvalue()
    assert "szn_margin     m     = " in text  # the tuning line, with its parameter
    assert "\nSZN-margin " in text  # the summary row, under the gate's title
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["metrics"]["test/szn_margin/miou"] == m["test/szn_margin/miou"]
