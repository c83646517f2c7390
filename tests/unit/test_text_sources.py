"""The text-encoder sources' configs and records (no encoder is run): what metrics.json calls
them, the widths of the source ablation, the prefetch entries of the default models, and the
errors of a wrong model, tag or key."""

from __future__ import annotations

import pytest

from tests.helpers import compose
from zss.runtime.errors import EmbeddingError


def test_metrics_json_names_the_encoder_its_weights_and_templates():
    from zss.runtime.stage1_checkpoint import embedding_source

    cfg = compose("embedding=clip_vit_b16")
    assert embedding_source(cfg) == "open_clip:ViT-B-16 pretrained=openai templates=clip_imagenet_80"
    cfg = compose("embedding=clip_vit_b16", "embedding.pretrained=null")
    assert embedding_source(cfg) == "open_clip:ViT-B-16 pretrained=None templates=clip_imagenet_80"
    cfg = compose("embedding=sentence_minilm")
    assert embedding_source(cfg) == ("sentence_transformers:sentence-transformers/"
                                     "all-MiniLM-L6-v2 templates=clip_imagenet_80")


def test_the_source_ablation_widths_are_the_sources_widths():
    import open_clip
    import yaml

    from tests.helpers import REPO

    exp = yaml.safe_load((REPO / "conf/experiment/ablation_embedding_source.yaml").read_text())
    assert exp["hydra"]["sweeper"]["params"] == {
        "embedding": "word2vec,fasttext,glove_6b_50d,clip_vit_b16,sentence_minilm",
        "embedding_j": "j20,full"}
    widths = exp["embedding_width"]
    assert widths["clip_vit_b16"] == open_clip.get_model_config("ViT-B-16")["embed_dim"] == 512
    assert widths["glove_6b_50d"] == 50 and widths["word2vec"] == widths["fasttext"] == 300
    assert widths["sentence_minilm"] == 384  # all-MiniLM-L6-v2's hidden size (its model card)
    assert compose("embedding=fasttext").embedding.source == "fasttext-wiki-news-subwords-300"


def test_the_default_models_are_registered_for_prefetch():
    from zss.runtime.prefetch import PREFETCH

    assert {"clip-vit-b-16-openai", "sentence-all-minilm-l6-v2"} <= set(PREFETCH)


@pytest.mark.parametrize(("kw", "match"), [
    ({"model": "ViT-B-17"}, "no open_clip model"),
    ({"pretrained": "openia"}, "no open_clip tag of ViT-B-16 .tags: openai"),
    ({"encoder": "clip"}, "embedding.encoder='clip' is no text encoder"),
    ({"templates": "zegformer"}, "no template set"),
    ({"dim": 0}, "must be >= 1"),
])
def test_wrong_keys_are_zss_errors(kw, match):
    from zss.embeddings import build_text_class_embeddings

    args = {"encoder": "open_clip", "model": "ViT-B-16", "pretrained": None, "dim": 20,
            "pca_vocab": 30, **kw}
    with pytest.raises(EmbeddingError, match=match):
        build_text_class_embeddings(["cat", "dog"], **args)
