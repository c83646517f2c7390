"""Tests of zss.embeddings: sources, class words, PCA + normalisation, cache, published tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from sklearn.decomposition import PCA

from zss.data.splits import CONTEXT33_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from zss.embeddings import (
    CLASS_WORDS,
    MissingWordError,
    build_class_embeddings,
    class_vectors,
    fit_pca,
    load_keyed_vectors,
    load_table,
    normalise,
)

D = 30



def _toy_kv(seed: int = 0) -> KeyedVectors:
    """Random D-dim vectors: 200 filler words first (the 'frequent' vocabulary), then every
    word of CLASS_WORDS."""
    words = [f"filler{i}" for i in range(200)]
    words += sorted({w for ws in CLASS_WORDS.values() for w in ws})
    kv = KeyedVectors(vector_size=D)
    rng = np.random.default_rng(seed)
    kv.add_vectors(words, rng.normal(size=(len(words), D)).astype(np.float32))
    return kv


@pytest.fixture
def toy_txt(tmp_path: Path) -> tuple[Path, KeyedVectors]:
    kv = _toy_kv()
    path = tmp_path / "toy.w2v.txt"
    kv.save_word2vec_format(str(path), binary=False)
    return path, load_keyed_vectors(path)  # the reference reads back the text file's values


def _raw(kv: KeyedVectors, names) -> np.ndarray:
    return np.stack([np.mean([kv[w] for w in CLASS_WORDS[n]], axis=0) for n in names])


# --- class words -----------------------------------------------------------------------------


def test_class_words_cover_voc_and_context33():
    assert set(VOC_CLASSES) | set(CONTEXT33_CLASSES) <= set(CLASS_WORDS)
    assert set(CONTEXT60_CLASSES) <= set(CLASS_WORDS)
    assert CLASS_WORDS["pottedplant"] == ("potted", "plant")
    assert CLASS_WORDS["diningtable"] == ("dining", "table")
    assert CLASS_WORDS["tvmonitor"] == ("tv", "monitor")
    assert all(CLASS_WORDS[n] == (n,) for n in ("sky", "aeroplane", "background"))


def test_class_vectors_mean_and_missing_word(toy_txt):
    _, kv = toy_txt
    got = class_vectors(kv, VOC_CLASSES)
    assert got.shape == (21, D) and got.dtype == np.float32
    np.testing.assert_allclose(got, _raw(kv, VOC_CLASSES), rtol=0, atol=1e-6)
    # a class without an entry is its own single word; lower-case fallback
    np.testing.assert_allclose(class_vectors(kv, ["filler3", "Sky"]),
                               np.stack([kv["filler3"], kv["sky"]]), atol=1e-7)  # fmt: skip
    with pytest.raises(MissingWordError) as e:
        class_vectors(kv, ["cat", "zebracorn"], source="toy.txt")
    msg = str(e.value)
    assert "zebracorn" in msg and "toy.txt" in msg
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)


def test_missing_multi_word(tmp_path):
    kv = _toy_kv()
    words = [w for w in kv.index_to_key if w != "potted"]
    small = KeyedVectors(vector_size=D)
    small.add_vectors(words, np.stack([kv[w] for w in words]))
    with pytest.raises(MissingWordError, match="'potted'.*'pottedplant'"):
        class_vectors(small, VOC_CLASSES, source="small")


# --- sources ---------------------------------------------------------------------------------


def test_binary_word2vec_round_trip(tmp_path):
    kv = _toy_kv()
    for name in ("toy.bin", "toy.bin.gz", "toy_no_suffix"):
        path = tmp_path / name
        kv.save_word2vec_format(str(path), binary=True)
        back = load_keyed_vectors(path)
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert len(load_keyed_vectors(tmp_path / "toy.bin", limit=50)) == 50


def test_text_and_saved_kv(tmp_path, toy_txt):
    path, kv = toy_txt
    assert len(load_keyed_vectors(path, limit=10)) == 10
    kv.save(str(tmp_path / "toy.kv"))
    back = load_keyed_vectors(str(tmp_path / "toy.kv"))
    np.testing.assert_array_equal(back.vectors, kv.vectors)


def test_fasttext_bin_detected_by_magic(tmp_path):
    from gensim.models import FastText
    from gensim.models.fasttext import save_facebook_model

    model = FastText([["cat", "dog", "sky"]] * 5, vector_size=8, min_count=1, epochs=1, bucket=50)
    save_facebook_model(model, str(tmp_path / "vectors.bin"))  # no "fasttext" in the name
    kv = load_keyed_vectors(tmp_path / "vectors.bin")
    assert kv.vector_size == 8 and class_vectors(kv, ["cat", "sky"]).shape == (2, 8)


def test_missing_path_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        load_keyed_vectors(tmp_path / "nope.bin")


def test_downloader_offline_is_clear_runtime_error(monkeypatch):
    import gensim.downloader

    def offline(name, return_path=False):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(gensim.downloader, "load", offline)
    with pytest.raises(RuntimeError) as e:
        load_keyed_vectors("word2vec-google-news-300")
    msg = str(e.value)
    assert "word2vec-google-news-300" in msg and "network" in msg
    assert "GoogleNews-vectors-negative300.bin" in msg and "embedding.source=" in msg


def test_shared_glove_all_voc_classes(word_vectors_dir):
    WV = word_vectors_dir
    kv = load_keyed_vectors(WV / "glove6B50d_classwords.w2v.txt")
    assert kv.vector_size == 50
    for names in (VOC_CLASSES, CONTEXT33_CLASSES, CONTEXT60_CLASSES):
        vec = class_vectors(kv, names)
        assert vec.shape == (len(names), 50) and np.isfinite(vec).all()
        assert (np.linalg.norm(vec, axis=1) > 0).all()


# --- PCA, normalisation, build ---------------------------------------------------------------


def test_normalise():
    x = np.array([[3.0, 4.0], [0.0, 1.0]])
    np.testing.assert_allclose(normalise(x, "max_norm"), [[0.6, 0.8], [0.0, 0.2]], atol=1e-7)
    np.testing.assert_allclose(normalise(x, "unit"), [[0.6, 0.8], [0.0, 1.0]], atol=1e-7)
    assert normalise(x, "unit").dtype == np.float32
    with pytest.raises(ValueError, match="l2"):
        normalise(x, "l2")
    with pytest.raises(ValueError):
        normalise(np.zeros((2, 2)), "unit")


def test_build_without_pca_equals_numpy(toy_txt):
    path, kv = toy_txt
    raw = _raw(kv, VOC_CLASSES)
    got = build_class_embeddings(VOC_CLASSES, path, dim=D)
    assert got.shape == (21, D) and got.dtype == np.float32
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1).max(), atol=1e-6)
    unit = build_class_embeddings(VOC_CLASSES, path, dim=D, normalisation="unit")
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-6)


def test_build_with_pca_equals_sklearn(toy_txt):
    path, kv = toy_txt
    ref_pca = PCA(n_components=5).fit(kv.vectors.astype(np.float64))
    ref = ref_pca.transform(_raw(kv, VOC_CLASSES).astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1).max()
    got = build_class_embeddings(VOC_CLASSES, path, dim=5, pca_vocab=len(kv))
    assert got.shape == (21, 5)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert abs(np.linalg.norm(got, axis=1).max() - 1) < 1e-6
    # the PCA uses only the first pca_vocab (most frequent) words
    pca = fit_pca(kv, 5, vocab_size=100)
    np.testing.assert_allclose(pca.mean_, kv.vectors[:100].mean(0), atol=1e-6)


def test_build_dimension_errors(toy_txt):
    path, _ = toy_txt
    with pytest.raises(ValueError, match=r"31.*30"):
        build_class_embeddings(VOC_CLASSES, path, dim=31)
    with pytest.raises(MissingWordError, match="'zebracorn'.*'unicorn'"):
        build_class_embeddings(["cat", "unicorn"], path, dim=5,
                               words={"unicorn": ("zebracorn",)})  # fmt: skip


def test_build_refuses_a_pca_vocabulary_far_below_pca_vocab(word_vectors_dir, toy_txt):
    # the published 69-word file holds only the class words: a PCA fitted on it would be
    # fitted on the class vectors, the unseen ones included (docs/embeddings.md)
    small = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    with pytest.raises(ValueError, match=r"only 69 words.*allow_small_pca_vocab=true"):
        build_class_embeddings(VOC_CLASSES, small, dim=20)
    allowed = build_class_embeddings(VOC_CLASSES, small, dim=20, allow_small_pca_vocab=True)
    assert allowed.shape == (21, 20)
    path, kv = toy_txt  # ~250 words: enough for pca_vocab=1000 (>= 10 %), not for 10,000
    assert build_class_embeddings(VOC_CLASSES, path, dim=5, pca_vocab=1000).shape == (21, 5)
    with pytest.raises(ValueError, match=rf"only {len(kv)} words"):
        build_class_embeddings(VOC_CLASSES, path, dim=5, pca_vocab=10_000)
    # no PCA (j = source dimension): nothing is fitted, nothing to refuse
    assert build_class_embeddings(VOC_CLASSES, small, dim=50).shape == (21, 50)


def test_build_cache(tmp_path, toy_txt, monkeypatch):
    path, kv = toy_txt
    cache = tmp_path / "cache"
    kwargs = dict(dim=5, pca_vocab=100, cache_dir=cache)
    first = build_class_embeddings(VOC_CLASSES, path, **kwargs)
    assert len(list(cache.glob("*.npy"))) == 1 and not list(cache.glob("*.tmp"))
    # every input of the recipe is in the key: each of these is computed, not read back
    others = [(VOC_CLASSES, dict(dim=4)), (VOC_CLASSES, dict(normalisation="unit")),
              (VOC_CLASSES, dict(normalisation=None)),
              (VOC_CLASSES, dict(words={**CLASS_WORDS, "cat": ("dog",)})),
              (VOC_CLASSES, dict(pca_vocab=120)), (VOC_CLASSES, dict(limit=len(kv))),
              (list(reversed(VOC_CLASSES)), {})]
    computed = [build_class_embeddings(names, path, **{**kwargs, **other})
                for names, other in others]
    assert len(list(cache.glob("*.npy"))) == 1 + len(others)
    np.testing.assert_array_equal(computed[-1], first[::-1])  # reordered rows, same vectors

    def no_load(*args, **kw):
        raise AssertionError("the word vectors were loaded despite the cache")

    monkeypatch.setattr("zss.embeddings.build.load_keyed_vectors", no_load)
    np.testing.assert_array_equal(build_class_embeddings(VOC_CLASSES, path, **kwargs), first)
    for (names, other), value in zip(others, computed, strict=True):  # each its own file
        np.testing.assert_array_equal(
            build_class_embeddings(names, path, **{**kwargs, **other}), value)
    with pytest.raises(AssertionError, match="despite the cache"):  # a key never built
        build_class_embeddings(VOC_CLASSES, path, **{**kwargs, "pca_vocab": 150})
    path.write_text(path.read_text() + "\n")  # the source file changed: its key changes
    with pytest.raises(AssertionError, match="despite the cache"):
        build_class_embeddings(VOC_CLASSES, path, **kwargs)


# --- published tables ------------------------------------------------------------------------


def test_load_table_szn_original(word_vectors_dir):
    WV = word_vectors_dir
    emb = load_table(WV / "szn-original/pascal/norm_embed_arr_20.pkl", VOC_CLASSES)
    assert emb.shape == (21, 20) and emb.dtype == np.float32
    assert abs(np.linalg.norm(emb, axis=1).max() - 1) < 1e-6
    # rows in VOC order: nearest neighbours (cosine) that hold in the published j = 300 table
    # (pairs of mutual neighbours, so a shifted or reversed row order breaks them)
    full = load_table(WV / "szn-original/pascal/norm_embed_arr_300.pkl", VOC_CLASSES)
    unit = full / np.linalg.norm(full, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    nearest = {VOC_CLASSES[i]: VOC_CLASSES[j] for i, j in enumerate(cos.argmax(1))}
    for a, b in (("sheep", "cow"), ("train", "bus"), ("cat", "dog"), ("bicycle", "motorbike"),
                 ("sofa", "chair")):
        assert nearest[a] == b and nearest[b] == a, (a, b, nearest[a], nearest[b])
    with pytest.raises(ValueError, match=r"norm_embed_arr_20\.pkl.*21 rows.*33.*row_names"):
        load_table(WV / "szn-original/pascal/norm_embed_arr_20.pkl", CONTEXT33_CLASSES)
    ctx = load_table(WV / "szn-original/context/norm_embed_arr_5.pkl", CONTEXT33_CLASSES,
                     row_names=WV.parent / "pascal-context-sample/classes-33.txt")  # fmt: skip
    assert ctx.shape == (33, 5)


def test_load_table_reorders_by_name(word_vectors_dir):
    WV = word_vectors_dir
    table = WV / "spnet/word2vec.pkl"
    emb = load_table(table, VOC_CLASSES, row_names=WV / "spnet/labels.txt")
    assert emb.shape == (21, 300) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    rev = list(reversed(VOC_CLASSES))
    emb_rev = load_table(table, rev, row_names=WV / "spnet/labels.txt")
    np.testing.assert_array_equal(emb_rev, emb[::-1])
    # a name list with the alias works the same, and normalisation applies after
    names = ["__background__"] + list(VOC_CLASSES[1:])
    np.testing.assert_array_equal(load_table(table, VOC_CLASSES, row_names=names), emb)
    mx = load_table(table, VOC_CLASSES, row_names=names, normalisation="max_norm")
    assert abs(np.linalg.norm(mx, axis=1).max() - 1) < 1e-6
    with pytest.raises(ValueError, match=r"'sky'.*word2vec\.pkl"):
        load_table(table, ["cat", "sky"], row_names=names)


def test_load_table_npy_and_labels_formats(tmp_path):
    arr = np.arange(12, dtype=np.float64).reshape(3, 4)
    np.save(tmp_path / "t.npy", arr)
    for text in ("0: b\n1: a\n2: c\n", "0\tb\n1\ta\n2\tc", "b\na\nc\n"):
        (tmp_path / "labels.txt").write_text(text)
        got = load_table(tmp_path / "t.npy", ["a", "b", "c"], row_names=tmp_path / "labels.txt")
        np.testing.assert_array_equal(got, arr[[1, 0, 2]])
    with pytest.raises(ValueError, match=r"t\.npy.*3 rows.*2 classes"):
        load_table(tmp_path / "t.npy", ["a", "b"])


@pytest.mark.parametrize("binary", [True, False])
def test_streamed_build_equals_gensim_and_sklearn(tmp_path, binary):
    """A word2vec file is streamed (class words found past the PCA vocabulary, PCA fitted
    block by block); the table equals gensim's full load + sklearn's PCA."""
    kv = _toy_kv(seed=3)
    path = tmp_path / ("toy.bin" if binary else "toy.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    full = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    ref = PCA(n_components=7, svd_solver="full").fit(full.vectors[:100].astype(np.float64))
    ref = ref.transform(_raw(full, VOC_CLASSES).astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1).max()
    got = build_class_embeddings(VOC_CLASSES, path, dim=7, pca_vocab=100)
    np.testing.assert_allclose(got, ref, atol=1e-5)


# --- published tables: local folder, cache, download, hash -----------------------------------


def test_published_tables_match_the_shared_files(word_vectors_dir):
    from zss.embeddings import PUBLISHED, locate_published_table

    for name in PUBLISHED:  # every pinned sha256 is the one of the file we read
        assert locate_published_table(name, word_vectors_dir=word_vectors_dir).is_file()
    assert {n.split("/")[1] for n in PUBLISHED if n.startswith("szn-original")} == {
        "pascal", "context"}


def _file_url_table(monkeypatch, source: Path, sha: str):
    from zss.embeddings import PUBLISHED, published

    entry = published.PublishedTable("szn-original/pascal/norm_embed_arr_5.pkl",
                                     source.resolve().as_uri(), sha, VOC_CLASSES, "test")
    monkeypatch.setitem(PUBLISHED, entry.name, entry)
    return entry


def test_published_table_download_checks_the_hash(word_vectors_dir, tmp_path, monkeypatch):
    from zss.embeddings import PUBLISHED, PublishedTableError, load_published_table

    name = "szn-original/pascal/norm_embed_arr_5.pkl"
    src = word_vectors_dir / name
    good = PUBLISHED[name].sha256
    # a file:// URL through the real urllib fetch: downloaded into the cache, then reused
    _file_url_table(monkeypatch, src, good)
    cache = tmp_path / "cache"
    emb = load_published_table(name, VOC_CLASSES, dim=5, cache_dir=cache)
    assert (cache / name).is_file() and emb.shape == (21, 5)
    np.testing.assert_array_equal(emb, load_table(src, VOC_CLASSES))
    # a download that does not match the sha256 is refused and not kept
    _file_url_table(monkeypatch, src, "0" * 64)
    other = tmp_path / "other"
    with pytest.raises(PublishedTableError, match="not the published") as info:
        load_published_table(name, VOC_CLASSES, cache_dir=other)
    assert "deleted" in str(info.value) and not list(other.rglob("*.pkl*"))
    # offline: the message names the URL and where to put the file
    _file_url_table(monkeypatch, src, good)

    def offline(url, dest):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(PublishedTableError) as info:
        load_published_table(name, VOC_CLASSES, cache_dir=other, fetch=offline)
    msg = str(info.value)
    assert src.resolve().as_uri() in msg and str(other / name) in msg
    assert "name resolution" in msg and not list(other.rglob("*.pkl*"))


def test_published_table_local_folder_wins_and_is_checked(word_vectors_dir, tmp_path):
    from zss.embeddings import PublishedTableError, load_published_table

    name = "szn-original/context/norm_embed_arr_20.pkl"

    def no_download(url, dest):
        raise AssertionError("downloaded although the local folder holds the table")

    emb = load_published_table(name, CONTEXT33_CLASSES, dim=20, cache_dir=tmp_path,
                               word_vectors_dir=word_vectors_dir, fetch=no_download)
    assert emb.shape == (33, 20)
    bad = tmp_path / "wv" / name
    bad.parent.mkdir(parents=True)
    bad.write_bytes((word_vectors_dir / name).read_bytes() + b"\0")
    with pytest.raises(PublishedTableError, match="is not the published"):
        load_published_table(name, CONTEXT33_CLASSES, word_vectors_dir=tmp_path / "wv")
    with pytest.raises(PublishedTableError, match=r"norm_embed_arr_10\.pkl"):
        load_published_table("szn-original/context/norm_embed_arr_7.pkl", CONTEXT33_CLASSES)


def test_zs3_context_table_is_reordered_and_normalised(word_vectors_dir):
    from zss.data.splits import CONTEXT59_CLASSES
    from zss.embeddings import PublishedTableError, load_published_table

    raw = np.load(word_vectors_dir / "zs3/pascalcontext_class_w2c.npy")  # bg + classes-59
    emb = load_published_table("zs3/pascalcontext_class_w2c.npy", CONTEXT59_CLASSES, dim=300,
                               normalisation="max_norm", word_vectors_dir=word_vectors_dir)
    expected = raw[1:] / np.linalg.norm(raw[1:], axis=1).max()  # no background in context59
    np.testing.assert_allclose(emb, expected, rtol=1e-6)
    with pytest.raises(PublishedTableError, match="model.embed_dim=300"):
        load_published_table("zs3/pascalcontext_class_w2c.npy", CONTEXT59_CLASSES, dim=20,
                             word_vectors_dir=word_vectors_dir)


def test_the_embedding_package_loads_without_torch():
    """Building class vectors needs gensim and numpy only: ``zss.embeddings`` (and the class
    lists it reads, ``zss.data.class_names``) must not pull in torch (~700 MiB of RSS), which
    would void bench_embeddings.py's memory comparison and load it for nothing."""
    import subprocess
    import sys

    code = ("import sys, zss.embeddings, zss.data.class_names; "
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"
