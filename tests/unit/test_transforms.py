"""The joint transforms (zss.data.transforms): the training crop, padding and flip, the
evaluation resize, pad_collate, the pixel-centre label resize, and the device normalisation
equal to the old CPU path bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zss.data import (
    IGNORE_INDEX,
    EvalTransform,
    TrainTransform,
    pad_collate,
    resize_label,
    same_size_parts,
)


# ---- transforms --------------------------------------------------------------------------
def coded_pair(h=20, w=30):
    """Asymmetric label, and an image whose channel 0 encodes the label (value · 10)."""
    label = torch.zeros(h, w, dtype=torch.int64)
    label[:, : w // 3] = 1
    label[: h // 2, w // 3: w // 2] = 2
    image = torch.stack([label * 10, torch.arange(w).expand(h, w), torch.zeros(h, w)])
    return image.to(torch.uint8), label


def test_train_crop_size_and_padding():
    torch.manual_seed(0)
    image = torch.full((3, 10, 12), 255, dtype=torch.uint8)
    label = torch.ones(10, 12, dtype=torch.int64)
    t = TrainTransform(crop_size=(32, 24), scale_range=(1.0, 1.0))
    for _ in range(5):
        img, lab, box = t(image, label)
        assert img.shape == (3, 32, 24) and lab.shape == (32, 24)
        assert img.dtype == torch.uint8 and lab.dtype == torch.uint8
        assert set(lab.unique().tolist()) == {1, IGNORE_INDEX}
        assert int((lab == 1).sum()) == 120
        # the box is where the image landed, exactly the label's non-void rectangle
        x1, y1, x2, y2 = box.tolist()
        assert (x2 - x1, y2 - y1) == (12, 10) and bool((lab[y1:y2, x1:x2] == 1).all())
        assert torch.all(img[:, lab == 1] == 255)
    # with scaling, a larger image is cropped to crop_size
    img, lab, box = TrainTransform(crop_size=16)(*coded_pair(40, 50))
    assert img.shape == (3, 16, 16) and lab.shape == (16, 16) and box.tolist() == [0, 0, 16, 16]


def test_train_geometry_is_joint():
    image, label = coded_pair()
    flips = set()
    t_full = TrainTransform()
    t_crop = TrainTransform(crop_size=(16, 16), scale_range=(1.0, 1.0))
    for seed in range(20):
        torch.manual_seed(seed)
        img, lab, box = t_full(image, label)
        assert torch.equal(img[0].long(), lab.long() * 10) and box.tolist() == [0, 0, 30, 20]
        flipped = bool(torch.equal(lab.long(), label.flip(-1)))
        assert flipped or torch.equal(lab.long(), label)
        assert torch.equal(img, image.flip(-1) if flipped else image)
        flips.add(flipped)
        img, lab, _ = t_crop(image, label)
        assert torch.equal(img[0].long(), lab.long() * 10)
    assert flips == {True, False}
    no_flip = TrainTransform(hflip=False)
    assert all(torch.equal(no_flip(image, label)[1].long(), label) for _ in range(10))


def test_eval_resize_nearest():
    g = torch.Generator().manual_seed(0)
    label = torch.tensor([0, 3, 7, IGNORE_INDEX])[torch.randint(0, 4, (60, 90), generator=g)]
    image = torch.randint(0, 256, (3, 60, 90), dtype=torch.uint8, generator=g)
    img, lab, box = EvalTransform(max_short_side=24)(image, label)
    assert img.shape == (3, 24, 36) and lab.shape == (24, 36) and img.dtype == torch.uint8
    assert set(lab.unique().tolist()) <= {0, 3, 7, IGNORE_INDEX} and box.tolist() == [0, 0, 36, 24]
    img, lab, _ = EvalTransform()(image, label)  # full size
    assert torch.equal(lab.long(), label) and torch.equal(img, image)
    img, lab, _ = EvalTransform(max_short_side=100)(image, label)  # never upscales
    assert lab.shape == (60, 90)


def test_pad_collate():
    batch = [{"image": torch.ones(3, 4, 5), "label": torch.zeros(4, 5, dtype=torch.int64),
              "id": "a"},
             {"image": torch.ones(3, 6, 3), "label": torch.ones(6, 3, dtype=torch.int64),
              "id": "b"}]
    out = pad_collate(batch)
    assert out["image"].shape == (2, 3, 6, 5) and out["label"].shape == (2, 6, 5)
    assert out["id"] == ["a", "b"]
    assert torch.all(out["image"][0, :, 4:] == 0) and torch.all(out["label"][0, 4:] == 255)
    assert torch.all(out["label"][1, :, 3:] == 255) and torch.all(out["label"][1, :, :3] == 1)
    same = pad_collate([batch[0], batch[0]])
    assert same["image"].shape == (2, 3, 4, 5)
    # each image's own size travels with the batch, and evaluation can undo the padding
    assert out["size"].tolist() == [[4, 5], [6, 3]]
    parts = same_size_parts(out)
    assert [p["image"].shape for p in parts] == [(1, 3, 4, 5), (1, 3, 6, 3)]
    assert [p["id"] for p in parts] == [["a"], ["b"]]
    assert torch.equal(parts[1]["label"][0], batch[1]["label"])
    assert torch.equal(parts[0]["image"][0], batch[0]["image"])
    assert same_size_parts(same) == [same]  # nothing padded: the batch as it is


@pytest.mark.parametrize(("src", "dst"), [((7, 5), (3, 2)), ((4, 6), (10, 15)), ((9, 9), (4, 4))])
def test_label_resize_is_pixel_centre_nearest(src, dst):
    # independent reference: output pixel i takes input pixel floor((i + 0.5) * in / out);
    # plain NEAREST (floor(i * in / out)) differs for these sizes
    label = torch.arange(src[0] * src[1], dtype=torch.int64).view(src) % 256
    rows = [min(int((i + 0.5) * src[0] / dst[0]), src[0] - 1) for i in range(dst[0])]
    cols = [min(int((j + 0.5) * src[1] / dst[1]), src[1] - 1) for j in range(dst[1])]
    expected = label[rows][:, cols]
    out = resize_label(label, dst)
    assert out.dtype == torch.int64 and torch.equal(out, expected)
    assert [int(i * src[0] / dst[0]) for i in range(dst[0])] != rows  # the sizes tell them apart


def _old_train_item(normalize, crop, scale_range, image, label):
    """The training transform of float images (a reference): normalised on the CPU first,
    then cropped (image padding 0.0 in the normalised space) and flipped."""
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    if crop is not None:
        lo, hi = scale_range
        scale = lo + (hi - lo) * float(torch.rand(()))
        h, w = label.shape
        size = [max(1, int(np.floor(h * scale + 0.5))), max(1, int(np.floor(w * scale + 0.5)))]
        if size != [h, w]:
            image = v2.functional.resize(tv_tensors.Image(image), size, antialias=True)
            image = image.as_subclass(torch.Tensor)
            label = resize_label(label, size)
    pair = (tv_tensors.Image(normalize(image)), tv_tensors.Mask(label.to(torch.int64)))
    if crop is not None:
        pair = v2.RandomCrop(crop, pad_if_needed=True,
                             fill={tv_tensors.Image: 0.0, tv_tensors.Mask: 255})(*pair)
    pair = v2.RandomHorizontalFlip(0.5)(*pair)
    return pair[0].as_subclass(torch.Tensor), pair[1].as_subclass(torch.Tensor)


@pytest.mark.parametrize("crop", [None, (24, 28)])
@pytest.mark.parametrize("weights", [None, "caffe"])
def test_device_normalisation_equals_the_cpu_path_bit_for_bit(crop, weights):
    """Batches of uint8 items normalised after collation (normalize_batch, what the modules
    run on the device) equal the old path (normalised per item on the CPU, then cropped,
    flipped and padded) bit for bit, for both preprocessings, with crop padding (scales
    below 1) and pad_collate padding (images of different sizes), from the same seeds."""
    from zss.data.batches import normalize_batch
    from zss.data.sampling import seeded
    from zss.models import preprocessing_for

    normalize = preprocessing_for(weights, "caffe" if weights else None)
    g = torch.Generator().manual_seed(1)
    pairs = [(torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=g),
              torch.randint(0, 21, (h, w), generator=g)) for h, w in ((20, 30), (33, 17))]
    transform = TrainTransform(crop_size=crop, scale_range=(0.4, 1.6))
    padded = False
    for seed in range(12):
        new, old = [], []
        for i, (image, label) in enumerate(pairs):
            with seeded(100 * seed + i):
                img, lab, box = transform(image, label)
            with seeded(100 * seed + i):
                old_img, old_lab = _old_train_item(normalize, crop, (0.4, 1.6), image, label)
            new.append({"image": img, "label": lab, "box": box, "id": str(i)})
            old.append({"image": old_img, "label": old_lab, "id": str(i)})
            padded |= box.tolist() != [0, 0, img.shape[-1], img.shape[-2]]
        got = normalize_batch(pad_collate(new), normalize)
        want = pad_collate(old)
        assert got["image"].dtype == torch.float32 and got["label"].dtype == torch.int64
        # bit for bit: the same float32 bytes (+0.0 in the padding, never -0.0)
        assert torch.equal(got["image"].view(torch.int32), want["image"].view(torch.int32))
        assert torch.equal(got["label"], want["label"])
    assert padded or crop is None  # the crop case did pad (scales below 1)


def test_normalize_batch_refuses_float_images():
    from zss.data.batches import normalize_batch
    from zss.models import preprocessing_for

    with pytest.raises(TypeError, match="must be uint8"):
        normalize_batch({"image": torch.zeros(1, 3, 4, 4), "label": torch.zeros(1, 4, 4)},
                        preprocessing_for(None))
