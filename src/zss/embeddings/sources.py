"""Word-vector sources: files in the usual formats, or a ``gensim.downloader`` model name.

The paper (Zero-Shot Semantic Segmentation via Seenmask, SZN) embeds class names with the
GoogleNews word2vec model (3M words, 300-d); gensim names it ``word2vec-google-news-300``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

DEFAULT_SOURCE = "word2vec-google-news-300"
"""The paper's word vectors (GoogleNews word2vec, 300-d), as a gensim-downloader name."""

_FASTTEXT_MAGIC = int(np.int32(793712314))  # first int32 of a fastText .bin (gensim _fasttext_bin)
_TEXT_SUFFIXES = (".txt", ".txt.gz", ".vec", ".vec.gz")
_BINARY_SUFFIXES = (".bin", ".bin.gz")
_SAVED_SUFFIXES = (".kv", ".model")


def _looks_like_path(source: str) -> bool:
    return (
        os.sep in source
        or "/" in source
        or source.endswith(_TEXT_SUFFIXES + _BINARY_SUFFIXES + _SAVED_SUFFIXES + (".gz",))
    )


def _is_fasttext_bin(path: Path) -> bool:
    """fastText rule: a ``.bin`` starting with fastText's magic number (every fastText
    release since 2017, e.g. ``cc.en.300.bin``), or one whose name contains ``fasttext`` or
    starts with ``cc.`` (pre-magic files). Anything else ending in ``.bin`` is word2vec."""
    if path.name.endswith(".gz"):
        return False  # fastText binaries are never gzipped; word2vec ones often are
    with open(path, "rb") as f:
        head = f.read(4)
    if len(head) == 4 and int(np.frombuffer(head, dtype="<i4")[0]) == _FASTTEXT_MAGIC:
        return True
    name = path.name.lower()
    return "fasttext" in name or name.startswith("cc.")


def _is_binary_word2vec(path: Path) -> bool:
    """Sniff a word2vec file of unknown suffix: text files are ASCII/UTF-8 after the header,
    binary ones hold raw float32 bytes."""
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        f.readline()  # "<count> <dim>" header, identical in both formats
        chunk = f.read(4096)
    try:
        chunk.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start < len(chunk) - 4  # an error only in the last bytes is a cut character
    return b"\x00" in chunk


def _load_file(path: Path, limit: int | None) -> KeyedVectors:
    name = path.name.lower()
    if name.endswith(_SAVED_SUFFIXES):
        obj = KeyedVectors.load(str(path), mmap="r")
        obj = getattr(obj, "wv", obj)  # a full Word2Vec / FastText model -> its vectors
        if not isinstance(obj, KeyedVectors):
            raise TypeError(f"{path} holds a {type(obj).__name__}, not gensim KeyedVectors")
        return obj
    if name.endswith(".bin") and _is_fasttext_bin(path):
        from gensim.models.fasttext import load_facebook_vectors

        return load_facebook_vectors(str(path))
    if name.endswith(_BINARY_SUFFIXES):
        binary = True
    elif name.endswith(_TEXT_SUFFIXES):
        binary = False
    else:
        binary = _is_binary_word2vec(path)
    return KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)


def _load_downloader(name: str, limit: int | None) -> KeyedVectors:
    import gensim.downloader

    try:
        if limit is None:
            kv = gensim.downloader.load(name)
        else:  # fetch the file only, so that `limit` can cut the vocabulary while loading
            kv = _load_file(Path(gensim.downloader.load(name, return_path=True)), limit)
    except (OSError, ValueError) as e:  # offline: URLError/ConnectionError or gensim's ValueError
        raise RuntimeError(
            f"cannot load word vectors {name!r} with gensim.downloader: no network and no cached "
            f"copy under {gensim.downloader.BASE_DIR} ({type(e).__name__}: {e}). Download the "
            "file yourself (for the paper's default: GoogleNews-vectors-negative300.bin(.gz)) and "
            "set embedding.source=/path/to/file"
        ) from e
    if not isinstance(kv, KeyedVectors):
        raise TypeError(f"gensim.downloader model {name!r} is a {type(kv).__name__}, not word "
                        "vectors (KeyedVectors)")  # fmt: skip
    return kv


def load_keyed_vectors(source: str | os.PathLike, *, limit: int | None = None) -> KeyedVectors:
    """Load word vectors from a file or a ``gensim.downloader`` model name.

    Args:
        source: one of
            - a word2vec binary: ``*.bin``, ``*.bin.gz`` (e.g. GoogleNews-vectors-negative300.bin);
            - a word2vec text file: ``*.txt``, ``*.txt.gz``, ``*.vec``, ``*.vec.gz``;
            - a saved gensim ``KeyedVectors`` (or Word2Vec/FastText model): ``*.kv``,
              ``*.model``, memory-mapped read-only (``mmap='r'``);
            - a fastText binary: a ``*.bin`` that starts with fastText's magic number, or whose
              name contains ``fasttext`` or starts with ``cc.`` (loaded with
              ``gensim.models.fasttext.load_facebook_vectors``);
            - another existing file: word2vec, binary or text sniffed from its content;
            - a name without a path separator or known suffix: a ``gensim.downloader`` model,
              e.g. ``"word2vec-google-news-300"`` (the paper's default).
        limit: load only the first (most frequent) ``limit`` words; applies to word2vec files
            (``load_word2vec_format(limit=...)``) and downloader models; ignored for saved
            KeyedVectors (memory-mapped anyway) and fastText binaries.

    Returns:
        ``gensim.models.KeyedVectors``; vectors are float32, (vocabulary, D).

    Raises:
        FileNotFoundError: ``source`` looks like a path and does not exist (names the path).
        RuntimeError: a downloader name that cannot be fetched (no network, no cached copy);
            the message tells how to point ``embedding.source`` at a downloaded file.
        TypeError: the file or model holds something other than word vectors.
    """
    source = os.fspath(source)
    path = Path(source).expanduser()
    if path.is_file():
        return _load_file(path, limit)
    if _looks_like_path(source):
        raise FileNotFoundError(f"word-vector file not found: {path}")
    return _load_downloader(source, limit)
