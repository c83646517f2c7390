"""The check of a prepared data folder (``python -m zss.data.prepare --check DIR``, and the
end of every ``prepare``): every list the experiments use, its ids against the published
count, the ids without a JPEG or a label, and the ``python -m zss.run`` commands that work on
the folder (docs/data.md, "Preparing the data")."""

from __future__ import annotations

import json
from pathlib import Path

from zss.data.datasets.base import read_id_list
from zss.data.datasets.voc import LABEL_DIRS, PACKAGED_LISTS

__all__ = ["FULL_COUNTS", "check"]

FULL_COUNTS = {"VOC train": 1464, "VOC val": 1449, "sbd_train": 8498, "train_aug": 10582,
               "seg11valid": 736, "Context train": 4998, "Context val": 5105}
"""The ids of every list the experiments use, in the published data."""
_STATE = ".zss-prepare"
"""The folder under a prepared root that holds checksum records and step markers."""


def _say(text: str) -> None:
    print(text, flush=True)


def _check_list(name, list_file, jpg_dir, label_dir, suffix, strict, in_folder):
    """One table row and (complete, failed)."""
    ids = read_id_list(list_file)
    no_jpg = [i for i in ids if not (jpg_dir / f"{i}.jpg").is_file()]
    no_label = [i for i in ids if not (label_dir / f"{i}{suffix}").is_file()]
    expected = FULL_COUNTS[name]
    complete = not no_jpg and not no_label
    wrong_count = strict and len(ids) != expected
    failed = (wrong_count or not complete) and (in_folder or strict)
    state = "ok" if complete else ("MISSING FILES" if failed else "partial")
    if wrong_count:
        state += f", but {len(ids)} ids, not {expected}"
    row = (f"  {name:<14}{len(ids):>7}{expected:>10}{len(no_jpg):>9}{len(no_label):>9}  {state}"
           f"  ({list_file})")
    for what, missing, folder in (("JPEG", no_jpg, jpg_dir), ("label", no_label, label_dir)):
        if missing and failed:
            row += f"\n      no {what} in {folder} for {len(missing)} ids, e.g. {missing[:3]}"
    return row, complete and not wrong_count, failed


def check(root: Path) -> bool:
    """Verify a prepared folder and print what runs on it.

    For every list the experiments use that the folder holds (VOC train / val, sbd_train,
    train_aug, the shipped seg11valid; Context train / val): its id count beside the
    published count (:data:`FULL_COUNTS`), and the ids without a JPEG or a label. A folder
    prepared from the published archives (or by hand) must match the published counts; one
    prepared with ``--manifest`` archives only needs every id to have its files. Prints the
    ``python -m zss.run`` commands that work on the folder.

    Returns:
        True when nothing failed.
    """
    root = Path(root).expanduser().resolve()
    origin_file = root / _STATE / "origin.json"
    strict = (not origin_file.is_file()
              or json.loads(origin_file.read_text()).get("checksums") == "published")
    _say(f"checking {root} (list sizes compared with the published counts: "
         f"{'yes' if strict else 'no, archives of a --manifest'})")
    _say(f"  {'list':<14}{'ids':>7}{'expected':>10}{'no JPEG':>9}{'no label':>9}")
    ok, complete, commands = True, {}, []
    voc = root / "VOCdevkit" / "VOC2012"
    if voc.is_dir():
        seg = voc / "ImageSets" / "Segmentation"
        for name, list_name in (("VOC train", "train"), ("VOC val", "val"),
                                ("sbd_train", "sbd_train"), ("train_aug", "train_aug"),
                                ("seg11valid", "seg11valid")):
            label_dir = voc / LABEL_DIRS.get(list_name, "SegmentationClass")
            list_file = seg / f"{list_name}.txt"
            in_folder = list_file.is_file()
            if not in_folder:
                list_file = PACKAGED_LISTS / f"{list_name}.txt"
            if not list_file.is_file() or not label_dir.is_dir():
                _say(f"  {name:<14}      -{FULL_COUNTS[name]:>10}  absent (python -m "
                     f"zss.data.prepare {'sbd' if list_name in LABEL_DIRS else 'voc'})")
                continue
            row, complete[name], failed = _check_list(
                name, list_file, voc / "JPEGImages", label_dir, ".png", strict, in_folder)
            ok &= not failed
            _say(row)
        data = f"paths.data_dir={root}"
        if complete.get("sbd_train") and complete.get("seg11valid"):
            commands.append(f"python -m zss.run +experiment=voc_17_2_2 {data}")
        lists = ("train_aug" if complete.get("train_aug") else
                 "train" if complete.get("VOC train") else None)
        if lists and complete.get("VOC val"):
            why = ("" if commands else "   # the paper's sbd_train / seg11valid are not "
                   "complete here")
            commands.append(f"python -m zss.run +experiment=voc_17_2_2 {data} "
                            f"data.train_set={lists} data.test_set=val{why}")
    ctx = root / "context" if (root / "context").is_dir() else root
    if (ctx / "trainval").is_dir():
        for name, list_name in (("Context train", "train"), ("Context val", "val")):
            list_file = ctx / "ImageSets" / f"{list_name}.txt"
            if not list_file.is_file():
                _say(f"  {name:<14}      -{FULL_COUNTS[name]:>10}  absent ({list_file})")
                continue
            row, complete[name], failed = _check_list(
                name, list_file, ctx / "VOCdevkit" / "VOC2010" / "JPEGImages", ctx / "trainval",
                ".mat", strict, True)
            ok &= not failed
            _say(row)
        if complete.get("Context train") and complete.get("Context val"):
            base = f"python -m zss.run +experiment=context_31_2_2 paths.data_dir={ctx}"
            commands.append(f"{base}   # keeps only the images whose pixels are all in its 33 "
                            "classes, as the original code: data.dataset.drop_images=null keeps "
                            "all (docs/data.md)")
            if (ctx / "labels-context33").is_dir():  # the experiment's class set
                commands.append(f"{base} data.dataset.label_dir={ctx / 'labels-context33'}")
    if not complete:
        _say(f"  no prepared dataset under {root}")
        ok = False
    _say("check: " + ("passed" if ok else "FAILED (see the rows above)"))
    if ok and commands:
        _say("these runs now work (add trainer=gpu on a GPU; +debug=cpu for a short check on "
             "a CPU):\n" + "\n".join(f"  {c}" for c in commands))
    return ok
