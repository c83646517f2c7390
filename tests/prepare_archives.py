"""Small archives with the real inner layouts of the published ones (VOC 2012 / 2010 tars,
SBD's benchmark.tgz with its cls/*.mat, PASCAL-Context's trainval.tar.gz), built from the
shared samples, a manifest of their checksums for ``--manifest``, and a local HTTP server
that honours Range requests and can drop a transfer midway (tests of
``python -m zss.data.prepare``)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

SBD_TRAIN, SBD_VAL = 6, 4  # the first SBD_TRAIN + SBD_VAL ids of the sample's train list


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _ids(path: Path) -> list[str]:
    return path.read_text().split()


def build_archives(voc_sample: Path, context_sample: Path, out: Path) -> dict[str, dict]:
    """Write the four archives into ``out``; returns the manifest entries (filename, md5, size)
    by archive name (what ``--manifest`` reads)."""
    out.mkdir(parents=True, exist_ok=True)
    voc = voc_sample / "VOCdevkit" / "VOC2012"
    train, val = _ids(voc / "ImageSets/Segmentation/train.txt"), _ids(
        voc / "ImageSets/Segmentation/val.txt")
    with tarfile.open(out / "VOCtrainval_11-May-2012.tar", "w") as tar:
        for id_ in train + val:
            _add(tar, f"VOCdevkit/VOC2012/JPEGImages/{id_}.jpg",
                 (voc / "JPEGImages" / f"{id_}.jpg").read_bytes())
            _add(tar, f"VOCdevkit/VOC2012/SegmentationClass/{id_}.png",
                 (voc / "SegmentationClass" / f"{id_}.png").read_bytes())
        for name, ids in (("train", train), ("val", val), ("trainval", train + val)):
            _add(tar, f"VOCdevkit/VOC2012/ImageSets/Segmentation/{name}.txt",
                 "".join(f"{i}\n" for i in ids).encode())
        _add(tar, "VOCdevkit/VOC2012/Annotations/x.xml", b"<annotation/>")  # not unpacked
    sbd = train[:SBD_TRAIN + SBD_VAL]
    with tarfile.open(out / "benchmark.tgz", "w:gz") as tar:
        for id_ in sbd:  # SBD's GTcls struct; SBD has no 255 band
            label = np.asarray(Image.open(voc / "SegmentationClass" / f"{id_}.png")).copy()
            label[label == 255] = 0
            buf = io.BytesIO()
            savemat(buf, {"GTcls": {"Segmentation": label, "Boundaries": np.zeros(1),
                                    "CategoriesPresent": np.unique(label)}})
            _add(tar, f"benchmark_RELEASE/dataset/cls/{id_}.mat", buf.getvalue())
        _add(tar, "benchmark_RELEASE/dataset/train.txt",
             "".join(f"{i}\n" for i in sbd[:SBD_TRAIN]).encode())
        _add(tar, "benchmark_RELEASE/dataset/val.txt",
             "".join(f"{i}\n" for i in sbd[SBD_TRAIN:]).encode())
    ctx_train = _ids(context_sample / "ImageSets/train.txt")
    ctx_val = _ids(context_sample / "ImageSets/val.txt")
    jpegs = context_sample / "VOCdevkit/VOC2010/JPEGImages"
    with tarfile.open(out / "VOCtrainval_03-May-2010.tar", "w") as tar:
        for id_ in ctx_train + ctx_val:
            _add(tar, f"VOCdevkit/VOC2010/JPEGImages/{id_}.jpg",
                 (jpegs / f"{id_}.jpg").read_bytes())
        for name, ids in (("train", ctx_train), ("val", ctx_val)):
            _add(tar, f"VOCdevkit/VOC2010/ImageSets/Main/{name}.txt",
                 "".join(f"{i}\n" for i in ids).encode())
    with tarfile.open(out / "trainval.tar.gz", "w:gz") as tar:
        for id_ in ctx_train + ctx_val:
            _add(tar, f"trainval/{id_}.mat",
                 (context_sample / "trainval" / f"{id_}.mat").read_bytes())
        _add(tar, "labels.txt", (context_sample / "labels.txt").read_bytes())
    names = {"voc2012": "VOCtrainval_11-May-2012.tar", "sbd": "benchmark.tgz",
             "voc2010": "VOCtrainval_03-May-2010.tar", "context": "trainval.tar.gz"}
    return {k: entry(out / f) for k, f in names.items()}


def entry(path: Path) -> dict:
    """A manifest entry for ``path``: its md5 and size."""
    data = path.read_bytes()
    return {"md5": hashlib.md5(data).hexdigest(), "size": len(data)}


def write_manifest(path: Path, entries: dict[str, dict]) -> Path:
    path.write_text(json.dumps(entries))
    return path


class Server:
    """An HTTP server on 127.0.0.1 serving ``folder``: ``Range: bytes=N-`` answered with 206;
    a file named in ``drop`` is cut after half its bytes the first time it is sent (the
    connection closes with the Content-Length unmet). ``requests`` records (path, Range)."""

    def __init__(self, folder: Path, drop: tuple[str, ...] = ()) -> None:
        self.folder, self.drop, self.requests = folder, set(drop), []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                path = server.folder / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.split("=")[1].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if name in server.drop:
                    server.drop.discard(name)
                    body = body[: len(body) // 2]
                    self.close_connection = True
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
