"""Class embeddings from word vectors: class vectors -> PCA to j -> normalise (paper §3.2 of
"Zero-Shot Semantic Segmentation via Seenmask"; DESIGN §1 and §3 "PCA"), with a disk cache."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors
from sklearn.decomposition import PCA

from zss.embeddings.classwords import CLASS_WORDS, class_vectors
from zss.embeddings.sources import load_keyed_vectors

NORMALISATIONS = ("max_norm", "unit")
_CACHE_VERSION = 1  # bump when the recipe changes, so old cache files are not reused


def fit_pca(kv: KeyedVectors, dim: int, vocab_size: int) -> PCA:
    """Fit a PCA to ``dim`` components on the first ``vocab_size`` words of ``kv``.

    DESIGN §3: the PCA is fitted on a large vocabulary (word2vec files list the most frequent
    words first), never on the class vectors alone — 21 vectors cannot give 50 components,
    and fitting on the test classes would use their vectors in training. The fit runs in
    float64 with the exact (``"full"``) SVD, so it is deterministic.

    Args:
        kv: word vectors, (V, D).
        dim: number of components, 1 <= dim <= min(D, number of words used).
        vocab_size: words used, the first ``min(vocab_size, V)``.

    Returns:
        a fitted ``sklearn.decomposition.PCA``; ``.transform(x)`` maps (N, D) to (N, dim).

    Raises:
        ValueError: ``dim`` < 1, ``dim`` > D, or ``dim`` > the number of words used.
    """
    n = min(int(vocab_size), len(kv))
    d = kv.vector_size
    if not 1 <= dim <= d:
        raise ValueError(f"PCA dimension {dim} must be in [1, {d}] (the word-vector dimension)")
    if dim > n:
        raise ValueError(f"PCA dimension {dim} needs at least {dim} words; vocab_size={vocab_size}"
                         f" and the model has {len(kv)} words")  # fmt: skip
    x = np.asarray(kv.vectors[:n], dtype=np.float64)
    return PCA(n_components=dim, svd_solver="full", random_state=0).fit(x)


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


def build_class_embeddings(
    class_names: Sequence[str],
    source: str | os.PathLike,
    dim: int,
    normalisation: str | None = "max_norm",
    pca_vocab: int = 100_000,
    cache_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    words: Mapping[str, Sequence[str]] = CLASS_WORDS,
) -> np.ndarray:
    """Class embeddings as the paper builds them: word2vec -> PCA to j -> max-norm.

    Recipe (paper; DESIGN §1 step 2 and §3): the class vectors (:func:`class_vectors`, the
    mean of a multi-word name's word vectors) are projected with a PCA fitted on the first
    ``pca_vocab`` words of the model (:func:`fit_pca`) when ``dim`` < D, kept as they are when
    ``dim`` == D, then normalised (:func:`normalise`).

    Args:
        class_names: C class names; rows of the result follow this order.
        source: word vectors, anything :func:`load_keyed_vectors` takes (a file, or a
            gensim-downloader name such as ``"word2vec-google-news-300"``).
        dim: j, the embedding dimension, 1 <= j <= D.
        normalisation: ``"max_norm"`` (paper), ``"unit"``, or None (no normalisation).
        pca_vocab: words the PCA is fitted on (the most frequent ones).
        cache_dir: if set, the result is stored there as ``classemb-<hash>.npy`` (written
            atomically) and later calls with the same inputs return it without loading the word
            vectors. The hash covers the source (path, size and mtime for a file; the name
            otherwise), class names, their word lists, dim, normalisation, pca_vocab and limit.
        limit: load only the first ``limit`` words (saves memory; see
            :func:`load_keyed_vectors`). The PCA then uses ``min(pca_vocab, limit)`` words.
        words: class name -> words looked up (default :data:`CLASS_WORDS`).

    Returns:
        float32 (C, dim); with ``"max_norm"`` the largest row norm is 1.

    Raises:
        ValueError: ``dim`` larger than the source dimension (names both) or < 1; unknown
            normalisation. MissingWordError: a class word not in the vocabulary.
        FileNotFoundError / RuntimeError: from :func:`load_keyed_vectors`.
    """
    source = os.fspath(source)
    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {normalisation!r}; expected one of "
                         f"{NORMALISATIONS} or None")  # fmt: skip
    if dim < 1:
        raise ValueError(f"embedding dimension must be >= 1, got {dim}")
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
            return np.load(cache_file)

    kv = load_keyed_vectors(source, limit=limit)
    d = kv.vector_size
    if dim > d:
        raise ValueError(f"embedding dimension {dim} is larger than the dimension {d} of the "
                         f"word vectors {source!r}")  # fmt: skip
    emb = class_vectors(kv, class_names, words, source=source)
    if dim < d:
        emb = fit_pca(kv, dim, pca_vocab).transform(emb.astype(np.float64))
    emb = normalise(emb, normalisation) if normalisation else np.asarray(emb, np.float32)

    if cache_file is not None:
        _save_atomic(cache_file, emb)
    return emb
