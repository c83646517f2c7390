"""The procedural zero-shot benchmark (zss.data.datasets.synthetic): deterministic, labels in range,
every class of the split in the test split, and the dataset contract of ZSSDataModule."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zss.data import SyntheticSegmentation, ZSSDataModule, split_from_config
from zss.data.datasets.synthetic import PARAMS, texture_parameters
from zss.data.splits import VOC_CLASSES

CONF = Path(__file__).resolve().parents[2] / "conf"
VECTORS = np.random.default_rng(0).standard_normal((21, 20))


def make(image_set="test", **kw):
    kw.setdefault("lengths", {"train": 40, "test": 30})
    kw.setdefault("size", 48)
    return SyntheticSegmentation(image_set, VECTORS, **kw)


def test_same_seed_same_arrays_and_other_seeds_or_splits_differ():
    a, b = make(seed=3), make(seed=3)
    for i in (0, 7, 29):
        x, y = a[i], b[i]
        assert torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"])
        assert x["id"] == y["id"] == f"test_{i:05d}"
    assert a.class_presence() == b.class_presence()
    assert not torch.equal(make(seed=4)[0]["image"], a[0]["image"])
    assert not torch.equal(make("train", seed=3)[0]["image"], a[0]["image"])
    assert not torch.equal(a[1]["image"], a[0]["image"])


def test_items_follow_the_dataset_contract():
    ds = make(size=(40, 56), lengths={"test": 25})
    assert ds.transform is None and len(ds) == len(ds.ids) == 25
    presence = ds.class_presence()
    for i in range(len(ds)):
        item = ds[i]
        image, label = item["image"], item["label"]
        assert image.dtype == torch.uint8 and image.shape == (3, 40, 56)
        assert label.dtype == torch.int64 and label.shape == (40, 56)
        assert 0 <= int(label.min()) and int(label.max()) < 21  # no void, in range
        assert presence[i] == frozenset(torch.unique(label).tolist())
        assert 0 in presence[i] and 2 <= len(presence[i]) <= 4  # background + 1-3 objects
    with pytest.raises(IndexError):
        ds[25]
    with pytest.raises(ValueError, match="unknown image set"):
        make("val")


def test_appearance_is_a_function_of_the_class_vectors():
    p = texture_parameters(VECTORS, seed=0)
    assert p.shape == (21, len(PARAMS)) and ((p > 0) & (p < 1)).all()
    np.testing.assert_array_equal(p, texture_parameters(VECTORS.copy(), seed=0))
    twin = VECTORS.copy()
    twin[5] = 2.0 * twin[3]  # same direction -> same texture, whatever the length
    q = texture_parameters(twin, seed=0)
    np.testing.assert_allclose(q[5], q[3])
    # every parameter varies across the classes (Φ of a standardised normal: std ≈ 0.29)
    assert (p.std(axis=0) > 0.2).all() and (q.std(axis=0) > 0.2).all()
    # closer class vectors, closer parameters: 7 groups of 3 noisy copies of a centre
    rng = np.random.default_rng(1)
    groups = np.repeat(rng.standard_normal((7, 20)), 3, axis=0)
    r = texture_parameters(groups + 0.3 * rng.standard_normal((21, 20)), seed=0)
    dist = np.linalg.norm(r[:, None] - r[None], axis=2)
    g = np.arange(21) // 3
    same = (g[:, None] == g[None]) & ~np.eye(21, dtype=bool)
    assert dist[same].mean() < 0.5 * dist[g[:, None] != g[None]].mean()  # 0.33 here


def test_every_class_of_the_demo_split_is_in_its_test_split():
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=demo"])
    kw = OmegaConf.to_container(cfg.data.dataset)
    for key in ("_target_", "_partial_", "_recursive_", "appearance"):
        kw.pop(key)
    test = SyntheticSegmentation("test", VECTORS, **kw)  # layout does not depend on vectors
    split = split_from_config(**cfg.split)
    seen = set().union(*test.class_presence())
    assert {split.class_names[i] for i in seen} == set(split.class_names) == set(VOC_CLASSES)


def test_data_module_filters_the_generated_images():
    split = split_from_config("voc_17_2_2", "voc", [n for n in VOC_CLASSES if n not in
                              ("aeroplane", "horse", "sheep", "train")],
                              ["aeroplane", "horse"], ["sheep", "train"])
    dm = ZSSDataModule(lambda image_set: make(image_set, lengths={"train": 60, "test": 20}),
                       split, test_set="test", batch_size=4)
    counts = dm.summary()
    assert counts["train_list"] == 60 and counts["test"] == 20
    # the filters, recomputed from the generated labels themselves
    train = make("train", lengths={"train": 60, "test": 20})
    present = [set(torch.unique(train[i]["label"]).tolist()) for i in range(len(train))]
    train_seen = {VOC_CLASSES.index(n) for n in split.train_seen}
    unseen = {VOC_CLASSES.index(n) for n in split.unseen}
    stage1 = [train.ids[i] for i, p in enumerate(present) if p <= train_seen]
    stage2 = [train.ids[i] for i, p in enumerate(present) if not p & unseen]
    assert 0 < len(stage1) < len(stage2) < 60
    assert sorted(dm.ids("stage1_train") + dm.ids("stage1_val")) == stage1
    assert sorted(dm.ids("stage2_train") + dm.ids("stage2_val")) == stage2
    assert counts["stage1_train"] + counts["stage1_val"] == len(stage1)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 48, 48) and batch["image"].dtype == torch.uint8


@pytest.mark.parametrize("experiment, jobs", [
    ("ablation_embedding_source", [["embedding=glove_6b_50d"], ["embedding=clip_vit_b16_random"],
                                   ["embedding=sentence_minilm"], ["embedding=word2vec"]]),
    ("ablation_embedding_dim", [["model.embed_dim=2"], ["model.embed_dim=50"]]),
])
def test_a_sweep_on_the_demo_data_draws_every_job_from_one_benchmark(experiment, jobs):
    """+debug=demo_data: the images' textures come from GloVe 6B 50-d at j = 20 whatever
    embedding and j a job trains with (were they the job's own vectors, each source or j of a
    sweep would be scored on other images)."""
    appearances, embeddings = [], []
    with initialize_config_dir(str(Path(__file__).parents[2] / "conf"), version_base="1.3"):
        for job in jobs:
            cfg = compose("config", overrides=[f"+experiment={experiment}", "+debug=demo_data",
                                               *job])
            appearances.append(OmegaConf.to_container(cfg.data.dataset.appearance, resolve=True))
            embeddings.append((OmegaConf.to_container(cfg.embedding), OmegaConf.select(
                cfg, "model.embed_dim", throw_on_resolution_failure=False)))
    assert all(a == appearances[0] for a in appearances)
    assert appearances[0]["source"] == "glove-6b-50d" and appearances[0]["dim"] == 20
    assert len({str(e) for e in embeddings}) == len(jobs)  # the jobs do train on other vectors
