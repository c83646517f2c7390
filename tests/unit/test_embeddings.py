"""Tests of zss.embeddings on toy word vectors the tests write: sources (word2vec text and
binary, gzip, .kv, fastText, the downloader), class words, PCA + normalisation, the cache,
table files."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from sklearn.decomposition import PCA

from tests.helpers import D, mean_class_vectors, toy_kv
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
    np.testing.assert_allclose(got, mean_class_vectors(kv, VOC_CLASSES), rtol=0, atol=1e-6)
    # a class without an entry is its own single word; lower-case fallback
    np.testing.assert_allclose(class_vectors(kv, ["filler3", "Sky"]),
                               np.stack([kv["filler3"], kv["sky"]]), atol=1e-7)  # fmt: skip
    with pytest.raises(MissingWordError) as e:
        class_vectors(kv, ["cat", "zebracorn"], source="toy.txt")
    msg = str(e.value)
    assert "zebracorn" in msg and "toy.txt" in msg
    assert isinstance(e.value, KeyError) and isinstance(e.value, ValueError)


def test_missing_multi_word(tmp_path):
    kv = toy_kv()
    words = [w for w in kv.index_to_key if w != "potted"]
    small = KeyedVectors(vector_size=D)
    small.add_vectors(words, np.stack([kv[w] for w in words]))
    with pytest.raises(MissingWordError, match="'potted'.*'pottedplant'"):
        class_vectors(small, VOC_CLASSES, source="small")


# --- sources ---------------------------------------------------------------------------------


def test_binary_word2vec_round_trip(tmp_path):
    kv = toy_kv()
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
    raw = mean_class_vectors(kv, VOC_CLASSES)
    got = build_class_embeddings(VOC_CLASSES, path, dim=D)
    assert got.shape == (21, D) and got.dtype == np.float32
    np.testing.assert_allclose(got, raw / np.linalg.norm(raw, axis=1).max(), atol=1e-6)
    unit = build_class_embeddings(VOC_CLASSES, path, dim=D, normalisation="unit")
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1, atol=1e-6)


def test_build_with_pca_equals_sklearn(toy_txt):
    path, kv = toy_txt
    ref_pca = PCA(n_components=5).fit(kv.vectors.astype(np.float64))
    ref = ref_pca.transform(mean_class_vectors(kv, VOC_CLASSES).astype(np.float64))
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
    kv = toy_kv(seed=3)
    path = tmp_path / ("toy.bin" if binary else "toy.txt")
    kv.save_word2vec_format(str(path), binary=binary)
    full = KeyedVectors.load_word2vec_format(str(path), binary=binary)
    ref = PCA(n_components=7, svd_solver="full").fit(full.vectors[:100].astype(np.float64))
    ref = ref.transform(mean_class_vectors(full, VOC_CLASSES).astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1).max()
    got = build_class_embeddings(VOC_CLASSES, path, dim=7, pca_vocab=100)
    np.testing.assert_allclose(got, ref, atol=1e-5)


REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_googlenews_bin_gz_is_read_as_it_is_and_limit_cuts_the_vocabulary(tmp_path):
    words = [f"filler{i}" for i in range(300)] + sorted({w for ws in CLASS_WORDS.values()
                                                         for w in ws})
    kv = KeyedVectors(vector_size=12)
    kv.add_vectors(words, np.random.default_rng(0).normal(size=(len(words), 12))
                   .astype(np.float32))
    plain = tmp_path / "GoogleNews-vectors-negative300.bin"
    kv.save_word2vec_format(str(plain), binary=True)
    gz = tmp_path / "GoogleNews-vectors-negative300.bin.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert gz.read_bytes()[:2] == b"\x1f\x8b"  # really gzip
    built = {}
    for path in (plain, gz):
        cfg = _compose("embedding=word2vec", f"embedding.source={path}", "model.embed_dim=5",
                       "embedding.pca_vocab=300", f"paths.cache_dir={tmp_path / (path.name + '-cache')}")
        built[path.name] = instantiate(cfg.embedding, class_names=list(VOC_CLASSES))
    np.testing.assert_array_equal(built[plain.name], built[gz.name])
    assert built[gz.name].shape == (21, 5)
    # embedding.limit: only the first N words are read; a class word beyond them is missing
    cfg = _compose("embedding=word2vec", f"embedding.source={gz}", "model.embed_dim=5",
                   "embedding.limit=300", "embedding.allow_small_pca_vocab=true",
                   f"paths.cache_dir={tmp_path / 'limit'}")
    with pytest.raises(Exception, match="aeroplane|not in|missing"):
        instantiate(cfg.embedding, class_names=list(VOC_CLASSES))
