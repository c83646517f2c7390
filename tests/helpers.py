"""Plain helpers (constants and functions) that test files of more than one layer use:
``from tests.helpers import ...``. Fixtures shared that way are in ``tests/conftest.py``."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from zss.data import voc_colormap
from zss.data.splits import (
    CONTEXT33_CLASSES,
    CONTEXT59_CLASSES,
    CONTEXT60_CLASSES,
    IGNORE_INDEX,
    VOC_CLASSES,
)

REPO = Path(__file__).resolve().parents[1]

# ---- the generated benchmark, a few steps (as tests/cli/test_experiments.py runs the demo)
TINY_DEMO = ["data.dataset.lengths.train=64", "data.dataset.lengths.val=8",
             "data.dataset.lengths.test=8", "data.dataset.size=32", "model.backbone.width=8",
             "model.backbone.fc_width=16", "+trainer.limit_train_batches=4",
             "+trainer.limit_val_batches=2", "stage1.max_epochs=1", "stage2.max_epochs=1",
             "visualize=0", "explain=false"]

# ---- configs -------------------------------------------------------------------------------
SMALL = ["model=small", "model.backbone.width=8", "model.backbone.fc_width=16"]


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


# ---- a tiny VOC copy of the shared sample ------------------------------------------------
TRAIN = 8  # training ids of the tiny copy (the sample's first ones)
TEST = 3


def tiny_voc_copy(voc_sample: Path, root: Path) -> Path:
    """``root``/VOCdevkit/VOC2012 with the sample's first TRAIN train and TEST val images
    (copies), lists ``train`` and ``val``; returns the VOC2012 folder."""
    src = voc_sample / "VOCdevkit" / "VOC2012"
    voc = root / "VOCdevkit" / "VOC2012"
    lists = voc / "ImageSets" / "Segmentation"
    for folder in ("JPEGImages", "SegmentationClass", lists):
        (voc / folder).mkdir(parents=True, exist_ok=True)
    for name, n in (("train", TRAIN), ("val", TEST)):
        ids = (src / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()[:n]
        for i in ids:
            shutil.copy(src / "JPEGImages" / f"{i}.jpg", voc / "JPEGImages")
            shutil.copy(src / "SegmentationClass" / f"{i}.png", voc / "SegmentationClass")
        (lists / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc


def ids_of(voc: Path, name: str) -> list[str]:
    return (voc / "ImageSets" / "Segmentation" / f"{name}.txt").read_text().split()


def jpeg(voc: Path, id_: str) -> Path:
    return voc / "JPEGImages" / f"{id_}.jpg"


def png(voc: Path, id_: str) -> Path:
    return voc / "SegmentationClass" / f"{id_}.png"


def cut(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def tree_digest(*roots: Path) -> dict[str, str]:
    """sha256 of every file under ``roots`` (the user's files, compared before and after)."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


# ---- tiny VOC trees written from scratch in tmp_path ---------------------------------------
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


def random_labels(n: int, h: int, w: int, c: int, void_frac: float = 0.3):
    """(n, h, w) int64 labels in [0, c), a ``void_frac`` share of them void, from torch's
    global generator."""
    import torch

    labels = torch.randint(0, c, (n, h, w))
    labels[torch.rand(n, h, w) < void_frac] = IGNORE_INDEX
    return labels


# ---- PASCAL-Context ------------------------------------------------------------------------
# the spellings of labels.txt, written here independently of zss.data.datasets.context
SPELLED = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}
TASKS = {"context33": CONTEXT33_CLASSES, "context59": CONTEXT59_CLASSES,
         "context60": CONTEXT60_CLASSES}


# ---- word vectors --------------------------------------------------------------------------
D = 30


def toy_kv(seed: int = 0):
    """Random D-dim vectors: 200 filler words first (the 'frequent' vocabulary), then every
    word of CLASS_WORDS."""
    from gensim.models import KeyedVectors

    from zss.embeddings import CLASS_WORDS

    words = [f"filler{i}" for i in range(200)]
    words += sorted({w for ws in CLASS_WORDS.values() for w in ws})
    kv = KeyedVectors(vector_size=D)
    rng = np.random.default_rng(seed)
    kv.add_vectors(words, rng.normal(size=(len(words), D)).astype(np.float32))
    return kv


def mean_class_vectors(kv, names) -> np.ndarray:
    """Per class, the mean of its CLASS_WORDS' vectors (the reference for class_vectors)."""
    from zss.embeddings import CLASS_WORDS

    return np.stack([np.mean([kv[w] for w in CLASS_WORDS[n]], axis=0) for n in names])


def voc_class_words() -> set[str]:
    from zss.embeddings import CLASS_WORDS

    return {w for name in VOC_CLASSES for w in CLASS_WORDS[name]}
