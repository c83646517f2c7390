"""Tests of zss.data: VOC reading and its errors, the zero-shot leakage filters, the joint
transforms and the DataModule (on the shared VOC sample and on tiny files in tmp_path)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from zss.data import (
    IGNORE_INDEX,
    VOC_CLASSES,
    DataError,
    EvalTransform,
    SplitError,
    TrainTransform,
    VOCSegmentation,
    ZSSDataModule,
    holdout_split,
    pad_collate,
    read_label,
    resize_label,
    same_size_parts,
    seenmask_target,
    split_from_config,
    stage1_indices,
    stage2_indices,
    voc_colormap,
)


@pytest.fixture(scope="module")
def split_17_2_2():
    seen = [c for c in VOC_CLASSES if c not in ("aeroplane", "horse", "sheep", "train")]
    assert len(seen) == 17
    return split_from_config("voc_17_2_2", "voc", seen, ["aeroplane", "horse"],
                             ["sheep", "train"])


# ---- tiny VOC trees in tmp_path ---------------------------------------------------------
def write_item(root: Path, id_: str, label: np.ndarray, image_hw: tuple[int, int] | None = None,
               rgb_label: bool = False) -> None:
    voc = root / "VOCdevkit" / "VOC2012"
    (voc / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (voc / "SegmentationClass").mkdir(parents=True, exist_ok=True)
    h, w = image_hw or label.shape
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(
        voc / "JPEGImages" / f"{id_}.jpg")
    if rgb_label:
        Image.fromarray(voc_colormap()[label]).save(voc / "SegmentationClass" / f"{id_}.png")
    else:
        png = Image.fromarray(label.astype(np.uint8), mode="P")
        png.putpalette(voc_colormap().ravel().tolist())
        png.save(voc / "SegmentationClass" / f"{id_}.png")


def write_list(root: Path, name: str, ids: list[str]) -> None:
    d = root / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


def small_label(values=(0, 1), h=12, w=16) -> np.ndarray:
    lab = np.full((h, w), values[0], dtype=np.uint8)
    lab[h // 4: 3 * h // 4, w // 4: 3 * w // 4] = values[1]
    lab[0, :] = IGNORE_INDEX
    return lab


@pytest.fixture
def tiny_voc(tmp_path: Path) -> Path:
    for i in range(3):
        write_item(tmp_path, f"img{i}", small_label((0, i + 1)))
    write_list(tmp_path, "train", ["img0", "img1", "img2"])
    return tmp_path


# ---- dataset on the shared sample -------------------------------------------------------
def test_voc_sample_dataset(voc_sample):
    train = VOCSegmentation(voc_sample, "train")
    val = VOCSegmentation(voc_sample / "VOCdevkit" / "VOC2012", "val")  # VOC2012 root too
    assert (len(train), len(val)) == (49, 16)
    for ds in (train, val):
        for i in range(len(ds)):
            item = ds[i]
            image, label = item["image"], item["label"]
            assert image.dtype == torch.uint8 and image.shape[0] == 3
            assert label.dtype == torch.uint8 and label.shape == image.shape[1:]
            assert set(label.unique().tolist()) <= set(range(21)) | {IGNORE_INDEX}
            assert item["id"] == ds.ids[i]
    presence = val.class_presence()
    sheep, train_cls = VOC_CLASSES.index("sheep"), VOC_CLASSES.index("train")
    assert sheep in presence[val.ids.index("2007_000676")]
    assert train_cls in presence[val.ids.index("2010_004980")]


# ---- leakage over the shared samples, under every shipped split --------------------------
# (the ZS3 K = 4, 6, 8 splits lie between K = 2 and K = 10 and are left out for time;
# tests/test_protocols.py counts their images)
SPLITS = sorted(p.stem for p in (Path(__file__).resolve().parents[1] / "conf" / "split")
                .glob("*.yaml") if not p.stem.endswith(("_k4", "_k6", "_k8")))


def _shipped_split(name: str, request):
    """The split of ``conf/split/<name>.yaml`` and a factory of the shared sample it runs
    on (VOC, or PASCAL-Context for a context class set)."""
    from omegaconf import OmegaConf

    from zss.data.datasets.context import ContextSegmentation

    conf = Path(__file__).resolve().parents[1] / "conf" / "split" / f"{name}.yaml"
    split = split_from_config(**OmegaConf.to_container(OmegaConf.load(conf)))
    classes = OmegaConf.load(conf).classes
    if classes.startswith("context"):
        return split, functools.partial(ContextSegmentation, request.getfixturevalue(
            "context_sample"), task=classes)
    return split, functools.partial(VOCSegmentation, request.getfixturevalue("voc_sample"),
                                    task=classes)


_PRESENT: dict[str, list[set[int]]] = {}


def _raw_presence(factory) -> list[set[int]]:
    """Per training image, the label values present (void excluded), read from the labels
    (not from the dataset's presence cache); once per sample."""
    key = repr(factory)
    if key not in _PRESENT:
        raw = factory("train")
        _PRESENT[key] = [set(raw[i]["label"].unique().tolist()) - {IGNORE_INDEX}
                         for i in range(len(raw))]
    return _PRESENT[key]


@pytest.mark.parametrize("crop_size", [None, 64])
@pytest.mark.parametrize("name", SPLITS)
def test_no_leakage_in_any_stage(name, crop_size, request):
    torch.manual_seed(0)
    sp, factory = _shipped_split(name, request)
    dm = ZSSDataModule(factory, sp,
                       batch_size=2, eval_batch_size=2, max_short_side=96,
                       crop_size=crop_size, holdout_fraction=0.1, seed=0)
    s1_allowed = set(sp.train_seen_idx) | {IGNORE_INDEX}
    s2_allowed = set(sp.seen_idx) | {IGNORE_INDEX}
    seen_lut = torch.full((256,), -1, dtype=torch.int64)
    seen_lut[sp.train_seen_idx], seen_lut[sp.train_unseen_idx] = 1, 0
    seen_lut[IGNORE_INDEX] = IGNORE_INDEX
    # the images each stage may use, counted from the raw labels
    present = _raw_presence(factory)
    expected = {"stage1": sum(bool(p) and p <= set(sp.train_seen_idx) for p in present),
                "stage2": sum(bool(p) and not p & set(sp.unseen_idx) for p in present)}

    dm.stage = "stage1"
    n1 = 0
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            assert set(batch["label"].unique().tolist()) <= s1_allowed, batch["id"]
            assert "seenmask" not in batch
            if crop_size and loader.dataset.transform is dm.train_transform:
                assert batch["image"].shape[-2:] == (crop_size, crop_size)
            n1 += len(batch["id"])
    dm.stage = "stage2"
    n2, saw_unseen_target = 0, False
    for loader in (dm.train_dataloader(), dm.val_dataloader()):
        for batch in loader:
            label, seenmask = batch["label"], batch["seenmask"]
            assert set(label.unique().tolist()) <= s2_allowed, batch["id"]
            assert set(seenmask.unique().tolist()) <= {0, 1, IGNORE_INDEX}
            assert label.dtype == seenmask.dtype == torch.uint8  # int64 on the device
            assert torch.equal(seenmask.long(), seen_lut[label.long()])
            saw_unseen_target |= bool((seenmask == 0).any())
            n2 += len(batch["id"])
    s = dm.summary()
    assert n1 == s["stage1_train"] + s["stage1_val"] == expected["stage1"] > 0
    assert n2 == s["stage2_train"] + s["stage2_val"] == expected["stage2"] >= n1
    # train_unseen pixels reach stage 2 as target 0 (when the split has such classes)
    assert saw_unseen_target == bool(sp.train_unseen)


def test_datamodule_parts(voc_sample, split_17_2_2):
    dm = ZSSDataModule(functools.partial(VOCSegmentation, voc_sample), split_17_2_2,
                       max_short_side=64, holdout_fraction=0.1, seed=0)
    s = dm.summary()
    assert s == {"train_list": 49, "all_void": 0, "stage1_train": 37, "stage1_val": 4,
                 "stage2_train": 42, "stage2_val": 5, "test": 16}
    assert "stage 1: 37 train / 4 held-out images" in dm.describe()
    # one held-out set: never trained on in either stage
    held = set(dm.ids("stage2_val"))
    assert set(dm.ids("stage1_val")) <= held
    assert not held & (set(dm.ids("stage1_train")) | set(dm.ids("stage2_train")))
    assert set(dm.ids("stage1_train")) <= set(dm.ids("stage2_train"))
    # deterministic in the seed
    dm2 = ZSSDataModule(functools.partial(VOCSegmentation, voc_sample), split_17_2_2,
                        holdout_fraction=0.1, seed=0)
    assert dm2.ids("stage1_val") == dm.ids("stage1_val")
    # the test loader is the whole test split, untouched by the filters
    test_ids = [i for b in dm.test_dataloader() for i in b["id"]]
    assert test_ids == VOCSegmentation(voc_sample, "val").ids
    with pytest.raises(ValueError, match="stage must be one of"):
        dm.stage = "stage3"


def test_held_out_images_given_by_id_ignore_the_seed(voc_sample, split_17_2_2):
    """A run continued from a stage-1 checkpoint holds out the checkpoint's images: another
    seed would draw other ones, among them images stage 1 was trained on."""
    factory = functools.partial(VOCSegmentation, voc_sample)
    trained = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.1, seed=0)
    record = trained.heldout_record()
    assert record["ids"] == sorted(trained.ids("stage2_val")) and not record["from_checkpoint"]
    other_seed = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.1, seed=7)
    contaminated = set(other_seed.ids("stage2_val")) & set(trained.ids("stage1_train"))
    assert contaminated  # what a recomputed held-out set would have validated on
    reused = ZSSDataModule(factory, split_17_2_2, holdout_fraction=0.3, seed=7,
                           heldout_ids=record["ids"])
    for part in ("stage1_val", "stage2_val", "stage1_train", "stage2_train"):
        assert reused.ids(part) == trained.ids(part), part
    assert reused.heldout_record()["from_checkpoint"]


def test_datamodule_rejects_transforming_factory(tiny_voc, split_17_2_2):
    factory = functools.partial(VOCSegmentation, tiny_voc, transform=EvalTransform())
    dm = ZSSDataModule(factory, split_17_2_2)
    with pytest.raises(ValueError, match="transform=None"):
        dm.setup("fit")


# ---- filters -----------------------------------------------------------------------------
def test_stage_filters_synthetic(split_17_2_2):
    sp = split_17_2_2
    bg, aero, bird, horse, sheep, train = (VOC_CLASSES.index(c) for c in
                                           ("background", "aeroplane", "bird", "horse",
                                            "sheep", "train"))
    presence = [
        frozenset({bg, bird}),          # 0: seen only
        frozenset({bg, aero}),          # 1: train_unseen
        frozenset({bg, sheep}),         # 2: unseen
        frozenset({bird}),              # 3: seen only
        frozenset(),                    # 4: all void
        frozenset({horse, train}),      # 5: train_unseen + unseen
        frozenset({bg, bird, horse}),   # 6: seen + train_unseen
    ]
    assert stage1_indices(presence, sp) == [0, 3]
    assert stage2_indices(presence, sp) == [0, 1, 3, 6]


def test_filter_leaving_nothing_raises(split_17_2_2):
    sheep, aero = VOC_CLASSES.index("sheep"), VOC_CLASSES.index("aeroplane")
    with pytest.raises(SplitError) as err:
        stage1_indices([frozenset({0, aero}), frozenset({sheep})], split_17_2_2)
    msg = str(err.value)
    assert "voc_17_2_2" in msg and "2 scanned" in msg and "aeroplane" in msg and "sheep" in msg
    with pytest.raises(SplitError) as err:
        stage2_indices([frozenset({sheep})] * 3, split_17_2_2)
    msg = str(err.value)
    assert "stage 2" in msg and "3 scanned" in msg and "['sheep', 'train']" in msg


def test_seenmask_target(split_17_2_2):
    sp = split_17_2_2
    aero, horse, bird, sheep = (VOC_CLASSES.index(c) for c in ("aeroplane", "horse", "bird",
                                                                "sheep"))
    label = torch.tensor([[[0, aero, bird], [horse, IGNORE_INDEX, 0]]])
    out = seenmask_target(label, sp)
    assert out.dtype == torch.int64 and out.shape == label.shape
    assert out.tolist() == [[[1, 0, 1], [0, IGNORE_INDEX, 1]]]
    small = seenmask_target(label.to(torch.uint8), sp)  # the loader's labels: uint8 stays
    assert small.dtype == torch.uint8 and small.tolist() == out.tolist()
    with pytest.raises(ValueError, match="sheep"):
        seenmask_target(torch.tensor([[0, sheep]]), sp)
    with pytest.raises(ValueError):
        seenmask_target(torch.tensor([[0, 30]]), sp)


def test_holdout_split():
    idx = list(range(0, 40, 2))
    train, held = holdout_split(idx, 0.1, seed=3)
    assert len(held) == 2 and len(train) == 18
    assert sorted(train + held) == idx and not set(train) & set(held)
    assert holdout_split(idx, 0.1, seed=3) == (train, held)
    assert holdout_split(idx, 0.1, seed=4) != (train, held)
    assert holdout_split([5, 7], 0.01, 0)[1] != []       # at least one held out
    assert holdout_split([5, 7], 0.9, 0)[0] != []         # train never empty
    assert holdout_split([5], 0.5, 0) == ([5], [])
    assert holdout_split(idx, 0.0, 0) == (idx, [])
    with pytest.raises(ValueError):
        holdout_split(idx, 1.0, 0)


# ---- bad input ---------------------------------------------------------------------------
def test_missing_root_and_list(tmp_path, tiny_voc):
    with pytest.raises(DataError, match="does not exist"):
        VOCSegmentation(tmp_path / "nowhere")
    with pytest.raises(DataError) as err:
        VOCSegmentation(tiny_voc, "trainval")
    assert "trainval.txt" in str(err.value) and "['train']" in str(err.value)


@pytest.mark.parametrize("kind", ["JPEGImages/img1.jpg", "SegmentationClass/img2.png"])
def test_missing_files(tiny_voc, kind):
    (tiny_voc / "VOCdevkit" / "VOC2012" / kind).unlink()
    with pytest.raises(DataError) as err:
        VOCSegmentation(tiny_voc, "train")
    msg = str(err.value)
    assert Path(kind).stem in msg and Path(kind).name in msg and "train.txt" in msg


def test_rgb_colour_mask(tiny_voc):
    write_item(tiny_voc, "img1", small_label((0, 5)), rgb_label=True)
    ds = VOCSegmentation(tiny_voc, "train")
    for call in (lambda: ds[1], ds.class_presence):
        with pytest.raises(DataError) as err:
            call()
        msg = str(err.value)
        assert "img1.png" in msg and "RGB colour mask" in msg and "palette" in msg
        assert "colour map" in msg


def test_label_value_out_of_range(tiny_voc):
    write_item(tiny_voc, "img2", small_label((0, 42)))
    ds = VOCSegmentation(tiny_voc, "train")
    for call in (lambda: ds[2], ds.class_presence):
        with pytest.raises(DataError) as err:
            call()
        msg = str(err.value)
        assert "img2.png" in msg and "42" in msg and "num_classes=21" in msg
    assert VOCSegmentation(tiny_voc, "train", num_classes=43)[2]["label"].max() == 255


def test_image_label_size_mismatch(tiny_voc):
    write_item(tiny_voc, "img0", small_label((0, 1), h=12, w=16), image_hw=(10, 16))
    ds = VOCSegmentation(tiny_voc, "train")
    for call in (lambda: ds[0], ds.class_presence):
        with pytest.raises(DataError) as err:
            call()
        msg = str(err.value)
        assert "'img0'" in msg and "10×16" in msg and "12×16" in msg


def test_read_label_palette_values(tiny_voc):
    path = tiny_voc / "VOCdevkit" / "VOC2012" / "SegmentationClass" / "img2.png"
    label = read_label(path)
    assert label.dtype == torch.int64 and set(label.unique().tolist()) == {0, 3, 255}


def test_class_presence_cache(tiny_voc, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    ds = VOCSegmentation(tiny_voc, "train", cache_dir=cache)
    presence = ds.class_presence()
    assert presence == [frozenset({0, 1}), frozenset({0, 2}), frozenset({0, 3})]
    files = list(cache.glob("*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["presence"][2] == [0, 3]

    def fail(self, index):
        raise AssertionError("cache not used")

    monkeypatch.setattr(VOCSegmentation, "_scan", fail)
    assert VOCSegmentation(tiny_voc, "train", cache_dir=cache).class_presence() == presence
    monkeypatch.undo()
    write_item(tiny_voc, "img1", small_label((0, 7)))  # a changed label invalidates the key
    assert VOCSegmentation(tiny_voc, "train", cache_dir=cache).class_presence()[1] == {0, 7}


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
    """The training transform as it was before issue 12 (a reference): normalised on the
    CPU first, then cropped (image padding 0.0 in the normalised space) and flipped."""
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
    from zss.data.sampling import seeded
    from zss.data.transforms import normalize_batch
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
    from zss.data.transforms import normalize_batch
    from zss.models import preprocessing_for

    with pytest.raises(TypeError, match="must be uint8"):
        normalize_batch({"image": torch.zeros(1, 3, 4, 4), "label": torch.zeros(1, 4, 4)},
                        preprocessing_for(None))


def test_seeded_draws_as_manual_seed_and_restores_the_outer_stream():
    from zss.data.sampling import seeded

    torch.manual_seed(7)
    want_outer = torch.rand(4)
    torch.manual_seed(7)
    with seeded(12345):
        inner = torch.rand(5), float(torch.rand(())), torch.randint(0, 100, (3,))
    outer = torch.rand(4)  # the stream outside continues as if nothing had been drawn
    torch.manual_seed(12345)  # what the transforms drew from before (all generators seeded)
    ref = torch.rand(5), float(torch.rand(())), torch.randint(0, 100, (3,))
    assert torch.equal(inner[0], ref[0]) and inner[1] == ref[1] and torch.equal(inner[2], ref[2])
    assert torch.equal(outer, want_outer)
