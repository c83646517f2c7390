"""The paper's data in one command: download, verify, unpack, convert and check PASCAL VOC
2012, SBD and PASCAL-Context, and fetch ahead what a run downloads (docs/data.md, "Preparing
the data").

Usage::

    python -m zss.data.prepare voc|sbd|context|all --root DIR [--archives ADIR] [--mirror URL]
                               [--context-task context33|context59|context60]
    python -m zss.data.prepare --check DIR
    python -m zss.data.prepare weights [--only NAME ...] [--list] [--cache-dir DIR]

Layout written under ``DIR`` (what ``paths.data_dir=`` runs read)::

    DIR/VOCdevkit/VOC2012/{JPEGImages, SegmentationClass, ImageSets/Segmentation}   voc
    DIR/VOCdevkit/VOC2012/{SegmentationClassSBD, SegmentationClassAug} + lists      sbd
    DIR/benchmark_RELEASE/dataset/{cls/, train.txt, val.txt}                         sbd
    DIR/context/{VOCdevkit/VOC2010/JPEGImages, trainval/, labels.txt, ImageSets/}    context
    DIR/context/labels-<task>/                                   --context-task <task>
    DIR/archives/            the downloaded archives (may be deleted once prepared)
    DIR/.zss-prepare/        checksum records and the markers of finished steps

Every step is idempotent: a finished step (its marker) is reported "in place"; a killed run
restarts where it stopped (partial downloads in ``.part`` files are resumed, unpacking goes
through a staging folder). Nothing that exists is overwritten.

The published URLs and md5 checksums of VOC 2012, VOC 2010 and SBD are those of torchvision's
dataset classes (``torchvision.datasets.voc.DATASET_YEAR_DICT``,
``torchvision.datasets.SBDataset``), imported from the installed torchvision. The
PASCAL-Context site (https://cs.stanford.edu/~roozbeh/pascal-context/) publishes no
checksum; the md5 of its ``trainval.tar.gz`` is the one pinned by the public download script
``tf_image_segmentation/recipes/pascal_voc/data_pascal_voc.py`` of tf-image-segmentation
(e.g. kbardool/tf-image-segmentation @b822c541). Besides, the sha256 of every archive's first
verified copy is recorded in ``DIR/.zss-prepare`` and later copies are checked against it.
PASCAL-Context's official train / val lists (4,998 / 5,105 ids) are VOC 2010's
``ImageSets/Main/{train,val}.txt`` (Mottaghi et al., CVPR 2014 use VOC 2010's split); they are
copied from the VOC 2010 archive.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from torchvision.datasets.sbd import SBDataset
from torchvision.datasets.voc import DATASET_YEAR_DICT

from zss.data.convert_context import convert_context
from zss.data.convert_sbd import convert_sbd
from zss.data.datasets.base import read_id_list
from zss.data.datasets.context_labels import CONTEXT_TASKS
from zss.data.download import Archive, download, unpack, verify
from zss.data.files import DataError
from zss.data.prepared import _STATE, FULL_COUNTS, _say, check

__all__ = ["ARCHIVES", "DATASETS", "FULL_COUNTS", "check", "main", "prepare"]

_GB = 1_000_000_000
_VOC12, _VOC10 = DATASET_YEAR_DICT["2012"], DATASET_YEAR_DICT["2010"]
ARCHIVES: dict[str, Archive] = {a.name: a for a in (
    Archive("voc2012", _VOC12["filename"], _VOC12["url"], _VOC12["md5"], None, int(4.0 * _GB),
            tuple(f"VOCdevkit/VOC2012/{m}" for m in
                  ("JPEGImages/", "SegmentationClass/", "ImageSets/Segmentation/")),
            "torchvision.datasets.voc.DATASET_YEAR_DICT['2012']"),
    Archive("sbd", SBDataset.filename, SBDataset.url, SBDataset.md5, None, int(2.2 * _GB),
            ("benchmark_RELEASE/dataset/cls/", "benchmark_RELEASE/dataset/train.txt",
             "benchmark_RELEASE/dataset/val.txt"), "torchvision.datasets.SBDataset"),
    Archive("voc2010", _VOC10["filename"], _VOC10["url"], _VOC10["md5"], None, int(2.5 * _GB),
            ("VOCdevkit/VOC2010/JPEGImages/", "VOCdevkit/VOC2010/ImageSets/Main/train.txt",
             "VOCdevkit/VOC2010/ImageSets/Main/val.txt"),
            "torchvision.datasets.voc.DATASET_YEAR_DICT['2010']"),
    Archive("context", "trainval.tar.gz",
            "https://cs.stanford.edu/~roozbeh/pascal-context/trainval.tar.gz",
            "df034edb2c12aa7d33b42b20bb1796e3", None, int(0.5 * _GB), (),
            "no checksum published; md5 of tf-image-segmentation's download script "
            "(recipes/pascal_voc/data_pascal_voc.py)"),
)}
"""The published archives (URL, md5, what is unpacked, an upper estimate of the disk each
needs with its unpacked and converted files; see the module docstring for the sources)."""
DATASETS = {"voc": ("voc2012",), "sbd": ("voc2012", "sbd"), "context": ("voc2010", "context"),
            "all": ("voc2012", "sbd", "voc2010", "context")}
"""The archives each dataset argument needs (sbd is converted into the VOC 2012 folder)."""


def _load_manifest(path: Path | None, mirror: str | None) -> tuple[dict[str, Archive], str]:
    """The archives to use and where their checksums come from (``published`` or a file)."""
    archives = dict(ARCHIVES)
    origin = "published"
    if path is not None:
        try:
            entries = json.loads(path.read_text())
            for name, entry in entries.items():
                archives[name] = replace(archives[name], **entry, source=str(path))
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise DataError(f"--manifest {path}: not a JSON object of archive names "
                            f"({sorted(ARCHIVES)}) to {{url, md5, size, filename}} ({err}).") from err
        origin = f"manifest {path}"
        _say(f"NOTE: checksums and sizes from {path}, not the published ones; --check will not "
             "compare the list sizes with the published counts.")
    if mirror:
        archives = {k: replace(a, url=f"{mirror.rstrip('/')}/{a.filename}")
                    for k, a in archives.items()}
    return archives, origin


class _Prepare:
    def __init__(self, root: Path, archives: dict[str, Archive], archive_dir: Path | None):
        self.root, self.archives, self.archive_dir = root, archives, archive_dir
        self.state = root / _STATE

    def done(self, step: str) -> bool:
        return (self.state / f"{step}.done").is_file()

    def mark(self, step: str, counts: dict) -> None:
        (self.state / f"{step}.done").write_text(json.dumps(counts) + "\n")

    def file(self, name: str) -> tuple[Path, bool]:
        """A verified copy of archive ``name`` and whether it is ours (may be deleted)."""
        a = self.archives[name]
        record = self.state / f"{a.filename}.json"
        if self.archive_dir is not None and (self.archive_dir / a.filename).is_file():
            path = self.archive_dir / a.filename
            _say(f"{a.filename}: using {path} (--archives)")
            verify(path, a, record, delete=False)
            return path, False
        path = self.root / "archives" / a.filename
        if not path.is_file():
            _say(f"{a.filename}: downloading {a.url}")
        download(a.url, path, a.size)
        verify(path, a, record, delete=True)
        return path, True

    def unpack(self, name: str, dest: Path) -> None:
        step = f"unpacked-{name}"
        if self.done(step):
            _say(f"{name}: unpacked, in place")
            return
        path, ours = self.file(name)
        _say(f"{path.name}: unpacking into {dest} ...")
        try:
            counts = unpack(path, dest, self.archives[name].members,
                            self.state / f"staging-{name}")
        except DataError as err:
            if ours:
                path.unlink(missing_ok=True)
                (self.state / f"{path.name}.json").unlink(missing_ok=True)
                raise DataError(f"{err} The download was deleted; run the command again to "
                                "fetch it anew.") from err
            raise
        self.mark(step, counts)
        _say(f"{path.name}: {counts['written']} files unpacked, {counts['kept']} already there "
             "(kept)")

    def step(self, step: str, run) -> None:
        if self.done(step):
            _say(f"{step}: in place")
            return
        t0 = time.monotonic()
        counts = run()
        self.mark(step, counts)
        _say(f"{step}: {counts} ({time.monotonic() - t0:.0f} s)")


def _context_lists(ctx: Path) -> dict[str, int]:
    main = ctx / "VOCdevkit" / "VOC2010" / "ImageSets" / "Main"
    out = ctx / "ImageSets"
    out.mkdir(exist_ok=True)
    counts = {}
    for name in ("train", "val"):
        ids = read_id_list(main / f"{name}.txt")
        text = "".join(f"{i}\n" for i in ids)
        target = out / f"{name}.txt"
        if target.is_file() and target.read_text() != text:
            _say(f"{target} exists with other ids: kept (move it away to write VOC 2010's "
                 f"{name} list)")
        elif not target.is_file():
            target.write_text(text)
        counts[name] = len(ids)
    labels = ctx / "labels.txt"
    if not labels.is_file() and (ctx / "trainval" / "labels.txt").is_file():
        shutil.copyfile(ctx / "trainval" / "labels.txt", labels)
    if not labels.is_file():
        raise DataError(f"{labels} is missing: trainval.tar.gz held no labels.txt (459 classes)."
                        " Put the labels.txt of PASCAL-Context there.")
    return counts


def _disk_check(root: Path, prep: _Prepare, names: list[str]) -> None:
    need = sum(prep.archives[n].disk for n in names if not prep.done(f"unpacked-{n}"))
    root.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(root).free
    if need > free:
        raise DataError(f"{root} has {free / _GB:.1f} GB free, and preparing {names} needs up to "
                        f"{need / _GB:.1f} GB (archives, unpacked and converted files); free "
                        "space or choose another --root.")


def prepare(dataset: str, root: Path, archive_dir: Path | None = None, mirror: str | None = None,
            manifest: Path | None = None, context_task: str | None = None) -> bool:
    """Download, verify, unpack and convert ``dataset`` under ``root``, then :func:`check` it.

    Args:
        dataset: a key of :data:`DATASETS`.
        root: the data folder (created); see the module docstring for its layout.
        archive_dir: a folder of already downloaded archives (by their published file
            names): used, never downloaded again, never deleted.
        mirror: a base URL serving the archives under their file names.
        manifest: a JSON file replacing archives' ``url``/``md5``/``size``/``filename`` (for
            other copies of the archives and for tests; the run says so and ``--check`` then
            does not compare list sizes with the published counts).
        context_task: also convert the Context label maps of train and val to PNGs of this
            class set (``DIR/context/labels-<task>``).

    Returns:
        whether the check passed.

    Raises:
        DataError: a failed download or checksum, too little disk, a corrupt archive.
    """
    archives, origin = _load_manifest(manifest, mirror)
    root = root.expanduser().resolve()
    prep = _Prepare(root, archives, archive_dir)
    names = list(DATASETS[dataset])
    _disk_check(root, prep, names)
    prep.state.mkdir(exist_ok=True)
    origin_file = prep.state / "origin.json"
    text = json.dumps({"checksums": origin}) + "\n"
    if not origin_file.is_file() or (origin != "published" and origin_file.read_text() != text):
        origin_file.write_text(text)  # a --manifest run marks the folder for good
    t0 = time.monotonic()
    if "voc2012" in names:
        prep.unpack("voc2012", root)
    if "sbd" in names:
        prep.unpack("sbd", root)
        prep.step("converted-sbd", lambda: convert_sbd(root / "benchmark_RELEASE", root))
    if "context" in names:
        ctx = root / "context"
        prep.unpack("voc2010", ctx)
        prep.unpack("context", ctx)
        prep.step("context-lists", lambda: _context_lists(ctx))
        if context_task:
            ids = sorted(set(read_id_list(ctx / "ImageSets" / "train.txt"))
                         | set(read_id_list(ctx / "ImageSets" / "val.txt")))
            prep.step(f"converted-{context_task}", lambda: convert_context(
                ctx, ctx / f"labels-{context_task}", context_task, ids))
    _say(f"prepared {dataset} in {time.monotonic() - t0:.0f} s; checking ...")
    if (root / "archives").is_dir():
        _say(f"(the archives in {root / 'archives'} are no longer needed: delete them to free "
             "the space)")
    return check(root)


def _weights(only: list[str] | None, listing: bool, cache_dir: Path) -> None:
    """``prepare weights``: fetch the registered items of :mod:`zss.runtime.prefetch`."""
    import zss.embeddings.published  # noqa: F401  (each module registers its items)
    import zss.embeddings.sources  # noqa: F401
    import zss.embeddings.text_encoders  # noqa: F401
    import zss.models.backbones.deeplabv3plus  # noqa: F401
    import zss.models.backbones.vgg16_weights  # noqa: F401
    from zss.runtime.prefetch import PREFETCH

    if listing:
        width = max(map(len, PREFETCH)) + 2
        for item in PREFETCH.values():
            _say(f"{item.name:<{width}}{'default' if item.default else 'on --only':<11}"
                 f"{item.description}")
        return
    unknown = sorted(set(only or []) - set(PREFETCH))
    if unknown:
        raise DataError(f"--only {unknown}: no such item; the items are {sorted(PREFETCH)} "
                        "(python -m zss.data.prepare weights --list).")
    items = [PREFETCH[n] for n in only] if only else [i for i in PREFETCH.values() if i.default]
    for item in items:
        _say(f"{item.name}: fetching ...")
        try:
            files = item.fetch(cache_dir)
        except Exception as err:  # no network, HTTP errors, ...: the library's own types
            raise DataError(f"{item.name} could not be fetched ({type(err).__name__}: {err}). "
                            "Run this on a machine with internet.") from err
        for f in files:
            _say(f"{item.name}: {f}")


def _default_cache_dir() -> Path:
    import os

    return Path(os.environ.get("ZSS_CACHE", ".cache/zss"))


def main(argv: list[str] | None = None) -> None:
    """Command line (see the module docstring); exit status 2 on a :class:`DataError`, 1
    when the check fails."""
    parser = argparse.ArgumentParser(
        prog="python -m zss.data.prepare", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="docs/data.md, 'Preparing the data', gives URLs, sizes, checksums and times.")
    parser.add_argument("dataset", nargs="?", choices=[*DATASETS, "weights"])
    parser.add_argument("--root", type=Path, help="the data folder (paths.data_dir of the runs)")
    parser.add_argument("--check", type=Path, metavar="DIR", help="only verify a prepared folder")
    parser.add_argument("--archives", type=Path, metavar="ADIR",
                        help="folder of already downloaded archives (used, never downloaded)")
    parser.add_argument("--mirror", metavar="URL", help="base URL serving the archives by name")
    parser.add_argument("--manifest", type=Path, metavar="FILE",
                        help="JSON replacing archives' url/md5/size (other copies; tests)")
    parser.add_argument("--context-task", choices=CONTEXT_TASKS,
                        help="also convert the Context labels to PNGs of this class set")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="weights: only these items")
    parser.add_argument("--list", action="store_true", help="weights: list the items")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="weights: paths.cache_dir (default: $ZSS_CACHE or .cache/zss)")
    args = parser.parse_args(argv)
    try:
        if args.check is not None:
            ok = check(args.check)
        elif args.dataset == "weights":
            _weights(args.only, args.list, args.cache_dir or _default_cache_dir())
            ok = True
        elif args.dataset is None or args.root is None:
            parser.error("give a dataset and --root DIR, --check DIR, or weights")
        else:
            ok = prepare(args.dataset, args.root, args.archives, args.mirror, args.manifest,
                         args.context_task)
    except DataError as err:
        parser.exit(2, f"zss: error: {err}\n")
    except KeyboardInterrupt:
        parser.exit(130, "interrupted: run the same command again to continue where it "
                         "stopped.\n")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
