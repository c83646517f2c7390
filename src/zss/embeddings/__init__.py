"""Class embeddings: word-vector sources (gensim) and text encoders (CLIP, sentence
encoders), class name -> words, PCA, normalisation, a disk cache, and published tables
(docs/embeddings.md)."""

from zss.embeddings.build import build_class_embeddings, fit_pca, normalise
from zss.embeddings.classwords import CLASS_WORDS, MissingWordError, class_vectors
from zss.embeddings.glove import GLOVE_SOURCE, load_glove_6b_50d
from zss.embeddings.published import (
    PUBLISHED,
    PublishedTableError,
    load_published_table,
    locate_published_table,
)
from zss.embeddings.sources import (
    SOURCES,
    SourceUnavailableError,
    WordVectorSource,
    load_keyed_vectors,
    register_source,
)
from zss.embeddings.tables import load_table
from zss.embeddings.text_build import build_text_class_embeddings
from zss.embeddings.text_encoders import TEXT_ENCODERS, TextEncoder
from zss.runtime.errors import EmbeddingError

__all__ = [
    "CLASS_WORDS",
    "EmbeddingError",
    "GLOVE_SOURCE",
    "MissingWordError",
    "PUBLISHED",
    "PublishedTableError",
    "SOURCES",
    "SourceUnavailableError",
    "TEXT_ENCODERS",
    "TextEncoder",
    "build_class_embeddings",
    "build_text_class_embeddings",
    "class_vectors",
    "fit_pca",
    "load_glove_6b_50d",
    "load_keyed_vectors",
    "load_published_table",
    "load_table",
    "locate_published_table",
    "normalise",
    "register_source",
    "WordVectorSource",
]
