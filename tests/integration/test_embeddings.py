"""zss.embeddings on the shared word vectors and published tables: the GloVe class words,
the tables' row order, pinned hashes, download and local folder, the rows matched by name
through the config, and a clear error for word vectors in no supported format, a j larger
than the source, a class without words and a table of another class list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from hydra import compose, initialize_config_dir

from tests.helpers import cut
from zss.data.splits import CONTEXT33_CLASSES, CONTEXT60_CLASSES, VOC_CLASSES
from zss.embeddings import build_class_embeddings, class_vectors, load_keyed_vectors, load_table
from zss.runtime.errors import UserInputError


def test_shared_glove_all_voc_classes(word_vectors_dir):
    WV = word_vectors_dir
    kv = load_keyed_vectors(WV / "glove6B50d_classwords.w2v.txt")
    assert kv.vector_size == 50
    for names in (VOC_CLASSES, CONTEXT33_CLASSES, CONTEXT60_CLASSES):
        vec = class_vectors(kv, names)
        assert vec.shape == (len(names), 50) and np.isfinite(vec).all()
        assert (np.linalg.norm(vec, axis=1) > 0).all()


def test_build_refuses_a_pca_vocabulary_far_below_pca_vocab(word_vectors_dir, toy_txt):
    # the published 69-word file holds only the class words: a PCA fitted on it would be
    # fitted on the class vectors, the unseen ones included (docs/embeddings.md)
    small = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    with pytest.raises(ValueError, match=r"only 69 words.*allow_small_pca_vocab=true"):
        build_class_embeddings(VOC_CLASSES, small, dim=20)
    allowed = build_class_embeddings(VOC_CLASSES, small, dim=20, allow_small_pca_vocab=True)
    assert allowed.shape == (21, 20)
    path, kv = toy_txt  # ~250 words: enough for pca_vocab=1000 (>= 10 %), not for 10,000
    assert build_class_embeddings(VOC_CLASSES, path, dim=5, pca_vocab=1000).shape == (21, 5)
    with pytest.raises(ValueError, match=rf"only {len(kv)} words"):
        build_class_embeddings(VOC_CLASSES, path, dim=5, pca_vocab=10_000)
    # no PCA (j = source dimension): nothing is fitted, nothing to refuse
    assert build_class_embeddings(VOC_CLASSES, small, dim=50).shape == (21, 50)


# --- published tables ------------------------------------------------------------------------


def test_load_table_szn_original(word_vectors_dir):
    WV = word_vectors_dir
    emb = load_table(WV / "szn-original/pascal/norm_embed_arr_20.pkl", VOC_CLASSES)
    assert emb.shape == (21, 20) and emb.dtype == np.float32
    assert abs(np.linalg.norm(emb, axis=1).max() - 1) < 1e-6
    # rows in VOC order: nearest neighbours (cosine) that hold in the published j = 300 table
    # (pairs of mutual neighbours, so a shifted or reversed row order breaks them)
    full = load_table(WV / "szn-original/pascal/norm_embed_arr_300.pkl", VOC_CLASSES)
    unit = full / np.linalg.norm(full, axis=1, keepdims=True)
    cos = unit @ unit.T
    np.fill_diagonal(cos, -np.inf)
    nearest = {VOC_CLASSES[i]: VOC_CLASSES[j] for i, j in enumerate(cos.argmax(1))}
    for a, b in (("sheep", "cow"), ("train", "bus"), ("cat", "dog"), ("bicycle", "motorbike"),
                 ("sofa", "chair")):
        assert nearest[a] == b and nearest[b] == a, (a, b, nearest[a], nearest[b])
    with pytest.raises(ValueError, match=r"norm_embed_arr_20\.pkl.*21 rows.*33.*row_names"):
        load_table(WV / "szn-original/pascal/norm_embed_arr_20.pkl", CONTEXT33_CLASSES)
    ctx = load_table(WV / "szn-original/context/norm_embed_arr_5.pkl", CONTEXT33_CLASSES,
                     row_names=WV.parent / "pascal-context-sample/classes-33.txt")  # fmt: skip
    assert ctx.shape == (33, 5)


def test_load_table_reorders_by_name(word_vectors_dir):
    WV = word_vectors_dir
    table = WV / "spnet/word2vec.pkl"
    emb = load_table(table, VOC_CLASSES, row_names=WV / "spnet/labels.txt")
    assert emb.shape == (21, 300) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, atol=1e-5)
    rev = list(reversed(VOC_CLASSES))
    emb_rev = load_table(table, rev, row_names=WV / "spnet/labels.txt")
    np.testing.assert_array_equal(emb_rev, emb[::-1])
    # a name list with the alias works the same, and normalisation applies after
    names = ["__background__"] + list(VOC_CLASSES[1:])
    np.testing.assert_array_equal(load_table(table, VOC_CLASSES, row_names=names), emb)
    mx = load_table(table, VOC_CLASSES, row_names=names, normalisation="max_norm")
    assert abs(np.linalg.norm(mx, axis=1).max() - 1) < 1e-6
    with pytest.raises(ValueError, match=r"'sky'.*word2vec\.pkl"):
        load_table(table, ["cat", "sky"], row_names=names)


# --- published tables: local folder, cache, download, hash -----------------------------------


def test_published_tables_match_the_shared_files(word_vectors_dir):
    from zss.embeddings import PUBLISHED, locate_published_table

    for name in PUBLISHED:  # every pinned sha256 is the one of the file we read
        assert locate_published_table(name, word_vectors_dir=word_vectors_dir).is_file()
    assert {n.split("/")[1] for n in PUBLISHED if n.startswith("szn-original")} == {
        "pascal", "context"}


def _file_url_table(monkeypatch, source: Path, sha: str):
    from zss.embeddings import PUBLISHED, published

    entry = published.PublishedTable("szn-original/pascal/norm_embed_arr_5.pkl",
                                     source.resolve().as_uri(), sha, VOC_CLASSES, "test")
    monkeypatch.setitem(PUBLISHED, entry.name, entry)
    return entry


def test_published_table_download_checks_the_hash(word_vectors_dir, tmp_path, monkeypatch):
    from zss.embeddings import PUBLISHED, PublishedTableError, load_published_table

    name = "szn-original/pascal/norm_embed_arr_5.pkl"
    src = word_vectors_dir / name
    good = PUBLISHED[name].sha256
    # a file:// URL through the real urllib fetch: downloaded into the cache, then reused
    _file_url_table(monkeypatch, src, good)
    cache = tmp_path / "cache"
    emb = load_published_table(name, VOC_CLASSES, dim=5, cache_dir=cache)
    assert (cache / name).is_file() and emb.shape == (21, 5)
    np.testing.assert_array_equal(emb, load_table(src, VOC_CLASSES))
    # a download that does not match the sha256 is refused and not kept
    _file_url_table(monkeypatch, src, "0" * 64)
    other = tmp_path / "other"
    with pytest.raises(PublishedTableError, match="not the published") as info:
        load_published_table(name, VOC_CLASSES, cache_dir=other)
    assert "deleted" in str(info.value) and not list(other.rglob("*.pkl*"))
    # offline: the message names the URL and where to put the file
    _file_url_table(monkeypatch, src, good)

    def offline(url, dest):
        raise OSError("[Errno -3] Temporary failure in name resolution")

    with pytest.raises(PublishedTableError) as info:
        load_published_table(name, VOC_CLASSES, cache_dir=other, fetch=offline)
    msg = str(info.value)
    assert src.resolve().as_uri() in msg and str(other / name) in msg
    assert "name resolution" in msg and not list(other.rglob("*.pkl*"))


def test_published_table_local_folder_wins_and_is_checked(word_vectors_dir, tmp_path):
    from zss.embeddings import PublishedTableError, load_published_table

    name = "szn-original/context/norm_embed_arr_20.pkl"

    def no_download(url, dest):
        raise AssertionError("downloaded although the local folder holds the table")

    emb = load_published_table(name, CONTEXT33_CLASSES, dim=20, cache_dir=tmp_path,
                               word_vectors_dir=word_vectors_dir, fetch=no_download)
    assert emb.shape == (33, 20)
    bad = tmp_path / "wv" / name
    bad.parent.mkdir(parents=True)
    bad.write_bytes((word_vectors_dir / name).read_bytes() + b"\0")
    with pytest.raises(PublishedTableError, match="is not the published"):
        load_published_table(name, CONTEXT33_CLASSES, word_vectors_dir=tmp_path / "wv")
    with pytest.raises(PublishedTableError, match=r"norm_embed_arr_10\.pkl"):
        load_published_table("szn-original/context/norm_embed_arr_7.pkl", CONTEXT33_CLASSES)


def test_zs3_context_table_is_reordered_and_normalised(word_vectors_dir):
    from zss.data.splits import CONTEXT59_CLASSES
    from zss.embeddings import PublishedTableError, load_published_table

    raw = np.load(word_vectors_dir / "zs3/pascalcontext_class_w2c.npy")  # bg + classes-59
    emb = load_published_table("zs3/pascalcontext_class_w2c.npy", CONTEXT59_CLASSES, dim=300,
                               normalisation="max_norm", word_vectors_dir=word_vectors_dir)
    expected = raw[1:] / np.linalg.norm(raw[1:], axis=1).max()  # no background in context59
    np.testing.assert_allclose(emb, expected, rtol=1e-6)
    with pytest.raises(PublishedTableError, match="model.embed_dim=300"):
        load_published_table("zs3/pascalcontext_class_w2c.npy", CONTEXT59_CLASSES, dim=20,
                             word_vectors_dir=word_vectors_dir)


CONF = Path(__file__).resolve().parents[2] / "conf"


def load(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_published_table_rows_are_matched_by_name(word_vectors_dir):
    from hydra.utils import instantiate

    from zss.data.splits import VOC_CLASSES

    cfg = load("+experiment=voc_17_2_2", f"paths.word_vectors_dir={word_vectors_dir}")
    in_order = instantiate(cfg.embedding, class_names=list(VOC_CLASSES))
    shuffled = list(reversed(VOC_CLASSES))
    assert (instantiate(cfg.embedding, class_names=shuffled) == in_order[::-1]).all()


# ---- class embeddings --------------------------------------------------------------------
def _glove_text(wv: Path, out: Path) -> Path:
    """The shared 69 class words in GloVe's own text format: no header line."""
    lines = (wv / "glove6B50d_classwords.w2v.txt").read_text().splitlines()[1:]
    out.write_text("\n".join(lines) + "\n")
    return out


def _cut_binary(wv: Path, out: Path) -> Path:

    kv = KeyedVectors.load_word2vec_format(str(wv / "glove6B50d_classwords.w2v.txt"))
    kv.save_word2vec_format(str(out), binary=True)
    cut(out)
    return out


def _numpy_table(wv: Path, out: Path) -> Path:
    np.save(out, np.ones((21, 20), dtype=np.float32))
    return out


def _not_a_pickle(wv: Path, out: Path) -> Path:
    out.write_text("these are not word vectors\n")
    return out


SOURCE_ROWS = {  # a word-vector file in no supported format: (file, texts the message holds)
    "GloVe text without a header": (_glove_text, "glove.6B.50d.txt",
                                    ["python -m gensim.scripts.glove2word2vec --input"]),
    "word2vec binary cut short": (_cut_binary, "vectors.bin", ["EOFError"]),
    "a numpy table": (_numpy_table, "table.npy", ["a class-embedding table, not word vectors"]),
    "a .kv that is no gensim file": (_not_a_pickle, "vectors.kv", ["UnpicklingError"]),
}


@pytest.mark.parametrize("row", list(SOURCE_ROWS))
def test_word_vectors_in_no_supported_format(row, word_vectors_dir, tmp_path):
    from zss.embeddings import build_class_embeddings

    make, name, needles = SOURCE_ROWS[row]
    path = make(word_vectors_dir, tmp_path / name)
    before = path.read_bytes()
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(VOC_CLASSES, path, dim=20, allow_small_pca_vocab=True)
    msg = str(info.value)
    assert f"Cannot read word vectors from {path}" in msg
    assert "zss reads a word2vec binary (.bin, .bin.gz) or text file" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert path.read_bytes() == before


def test_j_larger_than_the_source_dimension(word_vectors_dir):
    from zss.embeddings import build_class_embeddings

    source = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(VOC_CLASSES, source, dim=60, allow_small_pca_vocab=True)
    msg = str(info.value)
    assert f"model.embed_dim (j) = 60 is larger than the dimension 50 of the word vectors " \
        f"'{source}'" in msg and "set model.embed_dim to at most 50" in msg


def test_class_unknown_to_the_word_table_and_the_source(word_vectors_dir):
    from zss.embeddings import build_class_embeddings

    source = word_vectors_dir / "glove6B50d_classwords.w2v.txt"
    classes = [*VOC_CLASSES[:-1], "zebracorn"]
    with pytest.raises(UserInputError) as info:
        build_class_embeddings(classes, source, dim=50)
    msg = str(info.value)
    assert "class 'zebracorn' is in no entry of the class-word table" in msg
    assert f"not in the vocabulary of {source}" in msg
    assert "embedding.extra_words={zebracorn:[word1,word2]}" in msg
    # what the message suggests works: the class gets words the source has
    emb = build_class_embeddings(classes, source, dim=50,
                                 extra_words={"zebracorn": ["horse", "cow"]})
    assert emb.shape == (21, 50) and np.isfinite(emb).all()


def test_published_table_of_another_class_list(word_vectors_dir, tmp_path):
    from zss.data.splits import CONTEXT33_CLASSES
    from zss.embeddings import load_published_table, load_table

    def no_download(url, dest):
        raise AssertionError("a table that cannot fit the classes was fetched")

    name = "szn-original/pascal/norm_embed_arr_20.pkl"
    with pytest.raises(UserInputError) as info:
        load_published_table(name, CONTEXT33_CLASSES, dim=20, cache_dir=tmp_path,
                             fetch=no_download)
    msg = str(info.value)
    assert f"the published table {name} has the rows of 21 classes" in msg
    assert "'sky'" in msg and "(embedding=szn_original_context or embedding=zs3_context)" in msg
    assert not list(tmp_path.iterdir())
    # the same table read as a file: its row count is not the class count
    with pytest.raises(UserInputError) as info:
        load_table(word_vectors_dir / name, CONTEXT33_CLASSES)
    assert "norm_embed_arr_20.pkl has 21 rows but 33 classes" in str(info.value)
    assert "use the table of this one" in str(info.value)
