"""``python -m zss.data.prepare`` (its main(), in-process) against small archives with the
published inner layouts, served from 127.0.0.1: a full prepare, a resumed download, checksum
and archive failures, idempotence, --archives and --check."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from scipy.io import loadmat

from tests.prepare_archives import Server, build_archives, entry, write_manifest
from zss.data import prepare as prep


@pytest.fixture(scope="module")
def archives(voc_sample, context_sample, tmp_path_factory):
    folder = tmp_path_factory.mktemp("served")
    return folder, build_archives(voc_sample, context_sample, folder)


@pytest.fixture
def served(archives):
    server = Server(archives[0])
    yield server
    server.close()


def run(capsys, *argv) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        prep.main([str(a) for a in argv])
    out = capsys.readouterr()
    return exit_.value.code, out.out + out.err


def manifest(tmp_path, entries, **changes) -> Path:
    entries = {k: dict(v) for k, v in entries.items()}
    for name, change in changes.items():
        entries[name].update(change)
    return write_manifest(tmp_path / "manifest.json", entries)


def mtimes(root: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in root.rglob("*")}


def test_full_prepare_gives_what_the_readers_read_and_a_second_run_changes_nothing(
        archives, served, tmp_path, capsys, voc_sample, context_sample):
    root = tmp_path / "data"
    argv = ["all", "--root", root, "--mirror", served.url, "--context-task", "context33",
            "--manifest", manifest(tmp_path, archives[1])]
    code, out = run(capsys, *argv)
    assert code == 0, out
    voc = root / "VOCdevkit" / "VOC2012"
    sample = voc_sample / "VOCdevkit" / "VOC2012"
    # VOC: the sample's files, byte for byte; Annotations are not unpacked
    for id_ in (sample / "ImageSets/Segmentation/val.txt").read_text().split():
        assert (voc / "JPEGImages" / f"{id_}.jpg").read_bytes() == \
            (sample / "JPEGImages" / f"{id_}.jpg").read_bytes()
    assert not (voc / "Annotations").exists()
    # SBD converted: sbd_train = SBD's train list, its labels SBD's (.mat, no 255)
    sbd_train = (voc / "ImageSets/Segmentation/sbd_train.txt").read_text().split()
    assert sbd_train == (root / "benchmark_RELEASE/dataset/train.txt").read_text().split()
    mat = loadmat(root / f"benchmark_RELEASE/dataset/cls/{sbd_train[0]}.mat",
                  squeeze_me=True, struct_as_record=False)["GTcls"].Segmentation
    assert np.array_equal(np.asarray(Image.open(voc / f"SegmentationClassSBD/{sbd_train[0]}.png")),
                          mat)
    train_aug = (voc / "ImageSets/Segmentation/train_aug.txt").read_text().split()
    assert sorted(train_aug) == sorted((sample / "ImageSets/Segmentation/train.txt")
                                       .read_text().split())  # SBD ids are all VOC train here
    # Context: the official lists come from VOC 2010's Main lists; labels.txt in place
    ctx = root / "context"
    assert (ctx / "ImageSets/train.txt").read_text().split() == \
        (context_sample / "ImageSets/train.txt").read_text().split()
    assert (ctx / "labels.txt").read_bytes() == (context_sample / "labels.txt").read_bytes()
    assert len(list((ctx / "labels-context33").glob("*.png"))) == 14
    assert "check: passed" in out
    lines = [line for line in out.splitlines()  # in a pipe: one line per 5 %, no bar
             if line.startswith("VOCtrainval_11-May-2012.tar: ") and "% of" in line]
    assert 19 <= len(lines) <= 21 and lines[-1].startswith("VOCtrainval_11-May-2012.tar: 100.0%")
    assert "\r" not in out
    assert (f"python -m zss.run +experiment=voc_17_2_2 paths.data_dir={root.resolve()} "
            "data.train_set=train_aug data.test_set=val") in out
    assert (f"python -m zss.run +experiment=context_31_2_2 paths.data_dir={ctx.resolve()}   "
            "# keeps only the images whose pixels are all in its 33 classes") in out
    # the datasets read it
    from zss.data.datasets.context import ContextSegmentation
    from zss.data.datasets.voc import VOCSegmentation
    assert len(VOCSegmentation(root, "sbd_train")) == 6
    assert len(ContextSegmentation(ctx, "val", task="context33")) == 9

    before, requests = mtimes(root), len(served.requests)
    t0 = time.monotonic()
    code, out = run(capsys, *argv)
    assert code == 0 and "check: passed" in out
    assert time.monotonic() - t0 < 10
    assert out.count("in place") == 7, out
    assert mtimes(root) == before and len(served.requests) == requests


def test_an_interrupted_download_is_resumed_with_a_range_request(archives, tmp_path, capsys):
    server = Server(archives[0], drop=("VOCtrainval_11-May-2012.tar",))
    try:
        code, out = run(capsys, "voc", "--root", tmp_path / "d", "--mirror", server.url,
                        "--manifest", manifest(tmp_path, archives[1]))
    finally:
        server.close()
    assert code == 0, out
    size = archives[1]["voc2012"]["size"]  # the server sent half; at most a chunk was lost
    (first, no_range), (again, rng) = server.requests
    assert first == again == "VOCtrainval_11-May-2012.tar" and no_range is None
    start = int(rng.removeprefix("bytes=").removesuffix("-"))
    assert size // 2 - (1 << 16) <= start <= size // 2
    assert f"resuming at {start:,} bytes" in out
    assert (tmp_path / "d/archives/VOCtrainval_11-May-2012.tar").read_bytes() == \
        (archives[0] / "VOCtrainval_11-May-2012.tar").read_bytes()


def test_a_killed_run_resumes_its_part_file(archives, served, tmp_path, capsys):
    archive = archives[0] / "VOCtrainval_11-May-2012.tar"
    part = tmp_path / "d" / "archives" / "VOCtrainval_11-May-2012.tar.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(archive.read_bytes()[:1000])
    code, out = run(capsys, "voc", "--root", tmp_path / "d", "--mirror", served.url,
                    "--manifest", manifest(tmp_path, archives[1]))
    assert code == 0, out
    assert served.requests == [("VOCtrainval_11-May-2012.tar", "bytes=1000-")]
    assert (tmp_path / "d/archives/VOCtrainval_11-May-2012.tar").read_bytes() == \
        archive.read_bytes()


def test_a_checksum_mismatch_deletes_the_download(archives, served, tmp_path, capsys):
    code, out = run(capsys, "voc", "--root", tmp_path / "d", "--mirror", served.url,
                    "--manifest", manifest(tmp_path, archives[1], voc2012={"md5": "0" * 32}))
    assert code == 2
    assert f"md5 {archives[1]['voc2012']['md5']}, not the published {'0' * 32}" in out
    assert "it was deleted" in out
    assert not list((tmp_path / "d" / "archives").iterdir())
    assert not (tmp_path / "d" / "VOCdevkit").exists()


def test_a_truncated_archive_is_refused_and_deleted(archives, tmp_path, capsys):
    folder = tmp_path / "srv"
    folder.mkdir()
    data = (archives[0] / "trainval.tar.gz").read_bytes()
    (folder / "trainval.tar.gz").write_bytes(data[: len(data) // 2])
    shutil.copy(archives[0] / "VOCtrainval_03-May-2010.tar", folder)
    server = Server(folder)  # no checksum known for it: the archive itself must fail
    try:
        code, out = run(capsys, "context", "--root", tmp_path / "d", "--mirror", server.url,
                        "--manifest", manifest(tmp_path, archives[1],
                                               context={"md5": None, "size": None}))
    finally:
        server.close()
    assert code == 2
    assert "cannot be unpacked: it is truncated or corrupt" in out and "was deleted" in out
    assert not (tmp_path / "d/archives/trainval.tar.gz").exists()
    assert not (tmp_path / "d/context/trainval").exists()


def test_a_path_traversal_member_is_refused(archives, tmp_path, capsys):
    folder = tmp_path / "srv"
    folder.mkdir()
    with tarfile.open(folder / "VOCtrainval_11-May-2012.tar", "w") as tar:
        info = tarfile.TarInfo("../../evil.txt")
        info.size = 4
        tar.addfile(info, io.BytesIO(b"evil"))
    server = Server(folder)
    try:
        code, out = run(capsys, "voc", "--root", tmp_path / "a" / "d", "--mirror", server.url,
                        "--manifest", manifest(tmp_path, archives[1], voc2012={
                            "members": [], **entry(folder / "VOCtrainval_11-May-2012.tar")}))
    finally:
        server.close()
    assert code == 2 and "would be written outside" in out, out
    assert not list(tmp_path.rglob("evil.txt"))


def test_archives_given_locally_are_used_and_never_downloaded(archives, tmp_path, capsys):
    local = tmp_path / "mine"
    shutil.copytree(archives[0], local)
    before = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in local.iterdir()}
    code, out = run(capsys, "all", "--root", tmp_path / "d", "--archives", local,
                    "--mirror", "http://127.0.0.1:9", "--manifest", manifest(tmp_path, archives[1]))
    assert code == 0 and "check: passed" in out, out
    assert "(--archives)" in out and "downloading" not in out
    assert not (tmp_path / "d" / "archives").exists()
    assert {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in local.iterdir()} == before


def test_a_local_archive_with_another_checksum_is_kept_and_named(archives, tmp_path, capsys):
    local = tmp_path / "mine"
    local.mkdir()
    (local / "VOCtrainval_11-May-2012.tar").write_bytes(b"not the archive")
    code, out = run(capsys, "voc", "--root", tmp_path / "d", "--archives", local,
                    "--manifest", manifest(tmp_path, archives[1], voc2012={"size": None}))
    assert code == 2 and "it was left in place" in out
    assert (local / "VOCtrainval_11-May-2012.tar").read_bytes() == b"not the archive"


def test_check_names_a_missing_label(archives, served, tmp_path, capsys):
    root = tmp_path / "d"
    code, _ = run(capsys, "voc", "--root", root, "--mirror", served.url,
                  "--manifest", manifest(tmp_path, archives[1]))
    assert code == 0
    val = (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").read_text().split()
    (root / f"VOCdevkit/VOC2012/SegmentationClass/{val[0]}.png").unlink()
    code, out = run(capsys, "--check", root)
    assert code == 1
    assert "MISSING FILES" in out and f"no label in {root.resolve()}" in out and val[0] in out
    assert "check: FAILED" in out and "these runs now work" not in out


def test_check_of_published_data_compares_the_published_counts(voc_sample, tmp_path, capsys):
    shutil.copytree(voc_sample, tmp_path / "d")  # a hand-made copy: the full counts apply
    code, out = run(capsys, "--check", tmp_path / "d")
    assert code == 1
    assert "VOC val            16      1449        0        0  ok, but 16 ids, not 1449" in out


def test_too_little_disk_stops_before_anything_is_fetched(served, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(prep.shutil, "disk_usage", lambda path: SimpleNamespace(free=10**9))
    code, out = run(capsys, "voc", "--root", tmp_path / "d", "--mirror", served.url)
    assert code == 2 and "1.0 GB free" in out and "needs up to 4.0 GB" in out
    assert served.requests == []


def test_the_published_manifest_comes_from_torchvision():
    from torchvision.datasets import SBDataset
    from torchvision.datasets.voc import DATASET_YEAR_DICT

    assert prep.ARCHIVES["voc2012"].md5 == DATASET_YEAR_DICT["2012"]["md5"] == \
        "6cd6e144f989b92b3379bac3b3de84fd"
    assert prep.ARCHIVES["sbd"].md5 == SBDataset.md5 == "82b4d87ceb2ed10f6038a1cba92111cb"
    assert prep.ARCHIVES["context"].md5 == "df034edb2c12aa7d33b42b20bb1796e3"
    assert json.dumps(prep.FULL_COUNTS)  # the published counts the check compares with


def test_weights_fetches_the_published_tables_where_a_run_reads_them(word_vectors_dir, tmp_path,
                                                                     capsys, monkeypatch):
    import urllib.request

    from zss.data.class_names import CLASS_LISTS
    from zss.embeddings.published import PUBLISHED, load_published_table

    by_url = {t.url: word_vectors_dir / name for name, t in PUBLISHED.items()}
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: open(by_url[url], "rb"))
    code, out = run(capsys, "weights", "--only", "published-tables", "--cache-dir", tmp_path)
    assert code == 0, out
    for name in PUBLISHED:  # byte for byte the published files, where the configs look
        assert (tmp_path / "tables" / name).read_bytes() == (word_vectors_dir / name).read_bytes()
        assert f"published-tables: {tmp_path / 'tables' / name}" in out
    monkeypatch.setattr(urllib.request, "urlopen", None)  # a run finds them without a download
    table = load_published_table("szn-original/pascal/norm_embed_arr_20.pkl",
                                 CLASS_LISTS["voc"], 20, cache_dir=tmp_path / "tables")
    assert table.shape == (21, 20)


def test_weights_without_network_names_the_item_and_a_failed_table_names_the_command(
        tmp_path, capsys, monkeypatch):
    import urllib.error
    import urllib.request

    from zss.embeddings.published import PublishedTableError, locate_published_table

    def offline(url, timeout):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    code, out = run(capsys, "weights", "--only", "published-tables", "--cache-dir", tmp_path)
    assert code == 2 and "published-tables could not be fetched" in out
    with pytest.raises(PublishedTableError, match="python -m zss.data.prepare weights --only "
                                                  "published-tables"):
        locate_published_table("zs3/pascalcontext_class_w2c.npy", None, tmp_path)
    code, out = run(capsys, "weights", "--only", "nothing")
    assert code == 2 and "'vgg16-torchvision'" in out
    code, out = run(capsys, "weights", "--list")
    assert code == 0 and "word2vec-google-news-300" in out and "on --only" in out
    for item in ("fasttext-wiki-news-subwords-300", "clip-vit-b-16-openai",
                 "sentence-all-minilm-l6-v2", "resnet101-imagenet-smp", "vgg16-torchvision"):
        assert f"\n{item} " in "\n" + out, item  # every download of a run's configs is listed


def test_word2vec_offline_names_its_prepare_command(monkeypatch):
    import gensim.downloader

    from zss.embeddings.sources import SourceUnavailableError, load_keyed_vectors

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(SourceUnavailableError, match="python -m zss.data.prepare weights --only "
                                                     "word2vec-google-news-300"):
        load_keyed_vectors("word2vec-google-news-300")
    with pytest.raises(SourceUnavailableError, match="python -m zss.data.prepare weights --only "
                                                     "fasttext-wiki-news-subwords-300"):
        load_keyed_vectors("fasttext-wiki-news-subwords-300")
