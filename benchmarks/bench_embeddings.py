"""Benchmark 4: class-embedding build vs gensim's plain full load (time and peak RSS).

A word2vec binary of 300,000 words x 300 dims (random vectors, the C tool's layout: a header
line, then ``word<space><300 float32>\\n`` per word, ~360 MB) is generated once under
``$ZSS_BENCH_DIR`` (default ``/tmp/zss-bench``). The words of every VOC and 33-class Context
class (``CLASS_WORDS``) are spread evenly over the vocabulary, so most of them lie beyond the
first ``pca_vocab`` = 100,000 words, as rarer words do in GoogleNews.

Each measurement runs in a fresh subprocess and reports its own peak RSS (``VmHWM``, reset at
the start of the measurement; checked against a child that allocates 500 MiB), run
alternating, ``--reps`` times:

- ``gensim full load``: ``KeyedVectors.load_word2vec_format(path, binary=True)``;
- ``zss build``: ``build_class_embeddings(VOC_CLASSES, path, dim=20, pca_vocab=100_000)``
  (class vectors + PCA vocabulary + max-norm), no cache;
- ``zss cached build``: the same call when its cache file exists.

Times are of the call itself (imports excluded); the RSS figures are the whole process's peak
and, after ``+``, the part above the RSS reached by the imports. Goals: zss's peak RSS <= 0.5x
gensim's; cached build < 0.1 s. The zss result is checked against a reference built the plain
way (gensim full load, sklearn ``PCA(svd_solver="full")`` on the first 100,000 words, max-norm).

    .venv/bin/python benchmarks/bench_embeddings.py [--reps 3] [--words 300000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import Seconds, alternate, header, median, ratio_line, reset_peak_rss, status_mib

DIM, PCA_VOCAB, J = 300, 100_000, 20
WORK = Path(os.environ.get("ZSS_BENCH_DIR", "/tmp/zss-bench"))


def _voc_classes() -> tuple[str, ...]:
    """The 21 VOC class names without importing zss.data (which imports torch, ~600 MiB of
    RSS that would swamp the measurement): CLASS_WORDS lists them first, in label order."""
    from zss.embeddings import CLASS_WORDS

    return tuple(CLASS_WORDS)[:21]


def _class_words() -> list[str]:
    from zss.embeddings import CLASS_WORDS

    return sorted({w for ws in CLASS_WORDS.values() for w in ws})


def generate(path: Path, n_words: int, seed: int = 0) -> None:
    """Write the word2vec binary (deterministic for a seed); class words at evenly spaced
    ranks."""
    class_words = _class_words()
    ranks = np.linspace(10, n_words - 10, len(class_words)).astype(int)
    words = [f"w{i:07d}" for i in range(n_words)]
    for rank, word in zip(ranks, class_words, strict=True):
        words[rank] = word
    rng = np.random.default_rng(seed)
    tmp = path.with_suffix(".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(tmp, "wb") as f:
        f.write(f"{n_words} {DIM}\n".encode())
        for start in range(0, n_words, 50_000):
            block = words[start:start + 50_000]
            vecs = (rng.standard_normal((len(block), DIM), dtype=np.float32) * 0.1
                    + np.float32(0.01)).astype("<f4")
            f.write(b"".join(w.encode() + b" " + v.tobytes() + b"\n"
                             for w, v in zip(block, vecs, strict=True)))
    os.replace(tmp, path)
    print(f"generated {path} ({path.stat().st_size / 2**20:.0f} MiB, {n_words} words; class "
          f"words at ranks {ranks[0]}..{ranks[-1]}, {int((ranks >= PCA_VOCAB).sum())} of "
          f"{len(ranks)} beyond {PCA_VOCAB})", flush=True)


# ---- child processes --------------------------------------------------------------------
def child(mode: str, path: str, out: str | None) -> None:
    """Run one measurement in this (fresh) process; print one JSON line. The gensim child
    imports gensim only; the zss ones import zss.embeddings (gensim + zss, no torch)."""
    if mode == "gensim":
        from gensim.models import KeyedVectors

        base = reset_peak_rss()
        t0 = time.perf_counter()
        kv = KeyedVectors.load_word2vec_format(path, binary=True)
        seconds = time.perf_counter() - t0
        assert len(kv) > 0
    elif mode in ("zss", "zss_cached"):
        from zss.embeddings import build_class_embeddings

        voc = _voc_classes()
        base = reset_peak_rss()
        cache = str(WORK / "cache") if mode == "zss_cached" else None
        t0 = time.perf_counter()
        emb = build_class_embeddings(voc, path, dim=J, pca_vocab=PCA_VOCAB,
                                     cache_dir=cache)
        seconds = time.perf_counter() - t0
        if out:
            np.save(out, emb)
    elif mode == "reference":
        from gensim.models import KeyedVectors
        from sklearn.decomposition import PCA

        from zss.embeddings import class_vectors

        voc = _voc_classes()
        base = reset_peak_rss()
        t0 = time.perf_counter()
        kv = KeyedVectors.load_word2vec_format(path, binary=True)
        pca = PCA(n_components=J, svd_solver="full").fit(
            np.asarray(kv.vectors[:PCA_VOCAB], dtype=np.float64))
        emb = pca.transform(class_vectors(kv, voc).astype(np.float64))
        emb = (emb / np.linalg.norm(emb, axis=1).max()).astype(np.float32)
        seconds = time.perf_counter() - t0
        np.save(out, emb)
    elif mode == "calibrate":  # the measurement itself: a known 500 MiB must show as such
        base = reset_peak_rss()
        t0 = time.perf_counter()
        block = np.ones(500 * 2**20, dtype=np.uint8)  # touched: resident
        seconds = time.perf_counter() - t0
        del block
    else:
        raise SystemExit(f"unknown child mode {mode!r}")
    if "torch" in sys.modules:  # ~700 MiB that neither side needs: the comparison is void
        zss_modules = sorted(m for m in sys.modules if m.startswith("zss"))
        raise SystemExit(f"the {mode} child imported torch (zss modules loaded: {zss_modules}); "
                         "zss.embeddings and benchmarks/_common.py must not import it")
    print(json.dumps({"seconds": seconds, "peak_mb": status_mib("VmHWM"), "base_mb": base}))


def run_child(mode: str, path: Path, out: Path | None = None) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(path)]
    if out is not None:
        cmd += ["--out", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# ---- main -------------------------------------------------------------------------------
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--words", type=int, default=300_000)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--path", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.path, args.out)
        return

    header(f"4. class-embedding build ({args.words} x {DIM} word2vec binary, j={J}, "
           f"pca_vocab={PCA_VOCAB})")
    from zss.data.splits import VOC_CLASSES  # torch is fine here: only the children are measured

    assert _voc_classes() == VOC_CLASSES, "CLASS_WORDS no longer lists the VOC classes first"
    path = WORK / f"w2v_{args.words}x{DIM}.bin"
    if not path.is_file():
        generate(path, args.words)
    WORK.mkdir(parents=True, exist_ok=True)
    for stale in (WORK / "cache").glob("*.npy"):
        stale.unlink()
    run_child("zss_cached", path)  # fills the cache (untimed)
    cal = run_child("calibrate", path)
    cal_mb = cal["peak_mb"] - cal["base_mb"]
    print(f"  check of the peak-RSS measurement: a child allocating 500 MiB reports "
          f"+{cal_mb:.1f} MiB")
    if not 450 <= cal_mb <= 550:
        raise SystemExit("the per-child peak-RSS measurement is wrong on this machine "
                         f"(+{cal_mb:.1f} MiB for 500 MiB): no memory figure is reported")

    results: dict[str, list[dict]] = {"gensim full load": [], "zss build": [],
                                      "zss cached build": []}
    modes = {"gensim full load": "gensim", "zss build": "zss", "zss cached build": "zss_cached"}

    def case(name: str):
        def run() -> Seconds:
            out = WORK / "zss_out.npy" if name == "zss build" else None
            r = run_child(modes[name], path, out)
            results[name].append(r)
            return Seconds(r["seconds"])
        return run

    alternate({name: case(name) for name in results}, reps=args.reps, warmup=0)
    width = max(map(len, results))
    for name, rs in results.items():
        secs = median([r["seconds"] for r in rs])
        peak = median([r["peak_mb"] for r in rs])
        above = median([r["peak_mb"] - r["base_mb"] for r in rs])
        print(f"  {name:<{width}}  median {secs:8.3f} s   peak RSS {peak:7.1f} MiB "
              f"(+{above:.1f} above imports)  n={len(rs)}")
    peak = {n: median([r["peak_mb"] for r in rs]) for n, rs in results.items()}
    above = {n: median([r["peak_mb"] - r["base_mb"] for r in rs]) for n, rs in results.items()}
    secs = {n: median([r["seconds"] for r in rs]) for n, rs in results.items()}
    ratio_line("embeddings peak RSS zss build / gensim full load",
               peak["zss build"] / peak["gensim full load"], 0.5)
    ratio_line("embeddings peak RSS above imports zss build / gensim full load",
               above["zss build"] / above["gensim full load"], 0.5)
    ratio_line("embeddings time zss build / gensim full load",
               secs["zss build"] / secs["gensim full load"], None)
    ratio_line("embeddings cached build seconds (absolute)", secs["zss cached build"], 0.1)

    ref = run_child("reference", path, WORK / "reference.npy")
    got, want = np.load(WORK / "zss_out.npy"), np.load(WORK / "reference.npy")
    err = float(np.abs(got - want).max())
    print(f"check: zss build vs gensim + sklearn PCA(full) reference: max |diff| = {err:.2e} "
          f"(reference took {ref['seconds']:.1f} s, peak RSS {ref['peak_mb']:.0f} MiB)")
    if not err < 1e-5:
        raise SystemExit("zss build differs from the reference")


if __name__ == "__main__":
    main()
