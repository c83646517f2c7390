"""Text encoders as class-embedding sources, a registry (:data:`TEXT_ENCODERS`): a CLIP text
tower through open_clip (``"open_clip"``) and a sentence encoder through sentence-transformers
(``"sentence_transformers"``). Both give L2-normalised text features of prompts; the
class-embedding recipe on top of them (:func:`zss.embeddings.text_build.build_text_class_embeddings`:
prompt templates, PCA to j on a vocabulary, normalisation, cache) is the same for all.

Features are computed on the CPU in float32, so a table is the same on every machine for the
same library versions (they are part of the cache key). The default models are registered in
:mod:`zss.runtime.prefetch` (``clip-vit-b-16-openai``, ``sentence-all-minilm-l6-v2``), so
``python -m zss.data.prepare weights`` brings them into the libraries' own caches (Hugging
Face's ``HF_HOME``) ahead of runs without network.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from zss.runtime.errors import EmbeddingError
from zss.runtime.prefetch import Prefetch, prepare_command, register_prefetch

log = logging.getLogger(__name__)

CLIP_DEFAULT = ("ViT-B-16", "openai")
SENTENCE_DEFAULT = "sentence-transformers/all-MiniLM-L6-v2"
_BATCH = 256


class TextSourceUnavailableError(EmbeddingError, RuntimeError):
    """Text-encoder weights that are neither in the library's cache nor downloadable."""


@dataclass(frozen=True)
class TextEncoder:
    """A kind of text encoder.

    Attributes:
        name: the ``embedding.encoder`` value that selects it.
        load: ``(model, pretrained) -> handle``; raises :class:`EmbeddingError` for an unknown
            model or tag and :class:`TextSourceUnavailableError` for weights it cannot fetch.
        encode: ``(handle, texts) -> float32 (len(texts), D)``, every row of unit L2 norm.
        versions: ``() -> {package: version}`` of the libraries whose code gives the features
            (part of the cache key).
    """

    name: str
    load: Callable[[str, str | None], Any]
    encode: Callable[[Any, Sequence[str]], np.ndarray]
    versions: Callable[[], dict[str, str]]


TEXT_ENCODERS: dict[str, TextEncoder] = {}
"""The registered encoders by ``embedding.encoder`` name."""


def _versions(*packages: str) -> dict[str, str]:
    out = {}
    for p in packages:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


# ---- open_clip -------------------------------------------------------------------------------
def _clip_prefetch_name(model: str, tag: str | None) -> str:
    return f"clip-{model}-{tag}".lower()


def _load_clip(model: str, pretrained: str | None) -> tuple[Any, Any]:
    """(model, tokenizer) of open_clip ``model`` with weights ``pretrained`` (a tag of
    ``open_clip.list_pretrained_tags_by_model(model)``, a local checkpoint file, or None for
    random weights), in eval mode on the CPU."""
    import open_clip

    if model not in open_clip.list_models():
        raise EmbeddingError(
            f"embedding.model={model!r} is no open_clip model. Use one of "
            "open_clip.list_models(), e.g. ViT-B-16, ViT-B-32, ViT-L-14.")
    tags = open_clip.list_pretrained_tags_by_model(model)
    if pretrained is not None and pretrained not in tags and not Path(pretrained).is_file():
        raise EmbeddingError(
            f"embedding.pretrained={pretrained!r} is no open_clip tag of {model} (tags: "
            f"{', '.join(tags) or 'none'}) and no checkpoint file. Set embedding.pretrained to "
            "one of them, to a checkpoint path, or to null for a random tower (a pipeline "
            "check only: its vectors mean nothing).")
    if pretrained is None:
        log.warning("embedding.pretrained=null: the %s text tower has random weights; its class "
                    "vectors carry no meaning (a pipeline check)", model)
    import torch

    try:
        with torch.random.fork_rng(devices=[]), _quiet_root_logger():
            torch.manual_seed(0)  # a random tower: the same one every time
            net = open_clip.create_model(model, pretrained=pretrained, device="cpu")
            tokenizer = open_clip.get_tokenizer(model)
    except (RuntimeError, OSError) as err:
        fetch = (prepare_command(_clip_prefetch_name(*CLIP_DEFAULT))
                 if (model, pretrained) == CLIP_DEFAULT else
                 "run once on a machine with network, or set embedding.pretrained to a "
                 "checkpoint file")
        raise TextSourceUnavailableError(
            f"cannot load the open_clip weights {model} / {pretrained}: not in the Hugging "
            f"Face cache (HF_HOME, default ~/.cache/huggingface) and not downloadable "
            f"({type(err).__name__}: {err}). Fetch them ahead: {fetch}."
        ) from err
    return net.eval(), tokenizer


@contextlib.contextmanager
def _quiet_root_logger():
    """open_clip reports each step of building a model at INFO on the *root* logger (ten lines
    per run under Hydra's logging); keep only its warnings while it builds."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        yield
    finally:
        root.setLevel(level)


def _encode_clip(handle: tuple[Any, Any], texts: Sequence[str]) -> np.ndarray:
    """Unit-norm CLIP text features, float32 (N, D).

    A standard CLIP text tower (open_clip's ``CLIP`` class with a causal attention mask,
    pooled at the end-of-text token: ``text_pool_type`` ``argmax`` or ``eos``) is run on each batch cut to its longest prompt: the padding after the
    end-of-text token cannot reach it through causal attention, so the features equal
    ``encode_text`` on the full 77 tokens (to float rounding) at a fraction of the cost. Other
    towers (``CustomTextCLIP``) go through ``encode_text`` as they are.
    """
    import torch
    from open_clip.model import CLIP
    from open_clip.transformer import text_global_pool

    net, tokenizer = handle
    causal = (isinstance(net, CLIP) and getattr(net, "attn_mask", None) is not None
              and net.text_pool_type in ("argmax", "eos"))
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), _BATCH):
            tokens = tokenizer(list(texts[i:i + _BATCH]))
            if not causal:
                out.append(net.encode_text(tokens).float().numpy())
                continue
            n = int((tokens != getattr(tokenizer, "pad_id", 0)).sum(1).max())
            tokens = tokens[:, :n]
            cast = net.transformer.get_cast_dtype()
            x = net.token_embedding(tokens).to(cast) + net.positional_embedding[:n].to(cast)
            x = net.ln_final(net.transformer(x, attn_mask=net.attn_mask[:n, :n]))
            x = text_global_pool(x, tokens, net.text_pool_type,
                                 eos_token_id=getattr(net, "text_eos_id", None))
            if isinstance(net.text_projection, torch.nn.Linear):
                x = net.text_projection(x)
            elif net.text_projection is not None:
                x = x @ net.text_projection
            out.append(x.float().numpy())
    return _unit(np.concatenate(out))


TEXT_ENCODERS["open_clip"] = TextEncoder(
    "open_clip", _load_clip, _encode_clip,
    lambda: _versions("open_clip_torch", "torch"))


# ---- sentence-transformers ---------------------------------------------------------------------
def _load_sentence(model: str, pretrained: str | None) -> Any:
    """A SentenceTransformer ``model`` (a Hugging Face name or a saved model's folder) on the
    CPU; ``pretrained`` must be None (its weights are the model's own)."""
    if pretrained is not None:
        raise EmbeddingError(
            f"embedding.pretrained={pretrained!r} means nothing for a sentence-transformers "
            "model, whose weights come with embedding.model: set embedding.pretrained=null.")
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model, device="cpu")
    except OSError as err:
        hint = (prepare_command(_sentence_prefetch_name(model)) if model == SENTENCE_DEFAULT
                else "run once on a machine with network (HF_HOME, default ~/.cache/huggingface)")
        raise TextSourceUnavailableError(
            f"cannot load the sentence-transformers model embedding.model={model!r}: no such "
            f"folder, not in the Hugging Face cache and not downloadable ({type(err).__name__}: "
            f"{err}). Fetch it ahead: {hint}; or set embedding.model to a saved "
            "model's folder.") from err


def _encode_sentence(model: Any, texts: Sequence[str]) -> np.ndarray:
    return _unit(model.encode(list(texts), batch_size=_BATCH, normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False))


def _sentence_prefetch_name(model: str) -> str:
    return "sentence-" + model.rsplit("/", 1)[-1].lower()


TEXT_ENCODERS["sentence_transformers"] = TextEncoder(
    "sentence_transformers", _load_sentence, _encode_sentence,
    lambda: _versions("sentence-transformers", "transformers", "torch"))


def describe(encoder: str, model: str, pretrained: str | None, templates: str) -> str:
    """How a run records a text-encoder source (``embedding_source`` in ``metrics.json``),
    e.g. ``open_clip:ViT-B-16 pretrained=openai templates=clip_imagenet_80``; a model or
    checkpoint that is a local path is given absolute."""
    def absolute(p: str | None) -> str | None:
        return str(Path(p).expanduser().resolve()) if p and Path(p).expanduser().exists() else p
    text = f"{encoder}:{absolute(model)}"
    if encoder != "sentence_transformers":
        text += f" pretrained={absolute(pretrained)}"
    return f"{text} templates={templates}"


# ---- prefetch: the default models, for `python -m zss.data.prepare weights` ---------------------
def _fetch_clip(cache_dir: Path) -> list[Path]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(*CLIP_DEFAULT)
    return [Path(open_clip.download_pretrained(cfg))]


def _fetch_sentence(cache_dir: Path) -> list[Path]:
    from huggingface_hub import snapshot_download

    # the files SentenceTransformer reads (the repository also holds ONNX/OpenVINO/TF copies)
    return [Path(snapshot_download(SENTENCE_DEFAULT, ignore_patterns=[
        "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "pytorch_model.bin", "tf_*"]))]


register_prefetch(Prefetch(
    _clip_prefetch_name(*CLIP_DEFAULT),
    "CLIP ViT-B/16 (OpenAI weights, open_clip) for embedding=clip_vit_b16: ~600 MB into "
    "HF_HOME", _fetch_clip))
register_prefetch(Prefetch(
    _sentence_prefetch_name(SENTENCE_DEFAULT),
    "sentence-transformers all-MiniLM-L6-v2 for embedding=sentence_minilm: ~90 MB into "
    "HF_HOME", _fetch_sentence))
