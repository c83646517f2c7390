"""The offline GloVe package's class-word vectors equal Stanford's text release (the shared
word-vectors folder)."""

import numpy as np
from gensim.models import KeyedVectors

from tests.helpers import voc_class_words
from zss.embeddings import GLOVE_SOURCE, load_keyed_vectors

# Stanford's text release of the class words, in the shared word-vectors folder
SHARED_GLOVE = "glove6B50d_classwords.w2v.txt"


def test_glove_equals_stanfords_text_release(no_network, glove_cache, word_vectors_dir):
    ref = KeyedVectors.load_word2vec_format(str(word_vectors_dir / SHARED_GLOVE))
    kv = load_keyed_vectors(GLOVE_SOURCE, cache_dir=glove_cache / "embeddings")
    for word in voc_class_words():
        np.testing.assert_allclose(kv[word], ref[word], atol=1e-5, err_msg=word)
