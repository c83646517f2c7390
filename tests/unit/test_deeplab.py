"""DeepLabv3+ (the peers' network) as a zss backbone: output sizes, the heads at full
resolution against smp's own decoder and head, its weight files, the pretraining record, the
recipe's optimiser groups and poly schedule, ZS3Net's scale-crop, and the checkpoint check
between two backbones. ResNet-18 encoders keep it fast; the CLI test runs ResNet-101."""

import math
from pathlib import Path

import pytest
import segmentation_models_pytorch as smp
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zss.data.splits import split_from_config
from zss.data.transforms import TrainTransform
from zss.models import (
    PixelHead,
    SZNNet,
    build_backbone,
    load_pretrained,
    preprocessing_for_backbone,
    pretraining_record,
)
from zss.models.backbones import WeightsUnavailableError
from zss.models.backbones.deeplabv3plus import load_resnet_file
from zss.models.backbones.registry import WeightsFormatError
from zss.runtime.prefetch import PREFETCH, prepare_command
from zss.runtime.stage1_checkpoint import config_conflicts
from zss.stages.base import make_optimizer, poly_schedule

REPO = Path(__file__).resolve().parents[2]
CFG = {"name": "deeplabv3plus", "encoder": "resnet18", "fc_width": 32}


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return build_backbone(CFG).eval()


@pytest.mark.parametrize("hw", [(33, 47), (17, 17), (64, 96), (1 + 4 * 9, 50)])
def test_output_sizes_for_any_input_size(backbone, hw):
    net = SZNNet(backbone, embed_dim=5, seenmask=True).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 3, *hw))
    assert out["features"].shape == (2, 32, math.ceil(hw[0] / 4), math.ceil(hw[1] / 4))
    assert out["embedding"].shape == (2, 5, *hw)
    assert out["seenmask"].shape == (2, 2, *hw)


def test_features_and_heads_equal_smp_deeplabv3plus(backbone):
    """For sides divisible by 16, our decoder features are smp's decoder output and our head
    is smp's SegmentationHead (1x1 conv, UpsamplingBilinear2d x4) with the same weights."""
    x = torch.randn(2, 3, 64, 96)
    net = SZNNet(backbone, embed_dim=7, seenmask=True).eval()
    decoder_up = torch.nn.Upsample(scale_factor=4, mode="bilinear", align_corners=True)
    with torch.no_grad():
        feats = backbone.encoder(x)
        aspp = decoder_up(backbone.decoder.aspp(feats[-1]))
        ref = backbone.decoder.block2(torch.cat([aspp, backbone.decoder.block1(feats[2])], 1))
        out = net(x)
        head = smp.base.SegmentationHead(32, 7, kernel_size=1, upsampling=4).eval()
        head[0].load_state_dict(net.embedding_head.conv.state_dict())
        torch.testing.assert_close(out["features"], ref, rtol=0, atol=0)
        torch.testing.assert_close(out["embedding"], head(ref), rtol=1e-6, atol=1e-6)



def test_a_learned_upsampling_is_refused_for_an_interpolating_backbone(backbone):
    with pytest.raises(ValueError, match="stage2.train_upsampling=false"):
        PixelHead.for_backbone(backbone, 2, learned_upsample=True)


def _encoder_state(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return smp.encoders.get_encoder("resnet18", weights=None).state_dict()


@pytest.mark.parametrize("fmt", ["zs3net", "zs3net-joem", "torchvision"])
def test_a_weights_file_loads_into_the_encoder(fmt, tmp_path):
    state = _encoder_state(1)
    path = tmp_path / "w.pth.tar"
    if fmt == "zs3net":  # ZS3Net: {'state_dict': {'module.' + key: ...}}, keys [7:] read
        torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    elif fmt == "zs3net-joem":  # JoEm's copy: the plain state dict
        torch.save(state, path)
        fmt = "zs3net"
    else:
        torch.save({**state, "fc.weight": torch.zeros(1000, 512)}, path)
    net = build_backbone(CFG)
    assert load_resnet_file(path, fmt).keys() >= state.keys()
    load_pretrained(net, str(path))
    for k, v in state.items():
        assert torch.equal(net.encoder.state_dict()[k], v), k
    cfg = {**CFG, "weights": str(path), "weights_format": fmt}
    assert preprocessing_for_backbone(cfg).mean == (0.485, 0.456, 0.406)
    rec = pretraining_record(cfg)
    assert rec["excludes_unseen"] is (True if fmt == "zs3net" else None)


def test_bad_weight_sources_are_named(tmp_path):
    with pytest.raises(WeightsFormatError, match="weights_format"):
        preprocessing_for_backbone({**CFG, "weights": "/x.pth"})
    path = tmp_path / "vgg.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, path)
    with pytest.raises(WeightsFormatError, match="keys missing"):
        load_pretrained(build_backbone(CFG), str(path))
    torch.save({"epoch": 1}, path)
    with pytest.raises(WeightsFormatError, match="neither ZS3Net's"):
        load_resnet_file(path, "zs3net")
    with pytest.raises(FileNotFoundError, match="nope"):
        load_resnet_file(tmp_path / "nope", "zs3net")


def test_imagenet_download_failure_names_the_prepare_command(monkeypatch):
    import huggingface_hub

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    assert "resnet101-imagenet-smp" in PREFETCH
    with pytest.raises(WeightsUnavailableError) as err:
        load_pretrained(build_backbone(CFG), "imagenet")
    assert prepare_command("resnet101-imagenet-smp") in str(err.value)


def test_pretraining_records():
    assert pretraining_record({**CFG, "weights": None})["excludes_unseen"] is True
    assert pretraining_record({**CFG, "weights": "imagenet"})["excludes_unseen"] is False
    fcn = pretraining_record({"name": "fcn32s", "weights": "torchvision"})
    assert fcn["backbone"] == "fcn32s" and fcn["excludes_unseen"] is False


def test_encoder_at_lr_the_rest_at_ten_times_and_the_poly_schedule():
    net = SZNNet(build_backbone(CFG), embed_dim=4)
    opt = make_optimizer({"_target_": "torch.optim.SGD", "lr": 0.007, "momentum": 0.9,
                          "weight_decay": 5e-4, "head_lr_factor": 10.0, "poly_power": 0.9},
                         net.named_parameters())
    encoder = {id(p) for p in net.backbone.encoder.parameters()}
    assert [g["lr"] for g in opt.param_groups] == [0.007, 0.07]
    assert {id(p) for p in opt.param_groups[0]["params"]} == encoder
    assert len(opt.param_groups[1]["params"]) == sum(1 for _ in net.parameters()) - len(encoder)
    sched = poly_schedule(opt, 10, 0.9)
    for step in range(1, 11):
        opt.step()
        sched.step()
        # ZS3Net lr_scheduler.py: lr * (1 - T / N) ** 0.9, the 10x group likewise
        assert opt.param_groups[1]["lr"] == pytest.approx(0.07 * (1 - step / 10) ** 0.9)


def test_zs3net_scale_crop_scales_the_short_side_around_base_size():
    t = TrainTransform(crop_size=400, scale_range=(0.5, 2.0), hflip=False, base_size=50)
    image = torch.zeros(3, 30, 90, dtype=torch.uint8)
    shorts = []
    for seed in range(20):
        torch.manual_seed(seed)
        _, _, box = t(image, torch.zeros(30, 90, dtype=torch.int64))
        w, h = int(box[2] - box[0]), int(box[3] - box[1])
        assert 25 <= h <= 100 and abs(w - 3 * h) <= 2  # short side in [0.5, 2] x 50
        shorts.append(h)
    assert max(shorts) - min(shorts) > 30


def _composed(*overrides):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=["+experiment=zs3_voc_k2", *overrides])


def test_a_checkpoint_of_one_backbone_is_refused_under_the_other():
    fcn, deeplab = _composed(), _composed("model=deeplabv3plus_r101")
    split = split_from_config(**fcn.split)
    fields = ("name", "class_names", "train_seen", "train_unseen", "unseen")
    for trained, asked in ((deeplab, fcn), (fcn, deeplab)):
        hparams = {"split": {k: getattr(split, k) for k in fields}, "variant": "fcn_je",
                   "embed_dim": trained.model.embed_dim,
                   "backbone": OmegaConf.to_container(trained.model.backbone)}
        problems = "\n".join(config_conflicts(hparams, asked, split))
        for key in ("name", "encoder", "output_stride", "atrous_rates", "fc_width"):
            assert f"model.backbone.{key}:" in problems, (key, problems)


@pytest.mark.parametrize("name", [f"zs3_{d}_k{k}" for d in ("voc", "context")
                                  for k in (2, 4, 6, 8, 10)])
def test_each_deeplab_experiment_is_its_zs3_experiment_on_the_peers_network(name):
    """The *_deeplab files are their zs3 experiment with model=deeplabv3plus_r101 and
    ZS3Net's epochs (and Context's batch): the K = 2 files also run (tests/cli)."""
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        ours = OmegaConf.to_container(compose("config", overrides=[
            f"+experiment={name}_deeplab"]))
        base = OmegaConf.to_container(compose("config", overrides=[
            f"+experiment={name}", "model=deeplabv3plus_r101"]))
    base["stage1"].update(max_epochs=200, max_image_steps=None)
    if "context" in name:
        base["data"]["batch_size"] = 10
    assert ours == base
    assert ours["model"]["backbone"]["encoder"] == "resnet101"
    assert ours["optimizer"]["lr"] == 0.007 and ours["optimizer"]["poly_power"] == 0.9


def test_a_checkpoint_without_a_key_reads_the_backbones_default():
    cfg = _composed("model=deeplabv3plus_r101")
    split = split_from_config(**cfg.split)
    backbone = OmegaConf.to_container(cfg.model.backbone)
    del backbone["atrous_rates"]  # a checkpoint from before the key: (6, 12, 18) by default
    hparams = {"split": {k: getattr(split, k) for k in ("name", "class_names", "train_seen",
                                                         "train_unseen", "unseen")},
               "variant": "fcn_je", "embed_dim": 20, "backbone": backbone,
               "protocol": {"name": "zs3", "unseen_training_images": "drop",
                            "background": "seen"}}
    assert config_conflicts(hparams, cfg, split) == []
