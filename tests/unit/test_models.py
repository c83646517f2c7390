"""Tests of zss.models: FCN-32s geometry and weights, upsampling, heads, preprocessing, losses."""

from __future__ import annotations

import urllib.error

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tests.helpers import random_labels
from zss.data.splits import IGNORE_INDEX
from zss.models import (
    CAFFE_PREPROCESSING,
    IMAGENET_PREPROCESSING,
    BilinearUpsample,
    FCN32sBackbone,
    LearnedBilinearUpsample,
    PixelHead,
    SmallBackbone,
    SZNNet,
    Upsample32,
    bilinear_kernel,
    copy_vgg16_weights,
    cosine_embedding_loss,
    load_pretrained,
    masked_cross_entropy,
    mse_embedding_loss,
    preprocessing_for,
    preprocessing_for_backbone,
)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# ---------------------------------------------------------------- geometry


def test_fcn32s_output_size_equals_input_for_odd_sizes() -> None:
    model = SZNNet(FCN32sBackbone(fc_width=64), embed_dim=4, num_classes=3, seenmask=True).eval()
    with torch.no_grad():
        for h, w in [(37, 53), (65, 33), (1, 5)]:
            out = model(torch.randn(1, 3, h, w))
            assert out["features"].shape[1] == 64
            assert out["embedding"].shape == (1, 4, h, w)
            assert out["logits"].shape == (1, 3, h, w)
            assert out["seenmask"].shape == (1, 2, h, w)
            # stage 2 path: frozen features, only the seenmask head
            assert model.seenmask_logits(out["features"], (h, w)).shape == (1, 2, h, w)


@pytest.mark.parametrize("stride", [4, 8, 16, 32])
def test_small_backbone_output_size(stride: int) -> None:
    backbone = SmallBackbone(width=8, fc_width=16, output_stride=stride)
    model = SZNNet(backbone, embed_dim=3, seenmask=True)
    for h, w in [(1, 1), (37, 53), (64, 31)]:
        out = model(torch.randn(2, 3, h, w))
        assert out["features"].shape[-2:] == (-(-h // stride), -(-w // stride))
        assert out["embedding"].shape == (2, 3, h, w)
        assert out["seenmask"].shape == (2, 2, h, w)
        assert "logits" not in out


def test_szn_net_needs_a_head() -> None:
    with pytest.raises(ValueError, match="at least one head"):
        SZNNet(SmallBackbone(8, 16), embed_dim=None)
    with pytest.raises(RuntimeError, match="seenmask"):
        SZNNet(SmallBackbone(8, 16), embed_dim=2).seenmask_logits(torch.zeros(1, 16, 1, 1), (4, 4))


# ---------------------------------------------------------------- upsampling


def _surgery_upsample_filt(size: int) -> np.ndarray:
    """FCN surgery.py upsample_filt, written independently."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def test_bilinear_kernel_is_surgery_filter_on_the_diagonal() -> None:
    k = bilinear_kernel(3, 64)
    assert k.shape == (3, 3, 64, 64)
    ref = torch.from_numpy(_surgery_upsample_filt(64)).float()
    for a in range(3):
        for b in range(3):
            torch.testing.assert_close(k[a, b], ref if a == b else torch.zeros(64, 64))


@pytest.mark.parametrize(("factor", "up"), [(32, Upsample32(3)), (8, BilinearUpsample(3, 8))])
def test_frozen_upsampling_equals_bilinear_interpolation(factor: int, up) -> None:
    x = torch.randn(2, 3, 5, 4)
    y = up.upsample(x)  # uncropped
    # the depthwise implementation equals the dense diagonal ConvTranspose2d of FCN
    dense = F.conv_transpose2d(x, bilinear_kernel(3, 2 * factor), stride=factor)
    torch.testing.assert_close(y, dense, atol=1e-5, rtol=1e-5)
    interp = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    h, w = 5 * factor, 4 * factor
    half = factor // 2  # interior: every output pixel has its 4 input neighbours
    inner = interp[..., half : h - half, half : w - half]
    torch.testing.assert_close(y[..., 2 * half : h, 2 * half : w], inner, atol=1e-5, rtol=0)
    if factor == 32:
        assert up.offset == 19 and up.weight.shape[-2:] == (64, 64)
        assert up(x, (100, 90)).shape == (2, 3, 100, 90)
        torch.testing.assert_close(up(x, (100, 90)), y[..., 19:119, 19:109])


def test_upsampling_is_frozen() -> None:
    model = SZNNet(SmallBackbone(8, 16), embed_dim=3, num_classes=4, seenmask=True)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and not any("upsample" in n for n in trainable)
    for head in (model.embedding_head, model.softmax_head, model.seenmask_head):
        assert not head.upsample.weight.requires_grad
    model.requires_grad_(True)  # not even re-enabled by a blanket unfreeze
    assert not any("upsample" in n for n, _ in model.named_parameters())
    out = model(torch.randn(1, 3, 9, 11))
    sum(v.sum() for k, v in out.items() if k != "features").backward()
    assert model.embedding_head.upsample.weight.grad is None


def test_learned_seenmask_upsampling_starts_bilinear_and_is_a_parameter() -> None:
    # the original seenmask_upscore: ConvTranspose2d(2, 2, 64, stride=32, bias=False),
    # bilinear init, trainable; cropped at 19 like the fixed one
    learned, fixed = LearnedBilinearUpsample(2, 32, offset=19), Upsample32(2)
    assert learned.weight.shape == (2, 2, 64, 64) and learned.weight.requires_grad
    x = torch.randn(1, 2, 4, 5)
    torch.testing.assert_close(learned(x, (70, 90)), fixed(x, (70, 90)), atol=1e-5, rtol=1e-5)
    model = SZNNet(SmallBackbone(8, 16), embed_dim=3, seenmask=True,
                   seenmask_learned_upsample=True)
    names = [n for n, _ in model.named_parameters()]
    assert "seenmask_head.upsample.weight" in names
    assert not any(n.startswith("embedding_head.upsample") for n in names)


def test_pixel_head_zero_init_and_too_small_features() -> None:
    head = PixelHead(6, 2, Upsample32(2), zero_init=True)
    assert torch.count_nonzero(head(torch.randn(1, 6, 2, 2), (40, 40))) == 0
    with pytest.raises(ValueError, match="too small"):
        head(torch.randn(1, 6, 1, 1), (100, 100))


# ---------------------------------------------------------------- weights


def test_caffe_path_weights_are_vgg16_reshaped(tmp_path) -> None:
    import torchvision

    state = torchvision.models.vgg16(weights=None).state_dict()
    path = tmp_path / "vgg16_caffe.pth"
    torch.save(state, path)
    backbone = FCN32sBackbone(weights=str(path))
    for i in (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28):
        assert torch.equal(backbone.features[i].weight, state[f"features.{i}.weight"])
        assert torch.equal(backbone.features[i].bias, state[f"features.{i}.bias"])
    assert backbone.features[0].padding == (100, 100)
    assert torch.equal(backbone.fc6[0].weight, state["classifier.0.weight"].view(4096, 512, 7, 7))
    assert torch.equal(backbone.fc6[0].bias, state["classifier.0.bias"])
    assert torch.equal(backbone.fc7[0].weight, state["classifier.3.weight"].view(4096, 4096, 1, 1))
    assert torch.equal(backbone.fc7[0].bias, state["classifier.3.bias"])
    assert preprocessing_for(str(path), "caffe") is CAFFE_PREPROCESSING
    # in-place loading into an existing backbone (used when restoring never downloads)
    with torch.no_grad():
        backbone.fc6[0].weight.zero_()
        backbone.features[0].bias.zero_()
    load_pretrained(backbone, path)
    assert torch.equal(backbone.fc6[0].weight, state["classifier.0.weight"].view(4096, 512, 7, 7))
    assert torch.equal(backbone.features[0].bias, state["features.0.bias"])


def test_weight_errors(tmp_path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        FCN32sBackbone(weights=missing)
    with pytest.raises(ValueError, match="fc_width=4096"):
        FCN32sBackbone(fc_width=64, weights="torchvision")
    small = FCN32sBackbone(fc_width=8)
    with pytest.raises(ValueError, match="fc_width=4096"):
        load_pretrained(small, "torchvision")
    with pytest.raises(ValueError, match="SmallBackbone"):
        load_pretrained(SmallBackbone(8, 16), "torchvision")
    load_pretrained(SmallBackbone(8, 16), None)  # no-op
    partial = {"features.0.weight": torch.zeros(64, 3, 3, 3)}
    with pytest.raises(KeyError, match=r"features\.0\.bias.*classifier\.3\.weight"):
        copy_vgg16_weights(small, partial)


def test_a_weights_file_must_say_its_format() -> None:
    # a path alone does not tell Caffe from torchvision weights: the format must be named,
    # except for torchvision's own download, recognised by its file name
    with pytest.raises(ValueError, match="weights_format=caffe"):
        preprocessing_for("/w/vgg16_from_caffe.pth")
    assert preprocessing_for("/hub/checkpoints/vgg16-397923af.pth") is IMAGENET_PREPROCESSING
    assert preprocessing_for("/w/vgg16.pth", "torchvision") is IMAGENET_PREPROCESSING
    assert preprocessing_for("/w/vgg16.pth", "caffe") is CAFFE_PREPROCESSING
    with pytest.raises(ValueError, match="contradicts"):
        preprocessing_for("torchvision", "caffe")
    with pytest.raises(ValueError, match="weights_format must be one of"):
        preprocessing_for(None, "bgr")
    assert preprocessing_for_backbone({"name": "small", "weights": None}) is IMAGENET_PREPROCESSING


def test_torchvision_weights_without_network_raise_clear_error(tmp_path, monkeypatch) -> None:
    from torchvision.models import VGG16_Weights

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(VGG16_Weights.IMAGENET1K_V1, "get_state_dict", offline)
    with pytest.raises(RuntimeError) as info:
        FCN32sBackbone(weights="torchvision")
    msg = str(info.value)
    assert str(tmp_path) in msg and "vgg16-397923af.pth" in msg
    assert "model.backbone.weights=null" in msg and "name resolution" in msg


def test_preprocessing_matches_weight_source() -> None:
    img = torch.zeros(3, 2, 2, dtype=torch.uint8)
    img[:, 0, 0] = torch.tensor([255, 128, 0], dtype=torch.uint8)  # R, G, B
    tv = preprocessing_for("torchvision")
    assert tv is preprocessing_for(None) is IMAGENET_PREPROCESSING and not tv.bgr
    out = tv(img)
    assert out.dtype == torch.float32 and out.shape == (3, 2, 2)
    expected = [(1.0 - 0.485) / 0.229, (128 / 255 - 0.456) / 0.224, (0.0 - 0.406) / 0.225]
    torch.testing.assert_close(out[:, 0, 0], torch.tensor(expected))
    caffe = preprocessing_for("/some/vgg16_caffe.pth", "caffe")
    out = caffe(img[None])  # batched input
    assert out.shape == (1, 3, 2, 2) and caffe.bgr
    torch.testing.assert_close(  # channel 0 = B
        out[0, :, 0, 0], torch.tensor([0 - 104.00699, 128 - 116.66877, 255 - 122.67891])
    )
    with pytest.raises(TypeError):
        tv(img.long())


# ---------------------------------------------------------------- losses


def _np_cosine_loss(emb: torch.Tensor, labels: torch.Tensor, class_emb: torch.Tensor) -> float:
    e, lab, s = emb.double().numpy(), labels.numpy(), class_emb.double().numpy()
    terms = []
    for n, i, k in zip(*np.nonzero(lab != IGNORE_INDEX), strict=True):
        v, t = e[n, :, i, k], s[lab[n, i, k]]
        terms.append(1 - v @ t / (np.linalg.norm(v) * np.linalg.norm(t)))
    return float(np.mean(terms))


def test_cosine_loss_matches_numpy_and_is_batch_invariant() -> None:
    class_emb = torch.randn(5, 4)
    emb = torch.randn(2, 4, 6, 7)
    labels = random_labels(2, 6, 7, 5, void_frac=0.2)
    labels[1, :4] = IGNORE_INDEX  # image 1 has far fewer valid pixels than image 0
    loss = cosine_embedding_loss(emb, labels, class_emb)
    assert loss.shape == () and loss.dtype == torch.float32
    assert loss.item() == pytest.approx(_np_cosine_loss(emb, labels, class_emb), abs=1e-5)
    per_image = [
        cosine_embedding_loss(emb[i : i + 1], labels[i : i + 1], class_emb) for i in (0, 1)
    ]
    counts = [(labels[i] != IGNORE_INDEX).sum().item() for i in (0, 1)]
    pooled = sum(lo.item() * n for lo, n in zip(per_image, counts, strict=True)) / sum(counts)
    assert loss.item() == pytest.approx(pooled, abs=1e-6)
    assert abs(loss.item() - (per_image[0].item() + per_image[1].item()) / 2) > 1e-4


def test_mse_and_cross_entropy_match_references() -> None:
    class_emb = torch.randn(5, 4)
    emb = torch.randn(2, 4, 6, 7)
    labels = random_labels(2, 6, 7, 5)
    labels[0] = IGNORE_INDEX
    valid = labels != IGNORE_INDEX
    v = emb.permute(0, 2, 3, 1)[valid]
    ref = ((v - class_emb[labels[valid]]) ** 2).sum(1).mean()  # summed over j, mean over I
    torch.testing.assert_close(mse_embedding_loss(emb, labels, class_emb), ref)
    logits = torch.randn(2, 5, 6, 7)
    ref_ce = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], labels[valid])
    torch.testing.assert_close(masked_cross_entropy(logits, labels), ref_ce)
    with pytest.raises(ValueError, match=r"\[5\]"):
        masked_cross_entropy(logits, labels.masked_fill(valid, 5))


def test_mse_is_the_papers_sum_over_channels_mean_over_pixels() -> None:
    # by hand: pixel (0,0) v=(0.5, 0.5), class 0 s=(1, 0): ||v-s||^2 = 0.25 + 0.25 = 0.5;
    # pixel (0,1) v=(2, 1), class 1 s=(0, 1): 4 + 0 = 4; pixel (0,2) void.
    # Paper / original utils.mse_loss: (0.5 + 4) / 2 valid pixels = 2.25 (nn.MSELoss: 1.125).
    class_emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    emb = torch.tensor([[0.5, 2.0, 9.0], [0.5, 1.0, 9.0]]).view(1, 2, 1, 3)
    labels = torch.tensor([[[0, 1, IGNORE_INDEX]]])
    assert mse_embedding_loss(emb, labels, class_emb).item() == pytest.approx(2.25)


@pytest.mark.parametrize("loss_fn", ["cosine", "mse", "ce"])
def test_losses_all_void_and_perfect(loss_fn: str) -> None:
    class_emb = torch.randn(5, 4)
    labels = random_labels(2, 6, 7, 5, void_frac=0.0)
    if loss_fn == "ce":
        pred = torch.randn(2, 5, 6, 7, requires_grad=True)
        fn = masked_cross_entropy
    else:
        pred = torch.randn(2, 4, 6, 7, requires_grad=True)
        base = cosine_embedding_loss if loss_fn == "cosine" else mse_embedding_loss
        fn = lambda p, lab: base(p, lab, class_emb)  # noqa: E731
    void = torch.full_like(labels, IGNORE_INDEX)
    loss = fn(pred, void)
    assert loss.item() == 0.0
    loss.backward()
    assert pred.grad is not None and torch.count_nonzero(pred.grad) == 0
    if loss_fn == "ce":  # confident correct logits -> ~0
        perfect = F.one_hot(labels, 5).permute(0, 3, 1, 2).float() * 100.0
        assert fn(perfect, labels).item() == pytest.approx(0.0, abs=1e-6)
    else:
        perfect = class_emb[labels].permute(0, 3, 1, 2) * (2.0 if loss_fn == "cosine" else 1.0)
        assert fn(perfect, labels).item() == pytest.approx(0.0, abs=1e-6)
