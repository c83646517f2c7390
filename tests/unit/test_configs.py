"""The shipped config tree (conf/): every experiment composes with the paper's recipe and a
held-out sweep objective, the ablations carry the paper's grids, and the debug, optimizer,
embedding and trainer groups do what they say."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zss.data.splits import split_from_config
from zss.stages.base import param_groups

CONF = Path(__file__).resolve().parents[2] / "conf"
ORIGINAL_EPOCHS = {"voc_21_0_0": 30, "voc_9_2_10": 90, "voc_17_2_2": 36, "context_31_2_2": 59}
# the peers' protocols: VOC at the longest original run (90: the image budget decides),
# Context at the original's 59
EXPERIMENTS = sorted(p.stem for p in (CONF / "experiment").glob("*.yaml"))


def load(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


# the *_deeplab files run the peers' recipe: tests/unit/test_deeplab.py
@pytest.mark.parametrize("name", [e for e in EXPERIMENTS if not e.endswith("_deeplab")])
def test_experiment_composes_with_the_paper_recipe(name):
    cfg = load(f"+experiment={name}")
    split = split_from_config(**cfg.split)
    if name == "demo" or name.startswith("demo_"):  # outputs/demo*/, apart from real runs
        assert cfg.task_name == name and cfg.embedding.source == "glove-6b-50d"
        assert cfg.data.dataset._target_ == "zss.data.SyntheticSegmentation"
        return
    # a sweep's folders are named after the ablation (multirun/ablation_loss/...)
    assert cfg.task_name == (name if name.startswith("ablation_") else split.name)
    peer = cfg.protocol.name != "szn"
    assert peer == name.startswith(("zs3_", "spnet_"))  # the paper experiments: szn
    assert cfg.embedding._target_ == "zss.embeddings.load_published_table"  # published
    if name.startswith("zs3_context"):  # ZS3Net's 60-class table: 300-d only
        assert cfg.embedding.name == "zs3/pascalcontext_class_w2c.npy"
        assert cfg.model.embed_dim == 300
        cfg.model.embed_dim = 20  # (the rest of the recipe is the paper's)
    else:
        assert cfg.embedding.name.startswith("szn-original/")  # the paper's tables
    assert cfg.data.batch_size == 1 and cfg.data.crop_size is None  # full images, batch 1
    assert cfg.model.backbone.name == "fcn32s" and cfg.model.backbone.fc_width == 4096
    assert cfg.optimizer._target_ == "torch.optim.Adam" and cfg.optimizer.lr == 1e-5
    assert cfg.optimizer.bias_lr_factor == 2  # the original train.py, with Adam too
    # the original's stage-1 epochs per split (configs.py) and early stop (trainer_fcn.py)
    context = cfg.data.dataset._target_ == "zss.data.ContextSegmentation"
    peer_epochs = 59 if context else 90
    assert cfg.stage1.max_epochs == (peer_epochs if peer else ORIGINAL_EPOCHS[split.name])
    assert cfg.stage1.max_image_steps == (247_000 if context else 425_000)
    if "stage2" in cfg.stages:
        assert cfg.stage2.max_epochs == 10 and cfg.stage2.optimizer.lr == 1e-3
        assert cfg.stage2.optimizer.bias_lr_factor == 1  # one Adam group in the original
        assert cfg.stage2.dropout and cfg.stage2.train_upsampling  # model.train(), upscore
    if cfg.model.variant == "fcn_je":
        assert cfg.model.embed_dim == 20 and cfg.model.loss == "cosine"



@pytest.mark.parametrize("name", [None, *EXPERIMENTS])
def test_the_sweep_objective_is_a_held_out_score(name):
    """What a sweeper optimises by default: never a test-split score. Stage 1's held-out mIoU
    (of the model's variant), or, with train_unseen classes to stand in for the unseen ones,
    the held-out hIoU of the calibrated-stacking gate (tuned before the test)."""
    cfg = load(*([f"+experiment={name}"] if name else []))
    key = cfg.optimized_metric
    assert not key.startswith("test/")
    split = split_from_config(**cfg.split)
    if split.train_unseen and "test" in cfg.stages:
        assert key == "tune/szn_cs/objective"
    else:
        assert key == f"val/{cfg.model.variant}/miou"
        assert key == cfg.callbacks.stage1_checkpoint.monitor  # the selected checkpoint's
    if name in (None, "voc_21_0_0_fcn_s"):
        assert key == {None: "val/fcn_je/miou", "voc_21_0_0_fcn_s": "val/fcn_s/miou"}[name]

def test_no_default_points_into_shared():
    text = "\n".join(p.read_text() for p in CONF.rglob("*.yaml"))
    assert "shared" not in text and "../" not in text


def test_context_experiment_names_its_class_set():
    cfg = load("+experiment=context_31_2_2")
    s = split_from_config(**cfg.split)
    assert cfg.data.dataset.task == "context33" == cfg.split.classes
    assert (len(s.train_seen), len(s.train_unseen), len(s.unseen)) == (29, 2, 2)
    assert cfg.embedding.name == "szn-original/context/norm_embed_arr_20.pkl"


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


@pytest.mark.parametrize(("optimizer", "decay"), [("sgd", 0.0), ("adam", None)])
def test_the_optimiser_choice_carries_its_bias_rule(optimizer, decay):
    import torch

    from zss.stages.base import make_optimizer

    # one key: optimizer=sgd brings 2x lr and no weight decay on biases (Caffe), adam 2x lr
    cfg = load("+experiment=voc_21_0_0", f"optimizer={optimizer}")
    conv = torch.nn.Conv2d(3, 4, 3)
    opt = make_optimizer(OmegaConf.to_container(cfg.optimizer), conv.named_parameters())
    weights, biases = opt.param_groups
    assert weights["params"] == [conv.weight] and biases["params"] == [conv.bias]
    assert weights["lr"] == 1e-5 and biases["lr"] == 2e-5
    if optimizer == "sgd":
        assert opt.defaults["momentum"] == 0.99 and weights["weight_decay"] == 5e-4
    assert biases["weight_decay"] == (weights["weight_decay"] if decay is None else decay)
    groups = param_groups(conv.named_parameters(), 1.0)  # no bias rule: one group
    assert len(groups) == 1


def test_offline_glove_is_the_default_embedding():
    cfg = load()
    assert cfg.embedding.source == "glove-6b-50d" and cfg.embedding.normalisation == "max_norm"


def test_gpu_trainer_config_composes_and_is_refused_without_cuda(tmp_path, monkeypatch):
    from zss.runtime.errors import ConfigError
    from zss.runtime.runner import train_and_test

    with initialize_config_dir(config_dir=str(CONF), version_base=None):
        cfg = compose("config", overrides=["+experiment=voc_17_2_2", "trainer=gpu",
                                           "model.compile=true",
                                           f"paths.output_dir={tmp_path / 'run'}"])
    assert cfg.trainer.precision == "bf16-mixed" and cfg.trainer.accelerator == "gpu"
    assert cfg.trainer._target_ == "lightning.Trainer"  # the default trainer's keys stay
    assert cfg.model.channels_last is True and cfg.model.compile is True
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        train_and_test(cfg)
    assert not (tmp_path / "run").exists()  # refused before anything was written


REPO = Path(__file__).resolve().parents[2]
GRIDS = {"ablation_embedding_dim": {"model.embed_dim": "1,2,5,20,50,100,200,300"},
         "ablation_embedding_dim_17_2_2": {"model.embed_dim": "1,2,5,20,50,100,200,300"},
         "ablation_loss": {"model.loss": "cosine,mse"},
         "ablation_optimizer": {"optimizer": "adam,sgd"}}


def test_each_ablation_carries_the_papers_grid():
    for name, grid in GRIDS.items():
        cfg = yaml.safe_load((REPO / "conf" / "experiment" / f"{name}.yaml").read_text())
        assert cfg["hydra"]["mode"] == "MULTIRUN" and cfg["task_name"] == name
        assert cfg["hydra"]["sweeper"]["params"] == grid
