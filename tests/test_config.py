"""Every experiment composes, and its defaults are the paper's recipe."""

from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from zss.data.splits import split_from_config
from zss.modules.base import param_groups

CONF = Path(__file__).resolve().parents[1] / "conf"
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def load(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_composes_with_the_paper_recipe(name):
    cfg = load(f"+experiment={name}")
    split = split_from_config(**cfg.split)
    if name == "demo" or name.startswith("demo_"):  # outputs/demo*/, apart from real runs
        assert cfg.task_name == name and cfg.embedding.source == "glove-6b-50d"
        assert cfg.data.dataset._target_ == "zss.data.SyntheticSegmentation"
        return
    assert cfg.task_name == split.name
    assert cfg.embedding._target_ == "zss.embeddings.load_table"  # the paper's tables
    assert cfg.data.batch_size == 1 and cfg.data.crop_size is None  # full images, batch 1
    assert cfg.model.backbone.name == "fcn32s" and cfg.model.backbone.fc_width == 4096
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-5
    assert cfg.stage1.max_epochs == 30
    if "stage2" in cfg.stages:
        assert cfg.stage2.max_epochs == 10 and cfg.stage2.optimizer.lr == 1e-3
    if cfg.model.variant == "fcn_je":
        assert cfg.model.embed_dim == 20 and cfg.model.loss == "cosine"


def test_paper_splits():
    s = split_from_config(**load("+experiment=voc_9_2_10").split)
    assert (len(s.train_seen), len(s.train_unseen), len(s.unseen)) == (9, 2, 10)
    s = split_from_config(**load("+experiment=voc_17_2_2").split)
    assert (len(s.train_seen), len(s.train_unseen), len(s.unseen)) == (17, 2, 2)
    assert s.train_unseen == ("aeroplane", "horse") and s.unseen == ("sheep", "train")


def test_debug_cpu_shrinks_the_run():
    cfg = load("+experiment=voc_17_2_2", "+debug=cpu")
    assert cfg.data.max_short_side <= 256 and cfg.model.backbone.fc_width <= 512
    assert cfg.model.backbone.weights is None and cfg.trainer.accelerator == "cpu"


def test_sgd_recipe_doubles_the_bias_learning_rate():
    import torch

    cfg = load("+experiment=voc_21_0_0", "optimizer=sgd", "model.bias_lr_factor=2")
    assert cfg.optimizer.momentum == 0.99 and cfg.optimizer.weight_decay == 5e-4
    conv = torch.nn.Conv2d(3, 4, 3)
    groups = param_groups(conv.named_parameters(), cfg.optimizer.lr, cfg.model.bias_lr_factor)
    assert groups[0]["params"] == [conv.weight]
    assert groups[1]["params"] == [conv.bias]
    assert groups[1]["lr"] == 2 * cfg.optimizer.lr and groups[1]["weight_decay"] == 0.0


def test_offline_glove_is_the_default_embedding():
    cfg = load()
    assert cfg.embedding.source == "glove-6b-50d" and cfg.embedding.normalisation == "max_norm"
