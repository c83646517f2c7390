"""Benchmark 3: images/s of the VOC training pipeline vs bare JPEG decoding of the same files.

Pipeline: ``ZSSDataModule(VOCSegmentation).train_dataloader()`` exactly as a stage-1 run
builds it: split voc_21_0_0 (every image of the list is a stage-1 image), no hold-out,
batch 1, full-size images (the paper's setting: ``TrainTransform`` = random horizontal
flip), ``pad_collate``, shuffled; for 0, 1 and 2 workers (persistent, as zss sets them).
Each epoch reads and decodes every JPEG, reads and checks its label PNG, transforms and
collates; batches are uint8 (images and labels). The normalisation to float32 runs
on the device after the transfer (``normalize_batch`` in the module's
``on_after_batch_transfer``): on a GPU it overlaps nothing of the loader's, so it is timed
apart (on the CPU, in the breakdown) rather than in the pipeline.

Baselines, on the same JPEG files: Pillow (``Image.open(p).convert("RGB")`` to a numpy array)
and ``torchvision.io.decode_jpeg(read_file(p))``, in the main process.

An epoch of each case alternates with the others, ``--reps`` times after one warm-up epoch
(which also starts the workers). Goal: pipeline time per image <= 1.2x the decode time. A
breakdown of the pipeline's time per image by stage (0 workers) says where the time goes.

    .venv/bin/python benchmarks/bench_loader.py [--reps 5] [--root ../shared/data/voc2012-sample]
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np
import torch
from _common import REPO, VOC_SAMPLE, alternate, header, median, ratio_line, show
from omegaconf import OmegaConf
from PIL import Image
from torchvision.io import decode_jpeg, read_file

from zss.data import VOCSegmentation, ZSSDataModule, pad_collate, split_from_config
from zss.data.batches import normalize_batch
from zss.data.datasets.voc import read_image
from zss.data.transformed import TransformedDataset
from zss.models import preprocessing_for


def make_datamodule(root: str, workers: int) -> ZSSDataModule:
    split = split_from_config(**OmegaConf.to_container(
        OmegaConf.load(REPO / "conf/split/voc_21_0_0.yaml")))
    dm = ZSSDataModule(functools.partial(VOCSegmentation, root), split, holdout_fraction=0.0,
                       num_workers=workers)
    dm.setup("fit")
    return dm


def epoch(loader) -> None:
    for batch in loader:
        assert batch["image"].dtype == batch["label"].dtype == torch.uint8


def breakdown(dm: ZSSDataModule, reps: int = 3) -> dict[str, float]:
    """Median seconds per image of each pipeline stage, run by hand in this process."""
    base = dm._train_base
    wrapped = TransformedDataset(base, dm.train_transform)
    normalize = preprocessing_for(None)
    parts: dict[str, list[float]] = {k: [] for k in ("decode JPEG (read_image)",
                                                     "read + check label PNG (dataset)",
                                                     "TrainTransform", "pad_collate",
                                                     "whole item + collate",
                                                     "normalize_batch (device; here CPU)")}
    for _ in range(reps):
        acc = dict.fromkeys(parts, 0.0)
        for i in range(len(base)):
            t0 = time.perf_counter()
            image = read_image(base.image_path(base.ids[i]))
            t1 = time.perf_counter()
            label = torch.from_numpy(base._checked_label(base.ids[i]))  # as load() reads it
            t2 = time.perf_counter()
            image, label, box = dm.train_transform(image, label)
            t3 = time.perf_counter()
            pad_collate([{"image": image, "label": label, "box": box, "id": base.ids[i]}])
            t4 = time.perf_counter()
            batch = pad_collate([wrapped[i]])
            t5 = time.perf_counter()
            normalize_batch(batch, normalize)
            t6 = time.perf_counter()
            for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t6 - t5),
                               strict=True):
                acc[key] += dt
        for key in parts:
            parts[key].append(acc[key] / len(base))
    return {k: median(v) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--root", default=str(VOC_SAMPLE))
    args = ap.parse_args()
    header("3. data loading: VOC training pipeline vs bare JPEG decoding")
    if not (Path(args.root) / "VOCdevkit" / "VOC2012").is_dir():
        raise SystemExit(f"FAIL: no VOC images under {args.root} (a folder holding "
                         "VOCdevkit/VOC2012 with JPEGImages, SegmentationClass and "
                         "ImageSets/Segmentation/train.txt): pass --root /path/to/it, or "
                         "ZSS_SHARED_DATA=/path/to/shared/data for make bench")
    dms = {w: make_datamodule(args.root, w) for w in (0, 1, 2)}
    base = dms[0]._train_base
    paths = [str(base.image_path(i)) for i in base.ids]
    n = len(paths)
    print(f"{n} images from {base.list_file} (full size, batch 1)")
    loaders = {w: dm.train_dataloader() for w, dm in dms.items()}

    def pillow() -> None:
        for p in paths:
            with Image.open(p) as im:
                np.asarray(im.convert("RGB"))

    def tv_decode() -> None:
        for p in paths:
            decode_jpeg(read_file(p))

    cases = {f"pipeline, {w} worker{'s' if w != 1 else ''}": functools.partial(epoch, loader)
             for w, loader in loaders.items()}
    cases |= {"Pillow decode": pillow, "torchvision decode_jpeg": tv_decode}
    times = alternate(cases, reps=args.reps, warmup=1)
    per_image = {k: [t / n for t in v] for k, v in times.items()}
    print("time per image (images/s = 1000 / ms):")
    show(per_image, unit="ms", scale=1000)
    med = {k: median(v) for k, v in per_image.items()}
    for name in med:
        print(f"  {name:<26} {1 / med[name]:7.1f} images/s")
    for w in (0, 1, 2):
        key = next(k for k in med if k.startswith(f"pipeline, {w} "))
        for dec in ("torchvision decode_jpeg", "Pillow decode"):
            ratio_line(f"loader {w} workers / {dec}", med[key] / med[dec], 1.2)
    print("where the time goes (0 workers, per image, this process):")
    parts = breakdown(dms[0])
    for key, sec in parts.items():
        print(f"  {key:<38} {sec * 1000:8.3f} ms")


if __name__ == "__main__":
    main()
