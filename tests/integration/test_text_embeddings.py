"""Class embeddings from text encoders (zss.embeddings.text_build) on a random CLIP ViT-B-16
text tower (open_clip, pretrained=None) and a tiny sentence-transformers model written by the
test: shapes, the cache, the PCA against scikit-learn on features computed independently
(open_clip's own encode_text on the full 77 tokens; SentenceTransformer.encode), the same
table from two fresh builds, and the offline errors. Nothing is downloaded."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA

from zss.data.splits import VOC_CLASSES
from zss.embeddings import TEXT_ENCODERS, build_text_class_embeddings
from zss.embeddings.text_build import class_texts, template_set, vocabulary
from zss.embeddings.text_encoders import TextSourceUnavailableError
from zss.runtime.run_record import tensor_sha256


def _max_norm(x):
    return x / np.linalg.norm(x, axis=1).max()


def _aligned(a, b):
    """b with each column's sign matched to a's (PCA axes are defined up to sign)."""
    return b * np.sign((a * b).sum(axis=0))


def _pca_reference(vocab, classes, dim):
    return _max_norm(PCA(dim, svd_solver="full").fit(vocab).transform(classes))


@pytest.fixture(scope="module")
def tiny_sentence_model(tmp_path_factory):
    """A 1-layer, 32-d BERT with a WordPiece vocabulary of letters, mean pooled, saved as a
    SentenceTransformer folder (random weights, seed 0)."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("sentence")
    raw, saved = root / "bert", root / "model"
    raw.mkdir()
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", *string.ascii_lowercase,
             *(f"##{c}" for c in string.ascii_lowercase)]
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=128)).save_pretrained(raw)
    BertTokenizerFast(vocab={t: i for i, t in enumerate(vocab)}).save_pretrained(raw)
    modules = [Transformer(str(raw), max_seq_length=64), Pooling(32, "mean")]
    SentenceTransformer(modules=modules, device="cpu").save(str(saved))
    return saved


def test_clip_random_tower_pca_on_the_vocabulary_matches_sklearn(tmp_path):
    import open_clip

    classes = ["background", "aeroplane", "diningtable", "pottedplant", "tvmonitor"]
    kw = dict(encoder="open_clip", model="ViT-B-16", pretrained=None, templates="photo",
              pca_vocab=24, cache_dir=tmp_path)
    emb = build_text_class_embeddings(classes, dim=20, **kw)
    assert emb.shape == (5, 20) and emb.dtype == np.float32
    assert np.isclose(np.linalg.norm(emb, axis=1).max(), 1.0)

    # independently: the library's encode_text on full-length tokens, sklearn's PCA
    torch.manual_seed(0)
    net = open_clip.create_model("ViT-B-16", pretrained=None).eval()
    tok = open_clip.get_tokenizer("ViT-B-16")
    words = vocabulary(24)
    assert len(words) == 24 and all(w.isalpha() for w in words) and "the" in words
    with torch.inference_mode():
        vocab = net.encode_text(tok([f"a photo of a {w}." for w in words]), normalize=True)
        cls = net.encode_text(tok([f"a photo of a {t}." for t in class_texts(classes)]),
                              normalize=True)
    ref = _pca_reference(vocab.numpy(), cls.numpy(), 20)
    np.testing.assert_allclose(_aligned(ref, emb), ref, atol=2e-4)
    # the full width keeps the features (no PCA): max-norm of the unit class features
    full = build_text_class_embeddings(classes, dim=512, **kw)
    np.testing.assert_allclose(full, cls.numpy(), atol=2e-5)
    # two fresh builds (no shared cache) give the same table
    again = build_text_class_embeddings(classes, dim=20, **{**kw, "cache_dir": None})
    assert tensor_sha256(torch.from_numpy(again)) == tensor_sha256(torch.from_numpy(emb))


def test_sentence_model_templates_averaged_pca_and_cache(tmp_path, tiny_sentence_model,
                                                         monkeypatch):
    from sentence_transformers import SentenceTransformer

    kw = dict(encoder="sentence_transformers", model=str(tiny_sentence_model),
              templates="clip_imagenet_7", pca_vocab=100, cache_dir=tmp_path)
    emb = build_text_class_embeddings(VOC_CLASSES, dim=10, **kw)
    assert emb.shape == (21, 10)

    st = SentenceTransformer(str(tiny_sentence_model), device="cpu")
    prompts = template_set("clip_imagenet_7")
    assert len(prompts) == 7 and prompts[0] == "itap of a {}."
    cls = []
    for text in class_texts(VOC_CLASSES):
        f = st.encode([t.format(text) for t in prompts], normalize_embeddings=True).mean(0)
        cls.append(f / np.linalg.norm(f))
    vocab = st.encode([f"a photo of a {w}." for w in vocabulary(100)],
                      normalize_embeddings=True)
    ref = _pca_reference(vocab, np.stack(cls), 10)
    np.testing.assert_allclose(_aligned(ref, emb), ref, atol=1e-4)
    assert class_texts(["tvmonitor", "pottedplant"]) == ["tv monitor", "potted plant"]

    # cached: the table and the features; the encoder is not loaded again
    files = {p.name for p in tmp_path.iterdir()}
    assert len([f for f in files if f.startswith("textemb-")]) == 1
    assert len([f for f in files if f.startswith("textfeat-")]) == 2  # classes, vocabulary
    enc = TEXT_ENCODERS["sentence_transformers"]

    def no_load(*_):
        raise AssertionError("the encoder was loaded for a cached table")

    monkeypatch.setitem(TEXT_ENCODERS, "sentence_transformers",
                        type(enc)(enc.name, no_load, enc.encode, enc.versions))
    np.testing.assert_array_equal(build_text_class_embeddings(VOC_CLASSES, dim=10, **kw), emb)
    # another j: a new table from the cached features (still no encoder)
    assert build_text_class_embeddings(VOC_CLASSES, dim=32, **kw).shape == (21, 32)
    # other templates: a new key, the encoder runs again
    with pytest.raises(AssertionError, match="was loaded"):
        build_text_class_embeddings(VOC_CLASSES, dim=10, **{**kw, "templates": "photo"})
    assert len(list(tmp_path.glob("textemb-*.npy"))) == 2


def test_a_missing_model_offline_is_a_zss_error_naming_the_fetch_command(tmp_path,
                                                                          monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(TextSourceUnavailableError,
                       match="python -m zss.data.prepare weights --only clip-vit-b-16-openai"):
        TEXT_ENCODERS["open_clip"].load("ViT-B-16", "openai")
    with pytest.raises(TextSourceUnavailableError, match="sentence-all-minilm-l6-v2"):
        TEXT_ENCODERS["sentence_transformers"].load(
            "sentence-transformers/all-MiniLM-L6-v2", None)
