"""Import published class-embedding tables (original SZN ``norm_embed_arr_*.pkl``, ZS3,
SPNet) and put their rows in a dataset's class order."""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from zss.embeddings.build import normalise
from zss.runtime.errors import EmbeddingError

ALIASES = {"__background__": "background"}
"""Row-name aliases applied when reading labels (SPNet writes ``__background__``)."""

_LABEL_LINE = re.compile(r"^\s*(\d+)\s*(?::\s*|\t\s*|\s+)(.+?)\s*$")


def _read_array(path: Path) -> np.ndarray:
    if path.suffix not in (".npy", ".pkl"):
        raise EmbeddingError(f"{path}: unsupported embedding-table format {path.suffix!r}; a "
                             "table is a (classes, j) array saved as .npy (numpy.save) or "
                             ".pkl (pickle)")
    try:
        if path.suffix == ".npy":
            return np.load(path, allow_pickle=False)
        # Trusted, published files only: unpickling runs code. latin1 reads Python-2 pickles.
        with open(path, "rb") as f:
            return np.asarray(pickle.load(f, encoding="latin1"))
    except Exception as err:  # numpy and pickle raise many types for a file they cannot parse
        raise EmbeddingError(f"Cannot read the embedding table {path} ({type(err).__name__}: "
                             f"{err}); the file is cut short or not a {path.suffix} array: "
                             "fetch it again.") from err


def _read_labels(path: Path) -> list[str]:
    """Names from ``"N: name"`` (classes-59.txt), ``"N<TAB>name"`` (spnet/labels.txt) or bare
    ``name`` lines, in file order; blank lines are skipped."""
    names = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        m = _LABEL_LINE.match(line)
        names.append(m.group(2) if m else line.strip())
    return names


def _natural(name: str) -> list:
    """Sort key that orders embedded numbers numerically (arr_2 < arr_10)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def load_table(
    path: str | os.PathLike,
    class_names: Sequence[str],
    row_names: Sequence[str] | str | os.PathLike | None = None,
    normalisation: str | None = None,
) -> np.ndarray:
    """Load a published class-embedding table, rows in ``class_names`` order.

    Args:
        path: ``.pkl`` (a pickled 2-D numpy array, e.g. the original SZN code's
            ``norm_embed_arr_20.pkl``) or ``.npy``. Pickles run code when loaded: trusted files
            only.
        class_names: the C dataset classes, in label-index order.
        row_names: names of the table's rows: None = already in ``class_names`` order (the row
            count must then be C); a list of names; or a labels file with ``"N: name"``,
            ``"N<TAB>name"`` or bare-name lines. ``__background__`` reads as ``background``.
            Rows not named in ``class_names`` are dropped.
        normalisation: None (values as published), ``"max_norm"`` or ``"unit"``
            (:func:`normalise`, applied after reordering).

    Returns:
        float32 (C, j).

    Raises:
        FileNotFoundError: a missing table or labels file.
        EmbeddingError (a ValueError): a file that is not a .npy / .pkl array or cannot be
            read; not a 2-D table; row count differs from C without ``row_names`` (names the
            file and both counts); row_names of the wrong length or repeated; a class not
            among the row names (names it and the file).
        ValueError: unknown normalisation.
    """
    path = Path(path)
    if not path.is_file():
        have = sorted((f.name for f in path.parent.glob("*")), key=_natural) \
            if path.parent.is_dir() else []
        raise FileNotFoundError(
            f"embedding table not found: {path}. "
            + (f"Tables in {path.parent}: {have}; pick a j that has one (model.embed_dim) "
               if have else f"The folder {path.parent} does not exist; set "
               "paths.word_vectors_dir (or $ZSS_WORD_VECTORS) to the folder of the tables ")
            + "or build the vectors yourself with embedding=word2vec.")
    table = _read_array(path)
    if table.ndim != 2:
        raise EmbeddingError(f"{path}: expected a 2-D (classes, j) table, got shape "
                             f"{table.shape}")
    class_names = list(class_names)
    if row_names is None:
        if table.shape[0] != len(class_names):
            raise EmbeddingError(
                f"{path} has {table.shape[0]} rows but {len(class_names)} classes were given; "
                "it is a table of another class list: use the table of this one, or pass "
                "row_names (a list or a labels file) to match the rows to the classes by name"
            )
        out = table
    else:
        if isinstance(row_names, (str, os.PathLike)):
            labels = Path(row_names)
            if not labels.is_file():
                raise FileNotFoundError(f"labels file not found: {labels}")
            names = _read_labels(labels)
        else:
            names = list(row_names)
        names = [ALIASES.get(n, n) for n in names]
        if len(names) != table.shape[0]:
            raise EmbeddingError(f"{path} has {table.shape[0]} rows but {len(names)} row "
                                 "names; give one name per row")
        if len(set(names)) != len(names):
            raise EmbeddingError(
                f"{path}: repeated row names {sorted({n for n in names if names.count(n) > 1})}"
            )
        index = {n: i for i, n in enumerate(names)}
        missing = [n for n in class_names if n not in index]
        if missing:
            raise EmbeddingError(
                f"classes {missing} are not among the row names of {path} ({len(names)} rows: "
                f"{names[:4]} …): it has no vector for them. Use a table of these classes, "
                "or build the vectors from word vectors (embedding=glove_6b_50d or "
                "embedding=word2vec).")
        out = table[[index[n] for n in class_names]]
    out = np.asarray(out, dtype=np.float32)
    return normalise(out, normalisation) if normalisation is not None else out
