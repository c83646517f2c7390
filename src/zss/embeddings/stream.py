"""One streaming pass over a word2vec file (the C tool's binary or text format, optionally
gzipped), block by block, so that a class-embedding build never holds the whole vocabulary.

The layout is what gensim's ``load_word2vec_format`` reads: a header line ``"<count> <dim>"``,
then per word either ``word<space><dim float32 bytes>`` (binary; a newline before the next word
is optional) or a line ``word v1 ... vdim`` (text). Words are UTF-8 (strict) with a leading
newline stripped and vectors float32, exactly as gensim decodes them.
"""

from __future__ import annotations

import gzip
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

_READ_BYTES = 1 << 20


def _open(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _parse_header(line: bytes, path: Path) -> tuple[int, int]:
    try:
        count, dim = (int(x) for x in line.split())
    except ValueError:
        raise ValueError(f"{path}: the first line must be '<word count> <dimension>' (a word2vec "
                         f"file), got {line[:80]!r}") from None
    return count, dim


def read_header(path: str | Path) -> tuple[int, int]:
    """``(word count, dimension)`` from the header line of a word2vec file.

    Raises:
        ValueError: the first line is not two integers.
    """
    path = Path(path)
    with _open(path) as f:
        return _parse_header(f.readline(), path)


def iter_word2vec(path: str | Path, binary: bool, limit: int | None = None,
                  only: Collection[str] | None = None,
                  block_size: int = 4096) -> Iterator[tuple[list[str], np.ndarray]]:
    """Stream the words of a word2vec file in file order (most frequent first).

    Args:
        path: the file (``.gz`` is decompressed on the fly).
        binary: the C tool's binary format (True) or text (False).
        limit: read only the first ``limit`` words (None: all of them).
        only: yield only these words (the others are skipped without decoding their vectors);
            None yields every word.
        block_size: words per yielded block.

    Yields:
        ``(words, vectors)``: up to ``block_size`` words and a fresh float32 (n, dim) array.
        Memory: one block plus one read buffer of 1 MiB.

    Raises:
        ValueError: a bad header, or a text line whose vector length differs from the header.
        EOFError: the file ends before ``min(count, limit)`` words.
        UnicodeDecodeError: a word that is not UTF-8.
    """
    path = Path(path)
    with _open(path) as f:
        count, dim = _parse_header(f.readline(), path)
        n = count if limit is None else min(count, int(limit))
        records = _binary_records(f, n, dim) if binary else _text_records(f, n, dim, path)
        words: list[str] = []
        rows: list[np.ndarray] = []
        for word, vector in records(only):
            words.append(word)
            rows.append(vector)
            if len(words) == block_size:
                yield words, np.stack(rows)
                words, rows = [], []
        if words:
            yield words, np.stack(rows)


def _binary_records(f: BinaryIO, n: int, dim: int):
    size = 4 * dim

    def records(only: Collection[str] | None) -> Iterator[tuple[str, np.ndarray]]:
        buf, pos = b"", 0
        for _ in range(n):
            while True:
                space = buf.find(b" ", pos)
                if space != -1 and len(buf) - space - 1 >= size:
                    break
                more = f.read(_READ_BYTES)
                if not more:
                    raise EOFError(f"unexpected end of the word2vec file after fewer than {n} "
                                   "words; is the header's count wrong or the file cut?")
                buf, pos = buf[pos:] + more, 0
            word = buf[pos:space].decode("utf-8").lstrip("\n")
            if only is None or word in only:
                yield word, np.frombuffer(buf, np.float32, dim, space + 1)
            pos = space + 1 + size

    return records


def _text_records(f: BinaryIO, n: int, dim: int, path: Path):
    def records(only: Collection[str] | None) -> Iterator[tuple[str, np.ndarray]]:
        for _ in range(n):
            line = f.readline()
            if not line:
                raise EOFError(f"unexpected end of {path} after fewer than {n} words; is the "
                               "header's count wrong or the file cut?")
            word, _, rest = line.rstrip().decode("utf-8").partition(" ")
            if only is not None and word not in only:
                continue
            vector = np.array([float(x) for x in rest.split(" ")], np.float64).astype(np.float32)
            if vector.shape != (dim,):
                raise ValueError(f"{path}: word {word!r} has {vector.size} values, the header "
                                 f"says {dim}")
            yield word, vector

    return records
