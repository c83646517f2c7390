"""Class embeddings from word vectors: class vectors -> PCA to j -> normalise (paper §3.2 of
Doshi, "Zero-Shot Semantic Segmentation", 2018; docs/embeddings.md), with a disk cache."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from zss.embeddings.classwords import CLASS_WORDS, MissingWordError, class_vectors, lookup_words
from zss.embeddings.glove import GLOVE_SOURCE
from zss.embeddings.glove import source_stamp as glove_stamp
from zss.embeddings.sources import load_keyed_vectors, reading, word2vec_file
from zss.embeddings.stream import iter_word2vec
from zss.runtime.errors import EmbeddingDimensionError, EmbeddingError

log = logging.getLogger(__name__)

NORMALISATIONS = ("max_norm", "unit")
SMALL_PCA_VOCAB = 0.1
"""A PCA vocabulary below this fraction of ``pca_vocab`` is refused (unless allowed)."""
_CACHE_VERSION = 1  # bump when the recipe changes, so old cache files are not reused


@dataclass(frozen=True)
class PCAProjection:
    """A PCA fitted by :func:`fit_pca`: ``transform(x) = (x - mean_) @ components_.T``.

    Attributes:
        mean_: float64 (D,), the mean of the fitted word vectors.
        components_: float64 (dim, D), the principal axes (unit rows) by decreasing variance,
            each row's largest-magnitude entry positive (scikit-learn's ``svd_flip`` rule for
            ``PCA``), so they equal ``sklearn.decomposition.PCA(svd_solver="full")``'s up to
            rounding.
        explained_variance_: float64 (dim,), the variance along each axis (ddof = 1).
        n_samples_: number of words fitted on.
    """

    mean_: np.ndarray
    components_: np.ndarray
    explained_variance_: np.ndarray
    n_samples_: int

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Project (N, D) vectors: float64 (N, dim)."""
        return (np.asarray(x, dtype=np.float64) - self.mean_) @ self.components_.T


def fit_pca(vectors: KeyedVectors | Iterable[np.ndarray], dim: int,
            vocab_size: int) -> PCAProjection:
    """Fit a PCA to ``dim`` components on the first ``vocab_size`` word vectors.

    The recipe: the PCA is fitted on a large vocabulary (word2vec files list the most frequent
    words first), never on the class vectors alone — 21 vectors cannot give 50 components,
    and fitting on the test classes would use their vectors in training.

    The fit never holds the vocabulary in float64: it sums the vectors and their outer
    products block by block in float64 (shifted by the first block's mean, against
    cancellation), then takes the eigenvectors of the covariance matrix (LAPACK ``eigh``,
    deterministic). Memory is O(D² + block); an SVD of the (vocab_size, D) matrix, as
    ``sklearn``'s ``PCA(svd_solver="full")`` computes, needs several float64 copies of it
    (about 1 GB and 30 s on 2 cores for 100,000 × 300). Same axes up to rounding.

    Args:
        vectors: word vectors in vocabulary order: ``KeyedVectors`` (V, D), or an iterable of
            (n, D) blocks of them (e.g. streamed from a file, :mod:`zss.embeddings.stream`).
        dim: number of components, 1 <= dim <= min(D, number of words used).
        vocab_size: words used, the first ``min(vocab_size, V)``.

    Returns:
        a :class:`PCAProjection`; ``.transform(x)`` maps (N, D) to float64 (N, dim).

    Raises:
        ValueError: ``dim`` < 1, ``dim`` > D, or ``dim`` > the number of words used.
    """
    vocab_size = int(vocab_size)
    if isinstance(vectors, KeyedVectors):
        kv = vectors
        n, d = min(vocab_size, len(kv)), kv.vector_size
        if not 1 <= dim <= d:
            raise ValueError(f"PCA dimension {dim} must be in [1, {d}] (the word-vector "
                             "dimension)")
        if dim > n:
            raise ValueError(f"PCA dimension {dim} needs at least {dim} words; vocab_size="
                             f"{vocab_size} and the model has {len(kv)} words")  # fmt: skip
        vectors = (kv.vectors[i:i + 8192] for i in range(0, n, 8192))
    n, shift, total, outer = 0, None, None, None
    for block in vectors:
        x = np.asarray(block, dtype=np.float64)[:vocab_size - n]
        if len(x) == 0:
            break
        if shift is None:
            if not 1 <= dim <= x.shape[1]:
                raise ValueError(f"PCA dimension {dim} must be in [1, {x.shape[1]}] (the "
                                 "word-vector dimension)")  # fmt: skip
            shift = x.mean(axis=0)
            total, outer = np.zeros_like(shift), np.zeros((x.shape[1],) * 2)
        x = x - shift
        total += x.sum(axis=0)
        outer += x.T @ x
        n += len(x)
        if n >= vocab_size:
            break
    if dim > n:
        raise ValueError(f"PCA dimension {dim} needs at least {dim} words; vocab_size="
                         f"{vocab_size} and the source has {n} words")  # fmt: skip
    mean = total / n
    cov = (outer - n * np.outer(mean, mean)) / max(n - 1, 1)
    variance, axes = np.linalg.eigh(cov)  # ascending
    components = axes[:, ::-1][:, :dim].T.copy()
    biggest = np.abs(components).argmax(axis=1)
    components *= np.sign(components[np.arange(dim), biggest])[:, None]
    return PCAProjection(shift + mean, components, variance[::-1][:dim].copy(), n)


def normalise(emb: np.ndarray, mode: str) -> np.ndarray:
    """Normalise class embeddings (rows).

    Modes:
        ``"max_norm"``: divide every row by the largest row norm (the original SZN code's
            recipe, as in its ``norm_embed_arr_*.pkl`` tables): the longest row has norm 1,
            every row norm lies in (0, 1], relative lengths are kept.
        ``"unit"``: every row divided by its own norm (unit length, as SPNet's tables).

    Args:
        emb: (C, j) array.
        mode: ``"max_norm"`` or ``"unit"``.

    Returns:
        float32 (C, j).

    Raises:
        ValueError: unknown mode, an array that is not 2-D, or a zero row (``"unit"``) / all
            rows zero (``"max_norm"``).
    """
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; expected one of {NORMALISATIONS}")
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"class embeddings must be 2-D (C, j), got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1)
    if mode == "max_norm":
        if x.shape[0] == 0 or norms.max() == 0:
            raise ValueError("max_norm normalisation of an empty or all-zero embedding table")
        return (x / norms.max()).astype(np.float32)
    if np.any(norms == 0):
        raise ValueError(f"unit normalisation of zero rows {np.flatnonzero(norms == 0).tolist()}")
    return (x / norms[:, None]).astype(np.float32)


def _cache_key(source: str, **params: object) -> dict:
    path = Path(source).expanduser()
    if path.is_file():
        st = path.stat()
        src = {"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    elif source == GLOVE_SOURCE:  # the package's version and files, not only its name
        src = {"name": source, **glove_stamp()}
    else:
        src = {"name": source}
    return {"version": _CACHE_VERSION, "source": src, **params}


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _streamed(path: Path, binary: bool, limit: int) -> Iterator[np.ndarray]:
    """The vector blocks of a word2vec file; a file that turns out cut or malformed on this
    second pass is an :class:`~zss.runtime.errors.EmbeddingError` naming it."""
    with reading(path):
        for _, block in iter_word2vec(path, binary, limit=limit):
            yield block


def build_class_embeddings(
    class_names: Sequence[str],
    source: str | os.PathLike,
    dim: int,
    normalisation: str | None = "max_norm",
    pca_vocab: int = 100_000,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    words: Mapping[str, Sequence[str]] = CLASS_WORDS,
    allow_small_pca_vocab: bool = False,
    extra_words: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """Class embeddings as the paper builds them: word2vec -> PCA to j -> max-norm.

    Recipe (paper; docs/embeddings.md): the class vectors (:func:`class_vectors`, the
    mean of a multi-word name's word vectors) are projected with a PCA fitted on the first
    ``pca_vocab`` words of the model (:func:`fit_pca`) when ``dim`` < D, kept as they are when
    ``dim`` == D, then normalised (:func:`normalise`).

    Memory: a word2vec file (binary or text) is never loaded whole. One streaming pass picks
    the class words (:func:`load_keyed_vectors` with ``words=``; it stops once all are found,
    wherever they are in the file), a second one feeds the first ``pca_vocab`` vectors to the
    PCA block by block; each holds one block of the file. Other sources are loaded whole.

    Args:
        class_names: C class names; rows of the result follow this order.
        source: word vectors, anything :func:`load_keyed_vectors` takes (a file, the offline
            ``"glove-6b-50d"``, or a gensim-downloader name such as
            ``"word2vec-google-news-300"``).
        dim: j, the embedding dimension, 1 <= j <= D.
        normalisation: ``"max_norm"`` (paper), ``"unit"``, or None (no normalisation).
        pca_vocab: words the PCA is fitted on (the most frequent ones).
        cache_dir: if set, the result is stored there as ``classemb-<hash>.npy`` (written
            atomically) and later calls with the same inputs return it without loading the word
            vectors. The hash covers the source (path, size and mtime for a file; for
            ``"glove-6b-50d"`` the package version and its files' sizes and mtimes; the name
            otherwise), class names, their word lists, dim, normalisation, pca_vocab and limit.
            The ``"glove-6b-50d"`` source also keeps its converted vectors there.
        limit: use only the first ``limit`` words (see :func:`load_keyed_vectors`). The PCA
            then uses ``min(pca_vocab, limit)`` words.
        words: class name -> words looked up (default :data:`CLASS_WORDS`).
        extra_words: class name -> words, added to ``words`` (replacing an entry of the same
            class): the words of a class the table lacks, or other words for one of it
            (``embedding.extra_words``).
        allow_small_pca_vocab: fit the PCA even when the source holds fewer than
            ``SMALL_PCA_VOCAB * pca_vocab`` words (e.g. a file of the class words alone,
            where the PCA would be fitted on the class vectors, unseen ones included:
            docs/embeddings.md). Off by default: such a source is an error.

    Returns:
        float32 (C, dim); with ``"max_norm"`` the largest row norm is 1.

    Raises:
        EmbeddingError (a ValueError): ``dim`` larger than the source dimension (names both
            and the largest j) or < 1; unknown normalisation; a PCA vocabulary far smaller
            than ``pca_vocab`` (names the source, both counts and the key that allows it); a
            source file in no supported format. MissingWordError: a class word not in the
            vocabulary (names the class, the word and what to change).
        FileNotFoundError / SourceUnavailableError: from :func:`load_keyed_vectors`.
    """
    source = os.fspath(source)
    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise EmbeddingError(f"unknown embedding.normalisation {normalisation!r}; use one of "
                             f"{NORMALISATIONS} or null")  # fmt: skip
    if dim < 1:
        raise EmbeddingError(f"the embedding dimension j must be >= 1, got {dim}")
    if extra_words:
        words = {**words, **{n: tuple(w) for n, w in extra_words.items()}}
    cache_file = None
    if cache_dir is not None:
        key = _cache_key(
            source, class_names=list(class_names), dim=int(dim), normalisation=normalisation,
            pca_vocab=int(pca_vocab), limit=limit,
            words=[list(words.get(n, (n,))) for n in class_names],
        )  # fmt: skip
        blob = json.dumps(key, sort_keys=True)
        cache_file = (
            Path(cache_dir) / f"classemb-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.npy"
        )
        if cache_file.is_file():
            log.info("class embeddings (j = %d from %s): cache hit %s", dim, source, cache_file)
            return np.load(cache_file)

    stream = word2vec_file(source)  # (path, binary) for a word2vec file, else None
    only = lookup_words(class_names, words) if stream is not None else None
    kv = load_keyed_vectors(source, limit=limit, cache_dir=cache_dir, words=only)
    d = kv.vector_size
    if dim > d:
        raise EmbeddingDimensionError(
            f"model.embed_dim (j) = {dim} is larger than the dimension {d} of the word vectors "
            f"{source!r}, and a PCA can only reduce it: set model.embed_dim to at most {d}, or "
            "use word vectors with more dimensions (embedding=word2vec: GoogleNews, "
            "300-d).")  # fmt: skip
    try:
        emb = class_vectors(kv, class_names, words, source=source)
    except MissingWordError:
        if stream is None:
            raise
        # error path only: load the vocabulary whole for the usual message (its true size)
        emb = class_vectors(load_keyed_vectors(source, limit=limit), class_names, words,
                            source=source)
    if dim < d:
        n_pca = pca_vocab if limit is None else min(pca_vocab, limit)
        vectors = kv if stream is None else _streamed(stream[0], stream[1], n_pca)
        pca = fit_pca(vectors, dim, pca_vocab)
        if pca.n_samples_ < SMALL_PCA_VOCAB * pca_vocab and not allow_small_pca_vocab:
            raise EmbeddingError(
                f"the PCA to j = {dim} would be fitted on only {pca.n_samples_} words of "
                f"{source!r} (pca_vocab={pca_vocab}): a vocabulary that small is mostly the "
                "class words themselves, unseen classes included. Use a full "
                "word-vector source (or a larger embedding.limit), lower embedding.pca_vocab, "
                "or set embedding.allow_small_pca_vocab=true to fit on it anyway.")
        emb = pca.transform(emb.astype(np.float64))
    emb = normalise(emb, normalisation) if normalisation else np.asarray(emb, np.float32)

    if cache_file is not None:
        _save_atomic(cache_file, emb)
        log.info("class embeddings (j = %d from %s): built, cached in %s", dim, source,
                 cache_file)
    return emb
