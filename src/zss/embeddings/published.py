"""Class-embedding tables published by the original SZN project and its peers: where to get
each one (its public repository at a pinned commit), its sha256, and the names of its rows.

:func:`load_published_table` looks for a table, in order, in ``word_vectors_dir`` (a local
folder that wins when it holds the file, e.g. a copy of the published tables), in
``cache_dir``, and else downloads it into ``cache_dir``; every file is checked against its
sha256 before it is used, and a download that does not match is deleted. Offline, the error
names the URL to fetch and the place to put the file.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zss.data.class_names import CONTEXT33_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from zss.embeddings.tables import load_table
from zss.runtime.errors import EmbeddingDimensionError, EmbeddingError
from zss.runtime.prefetch import Prefetch, prepare_command, register_prefetch

__all__ = ["PUBLISHED", "PublishedTable", "PublishedTableError", "load_published_table",
           "locate_published_table"]

_SZN = "https://raw.githubusercontent.com/RohanDoshi2018/ZeroshotSemanticSegmentation"
_SZN_DATASETS = f"{_SZN}/b1e904899855d4df86d60579e1e661df4599421f/datasets"
_SZN_EARLY = f"{_SZN}/9f8e4c2895c5f5f7e01c563a0d0f5128cc772140/embeddings"
_ZS3 = "https://raw.githubusercontent.com/valeoai/ZS3"


class PublishedTableError(EmbeddingError):
    """A published table that is unknown, cannot be fetched, does not match its sha256, or
    has no row for a class of the run."""


class UnpublishedDimensionError(PublishedTableError, EmbeddingDimensionError):
    """No table of this source was published for the configured j (or the table's width is
    another j): a job of an embedding-dimension sweep is skipped, not failed."""


@dataclass(frozen=True)
class PublishedTable:
    """One published class-embedding table.

    Attributes:
        name: its path under ``word_vectors_dir`` / the cache, e.g.
            ``szn-original/pascal/norm_embed_arr_20.pkl``.
        url: the file in its public repository at a pinned commit.
        sha256: hex digest of the file.
        rows: the class name of every row, in order.
        content: what the rows hold (documentation).
    """

    name: str
    url: str
    sha256: str
    rows: tuple[str, ...]
    content: str


def _szn(dataset: str, j: str, sha256: str) -> PublishedTable:
    rows = VOC_CLASSES if dataset == "pascal" else CONTEXT33_CLASSES
    if dataset == "pascal" and j in ("10", "20", "21"):
        url = f"{_SZN_EARLY}/norm_embed_arr_{j}.pkl"
    elif dataset == "pascal" and j == "300":  # the same file, republished by ZS3
        url = f"{_ZS3}/b54ab42494c89e6cba17d4d47760bf54b1007694/zs3/embeddings/pascal/w2c/" \
              "norm_embed_arr_300.pkl"
    else:
        url = f"{_SZN_DATASETS}/{dataset}/embeddings/norm_embed_arr_{j}.pkl"
    return PublishedTable(f"szn-original/{dataset}/norm_embed_arr_{j}.pkl", url, sha256, rows,
                          f"GoogleNews word2vec, PCA to j = {j}, rows divided by the largest "
                          "row norm (the original SZN project)")


_TABLES = [
    _szn("pascal", "2", "53ba138527687d477d709bc107dad889cee70ce97c9ebdc376abf57960914cd4"),
    _szn("pascal", "5", "5c710f8cce4b38953a84e61064bd7db4a719c175a89523c674cbc93ba8956320"),
    _szn("pascal", "10", "c0a035ab019ac8a3a2c9f407d4f5d6523222fd58defd2dcf515751e419174cb6"),
    _szn("pascal", "20", "e86ab3d17f5871e95263dab84cc30b00410a046f67770471edabc87e0001cc61"),
    _szn("pascal", "21", "4c55890a3dfe86fdaaad51c834cf14eb63e5d14b5c3ea38fb9b4f60bfb4892a8"),
    _szn("pascal", "50", "78712db33d12ff77a3c21ec942cec956520866d51a21f8fd67b876362ec4b86a"),
    _szn("pascal", "100", "13a50240306671bfd293e2bcd0d43d9ad3c3731ba39bb2797df5a94f7efb8366"),
    _szn("pascal", "200", "35163c8891b51abc53201af9fc5d0dc2f1dcb9bf9971c5899cb94afcf1ff6cb7"),
    _szn("pascal", "300", "7c43549c4557b83cd94efd2e86c1522a067d7f16aa479c82cd74c386482b5283"),
    _szn("context", "2", "b24ea0c16e5b80cd7202d05db22da7d7286c06e3ca473e52f8b72159adb780e6"),
    _szn("context", "5", "f0b4ba972563efcf262f1ecaea1c767310fd8a14a9d4c7f1f9d7c5160ab368a4"),
    _szn("context", "10", "d6386ca9a3eaf781cf9c65dc61fff314f4c1b174c1acd5c94839c07215e1351c"),
    _szn("context", "20", "9ddf7d9f379ab169e13a6e2c0a8c0f20188f93d3caed0ad6ad28585925a7625b"),
    _szn("context", "21", "a4a50ff8a56b617d4343dbe562601a5af505ea67cbcfa55db7d671e901f4f412"),
    _szn("context", "50", "de97bf99b82a05a65ec4be05a3ae2488d63d3ac2b3bcc9bcfbe309247cb5e929"),
    _szn("context", "100", "84d485a5e43cecd8005c90d87cfeba92ecdec89bf8df976e1bdca0831d720087"),
    _szn("context", "200", "3b6a3dee491bfd0daebdf59605da0de2778c8443b28b067e16ddb8340264a62b"),
    _szn("context", "300", "65eeaacef00595017b47b610e89795a7b829c3f7fa07ce31f738df5e2e95a9ce"),
    PublishedTable(
        "zs3/pascalcontext_class_w2c.npy",
        f"{_ZS3}/eabfd46f84db9dd6efd0ce2f5ae54383e7a315ea/ZS3/embeddings/context/"
        "pascalcontext_class_w2c.npy",
        "d3ba294822f3a0de9e5e2992902d4bec6100170cf88a8387982aa1f766f74255", CONTEXT60_CLASSES,
        "raw GoogleNews word2vec (300-d, float64, unnormalised) of background and the 59 "
        "Context classes (ZS3Net, Apache-2.0)"),
]
PUBLISHED: dict[str, PublishedTable] = {t.name: t for t in _TABLES}
"""Every published table zss knows, by name."""
CONFIGS = {"szn-original/pascal/": "szn_original", "szn-original/context/":
           "szn_original_context", "zs3/": "zs3_context"}
"""The ``embedding=`` config (conf/embedding/) of each folder of published tables."""


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, dest: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as f:
        f.write(response.read())


def locate_published_table(name: str, word_vectors_dir: str | os.PathLike | None = None,
                           cache_dir: str | os.PathLike | None = None,
                           fetch: Callable[[str, Path], None] = _fetch) -> Path:
    """The local file of a published table, downloaded into ``cache_dir`` when needed.

    Args:
        name: a key of :data:`PUBLISHED`.
        word_vectors_dir: a folder that wins when it holds ``name`` (None: not looked at).
        cache_dir: where downloads are kept (``<cache_dir>/<name>``); None: no download.
        fetch: ``fetch(url, destination)`` (the test seam; urllib by default).

    Returns:
        the path of a file whose sha256 is the published one.

    Raises:
        PublishedTableError: an unknown name (listing the known ones of the same folder), a
            local or cached file with another sha256, a download that fails (with the URL
            and where to put the file by hand) or does not match (the download is deleted).
    """
    if name not in PUBLISHED:
        folder = name.rsplit("/", 1)[0]
        known = sorted(n.rsplit("/", 1)[-1] for n in PUBLISHED if n.startswith(folder + "/"))
        raise (UnpublishedDimensionError if known else PublishedTableError)(
            f"no published table {name!r}"
            + (f"; {folder}/ has {known} (pick a model.embed_dim that has one, or build the "
               "vectors with embedding=word2vec)" if known else
               f"; known tables: {sorted(PUBLISHED)}"))
    table = PUBLISHED[name]
    candidates = [Path(d) / name for d in (word_vectors_dir, cache_dir) if d is not None]
    for path in candidates:
        if path.is_file():
            digest = file_sha256(path)
            if digest != table.sha256:
                raise PublishedTableError(
                    f"{path} is not the published {name}: its sha256 is {digest}, the "
                    f"published one {table.sha256} ({table.url}). Replace it with the "
                    "published file, or load your own table with zss.embeddings.load_table.")
            return path
    if cache_dir is None:
        raise PublishedTableError(f"{name} is in none of {[str(p) for p in candidates]} and "
                                  "no cache_dir is set to download it into.")
    dest = Path(cache_dir) / name
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part{os.getpid()}")
    try:
        fetch(table.url, tmp)
    except Exception as err:  # no network, HTTP error, ...
        tmp.unlink(missing_ok=True)
        raise PublishedTableError(
            f"could not download the published table {name} from {table.url} "
            f"({type(err).__name__}: {err}). Fetch that file by hand and put it at {dest} "
            f"(or into paths.word_vectors_dir as {name}), or run "
            f"{prepare_command(PREFETCH_NAME)} on a machine with internet (with the same "
            "paths.cache_dir), or build the vectors with embedding=word2vec.") from err
    digest = file_sha256(tmp)
    if digest != table.sha256:
        tmp.unlink()
        raise PublishedTableError(f"the download of {name} from {table.url} has sha256 "
                                  f"{digest}, not the published {table.sha256}; it was "
                                  "deleted. Try again, or fetch the file by hand.")
    os.replace(tmp, dest)
    return dest


PREFETCH_NAME = "published-tables"


def _prefetch(cache_dir: Path) -> list[Path]:  # where the embedding configs' cache_dir points
    return [locate_published_table(name, None, Path(cache_dir) / "tables") for name in PUBLISHED]


register_prefetch(Prefetch(
    PREFETCH_NAME, f"the {len(PUBLISHED)} published class-embedding tables (embedding="
    "szn_original, szn_original_context, zs3_context), < 1 MB, into paths.cache_dir/tables",
    _prefetch))


def _check_rows(table: PublishedTable, class_names: Sequence[str]) -> None:
    """Every class must be a row of the table; else name them and the configs that fit."""
    missing = [n for n in class_names if n not in table.rows]
    if not missing:
        return
    fits = sorted({f"embedding={config}" for t in PUBLISHED.values()
                   if set(class_names) <= set(t.rows)
                   for folder, config in CONFIGS.items() if t.name.startswith(folder)})
    raise PublishedTableError(
        f"the published table {table.name} has the rows of {len(table.rows)} classes "
        f"({', '.join(table.rows[:3])}, …), not of the run's class list: it has no vector for "
        f"{missing}. Use a table of the run's classes"
        + (f" ({' or '.join(fits)})" if fits else "")
        + ", or build the vectors from word vectors (embedding=glove_6b_50d or "
        "embedding=word2vec).")


def load_published_table(name: str, class_names: Sequence[str], dim: int | None = None,
                         normalisation: str | None = None,
                         word_vectors_dir: str | os.PathLike | None = None,
                         cache_dir: str | os.PathLike | None = None,
                         fetch: Callable[[str, Path], None] = _fetch) -> np.ndarray:
    """A published table (:func:`locate_published_table`), rows matched to ``class_names``
    by the table's row names, optionally normalised.

    Args:
        name: a key of :data:`PUBLISHED`.
        class_names: the run's classes; every one must be a row of the table.
        dim: the expected j; the table's width must equal it (a table cannot be reduced by
            PCA without the word vectors' vocabulary).
        normalisation: None (as published), ``"max_norm"`` or ``"unit"``.
        word_vectors_dir, cache_dir, fetch: as :func:`locate_published_table`.

    Returns:
        float32 (C, j).

    Raises:
        PublishedTableError: as :func:`locate_published_table`; a width other than ``dim``;
            a class that is not a row of the table (named, with the configs whose tables
            have it), checked before anything is read or downloaded.
    """
    if name in PUBLISHED:
        _check_rows(PUBLISHED[name], class_names)
    path = locate_published_table(name, word_vectors_dir, cache_dir, fetch)
    table = PUBLISHED[name]
    emb = load_table(path, class_names, row_names=table.rows, normalisation=normalisation)
    if dim is not None and emb.shape[1] != dim:
        raise UnpublishedDimensionError(
            f"the published table {name} is {emb.shape[1]}-d ({table.content}), but "
            f"model.embed_dim={dim}; a PCA to j needs the word vectors' vocabulary, not a "
            f"table: set model.embed_dim={emb.shape[1]} or use embedding=word2vec.")
    return emb
