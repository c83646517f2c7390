"""A reduced `+experiment=demo` (800 generated training images, 3 + 1 epochs, a narrower
CNN): the zero-shot pattern the demo is meant to show, its files, and the consistency of the
variants."""

import contextlib
import io
import json
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from PIL import Image

from zss.data.splits import IGNORE_INDEX
from zss.modules import Stage2Module
from zss.modules.evaluation import predict_variants
from zss.pipeline import train_and_test

pytestmark = pytest.mark.slow

CONF = Path(__file__).resolve().parents[1] / "conf"
REDUCED = ["data.dataset.lengths.train=800", "data.dataset.lengths.test=60",
           "model.backbone.width=16", "model.backbone.fc_width=64", "data.batch_size=4",
           "stage1.max_epochs=3", "stage2.max_epochs=1", "visualize=2"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory, glove_cache):
    out = tmp_path_factory.mktemp("demo")
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=demo", f"paths.output_dir={out}",
                                           f"paths.cache_dir={glove_cache}", *REDUCED])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        payload = train_and_test(cfg)
    return cfg, out, payload, printed.getvalue()


def test_reduced_demo_shows_the_zero_shot_pattern(demo):
    _, out, payload, printed = demo
    m = payload["metrics"]
    # FCN-JE maps U pixels onto seen classes; with the perfect seenmask they are recovered
    assert m["test/szn_ps/miou_unseen"] - m["test/fcn_je/miou_unseen"] >= 0.25
    assert m["test/szn_ps/hiou"] >= m["test/szn/hiou"]
    for key in ("seenmask_recall_train_unseen", "seenmask_recall_unseen", "seenmask_precision"):
        value = m[f"test/szn/{key}"]
        assert math.isnan(value) or 0.0 <= value <= 1.0
    assert payload["embedding_source"] == "glove-6b-50d"
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["embedding_source"] == "glove-6b-50d" and saved["split"] == "voc_17_2_2"
    assert "miou_unseen" in printed and "Seenmask (SZN)" in printed and "SZN-PS" in printed


def test_reduced_demo_draws_the_prediction_grid(demo):
    _, out, payload, _ = demo
    png = out / "predictions.png"
    assert payload["predictions_png"] == str(png)
    with Image.open(png) as img:
        assert img.mode == "RGB" and img.width > 6 * 64 * 3 and img.height > 2 * 64 * 3


def test_szn_equals_szn_ps_where_the_learned_seenmask_agrees(demo):
    cfg, _, payload, _ = demo
    from hydra.utils import instantiate

    from zss.models import preprocessing_for

    module = Stage2Module.load_from_checkpoint(payload["stage2_ckpt"], map_location="cpu").eval()
    split = module.split
    dm = instantiate(cfg.data, _partial_=True)(split=split, normalize=preprocessing_for(None))
    dm.setup("test")
    seen = split.mask(split.train_seen)
    agreed = disagreed = 0
    with torch.no_grad():
        for batch in dm.test_dataloader():
            out = module.net(batch["image"])
            label = batch["label"]
            preds = predict_variants(out, label, module.class_embeddings, split,
                                     ("szn", "szn_ps"))
            valid = label != IGNORE_INDEX
            truly_seen = seen[label.where(valid, 0)]
            said_seen = out["seenmask"].argmax(1) == 1
            agree = valid & (said_seen == truly_seen)
            assert torch.equal(preds["szn"][agree], preds["szn_ps"][agree])
            # where they disagree, the two variants answer from different candidate sets
            differ = valid & ~agree
            assert not (seen[preds["szn"][differ]] == seen[preds["szn_ps"][differ]]).any()
            agreed += int(agree.sum())
            disagreed += int(differ.sum())
    assert agreed > 0 and disagreed > 0
