"""A text encoder as the class-embedding source in real runs (`python -m zss.run`): the demo
with a random CLIP ViT-B-16 text tower trains and evaluates every variant and records the
source and the table's sha256; the source ablation sweep runs two of its jobs (GloVe 6B 50-d,
the random CLIP tower) on the demo's data, the CLIP job reads the demo's cached table, and
`python -m zss.report` sets them side by side. Nothing is downloaded."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.helpers import REPO, TINY_DEMO
from zss.runtime.run_record import tensor_sha256

SOURCE = "open_clip:ViT-B-16 pretrained=None templates=clip_imagenet_7"
TINY_SWEEP = ["+debug=demo_data", *TINY_DEMO[:-2], "trainer.log_every_n_steps=1"]


def _zss(*args, module="zss.run"):
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def demo_run(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    _zss("+experiment=demo", "embedding=clip_vit_b16", "embedding.pretrained=null",
         "embedding.templates=clip_imagenet_7", "embedding.pca_vocab=100", *TINY_DEMO,
         f"paths.cache_dir={cache}", f"hydra.run.dir={out}")
    return json.loads((out / "metrics.json").read_text()), out


def test_the_demo_with_a_random_clip_tower_records_source_and_table(demo_run, cache):
    payload, out = demo_run
    assert payload["status"] == "finished" and payload["embedding_source"] == SOURCE
    assert {k.split("/")[1] for k in payload["metrics"] if k.startswith("test/")} >= {
        "fcn_je", "szn", "szn_ps"}
    (table,) = (cache / "embeddings").glob("textemb-*.npy")
    emb = np.load(table)
    assert emb.shape == (21, 20)
    assert payload["class_embeddings_sha256"] == tensor_sha256(torch.from_numpy(emb))
    log = (out / "run.log").read_text()
    assert "(j = 20 from open_clip:ViT-B-16): built and cached" in log
    assert "[root][INFO]" not in log  # open_clip's ten build-step lines are kept out


def test_the_source_sweep_and_its_report(demo_run, cache, tmp_path):
    sweep = tmp_path / "sweep"
    _zss("+experiment=ablation_embedding_source", *TINY_SWEEP,
         "embedding=glove_6b_50d,clip_vit_b16_random", "embedding_j=j20",
         f"paths.cache_dir={cache}", f"hydra.sweep.dir={sweep}")
    jobs = [json.loads((sweep / j / "metrics.json").read_text()) for j in ("0", "1")]
    assert [j["status"] for j in jobs] == ["finished", "finished"]
    assert jobs[0]["embedding_source"] == "glove-6b-50d" and jobs[1]["embedding_source"] == SOURCE
    # the same table as the demo run's, read from the cache
    assert jobs[1]["class_embeddings_sha256"] == demo_run[0]["class_embeddings_sha256"]
    assert "open_clip:ViT-B-16): cache hit" in (sweep / "1" / "run.log").read_text()

    _zss(str(sweep), module="zss.report")
    with open(sweep / "report" / "results.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["variant"] == "SZN"]
    assert [(r["embedding_source"], r["embed_dim"]) for r in rows] == [
        ("glove-6b-50d", "20"), (SOURCE, "20")]
    md = (sweep / "report" / "results.md").read_text()
    assert f"| {SOURCE} | 20 |" in md and "| glove-6b-50d | 20 |" in md
    with Image.open(sweep / "report" / "embedding_sources.png") as img:
        assert img.format == "PNG" and min(img.size) > 100
