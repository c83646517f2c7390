"""A stage-1 checkpoint given to a run (``stage1_ckpt=...``): load it, and refuse a config
that contradicts it.

What a checkpoint was trained with travels in its hyper-parameters: the split, j, the
backbone and its weight source (which fixes the input preprocessing, docs/method.md), and the
source of its class embeddings (its vectors are a buffer of the checkpoint). A run that
continues from it uses all of these from the checkpoint, never from the config; a config
that says otherwise is an error naming every difference, so that no run silently evaluates
a Caffe-weights model with ImageNet preprocessing (the ~5 mIoU trap) or reports another
embedding source than the one it used.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from zss.data.protocols import Protocol
from zss.data.splits import ClassSplit
from zss.embeddings import PUBLISHED
from zss.embeddings.published import file_sha256
from zss.embeddings.text_encoders import describe
from zss.models import BACKBONES, preprocessing_for_backbone
from zss.runtime.errors import ConfigError
from zss.stages import Stage1Module


def embedding_source(cfg: DictConfig) -> str | None:
    """The class-embedding source a config names: a published table's name and sha256
    (:func:`published_source`), a text encoder's model, weights and templates
    (:func:`zss.embeddings.text_encoders.describe`), the ``embedding.source`` (word vectors) or the
    ``embedding.path`` (a table file), as an absolute path when it names an existing file;
    None for FCN-S (no class vectors)."""
    if cfg.model.variant != "fcn_je":
        return None
    e = cfg.embedding
    if e.get("name") in PUBLISHED:
        return published_source(e.name)
    if e.get("encoder") is not None:  # a text encoder (zss.embeddings.text_build)
        return describe(e.encoder, e.model, e.get("pretrained"), e.get("templates"))
    source = str(e.get("source") or e.get("path"))
    path = Path(source).expanduser()
    return str(path.resolve()) if path.is_file() else source


def published_source(name: str) -> str:
    """How a run records a published table: its name and sha256 (the same table wherever
    it was read from)."""
    return f"{name} (published table, sha256 {PUBLISHED[name].sha256})"


def _content(source: str) -> str | None:
    """The sha256 a source stands for: a published table's, or an existing file's."""
    name = source.split(" (published table", 1)[0]
    if source != name and name in PUBLISHED:
        return PUBLISHED[name].sha256
    path = Path(source).expanduser()
    return file_sha256(path) if path.is_file() else None


def same_source(a: str | None, b: str | None) -> bool:
    """Whether two embedding sources are the same: equal descriptions, or the same content
    (a table that was copied or moved, or a file that is a published table, is that
    table)."""
    if a == b:
        return True
    if a is None or b is None:
        return False
    digest = _content(a)
    return digest is not None and digest == _content(b)


def _backbone_defaults(name: str | None) -> dict[str, Any]:
    """The keyword defaults of backbone ``name``'s constructor ({} for an unknown name)."""
    if name not in BACKBONES:
        return {}
    params = inspect.signature(BACKBONES[name].cls).parameters.values()
    # a tuple default compares as the list a config gives
    return {p.name: list(p.default) if isinstance(p.default, tuple) else p.default
            for p in params if p.default is not inspect.Parameter.empty}


def config_conflicts(hparams: Any, cfg: DictConfig, split: ClassSplit) -> list[str]:
    """What a config says differently from a checkpoint's hyper-parameters.

    Compared: the split (its name, class list and three sets), the variant, j, the backbone
    architecture (``model.backbone`` without its weights), the input preprocessing (from
    ``model.backbone.weights`` / ``weights_format``) and the class-embedding source. A
    checkpoint without an ``embedding_source`` (written before it was recorded) is not
    compared on it.

    Returns:
        one line per difference, naming the config key, the checkpoint's value and the
        config's; empty when they agree.
    """
    problems = []
    trained = ClassSplit(**hparams["split"])
    if trained != split:
        fields = []
        for field in ("class_names", "train_seen", "train_unseen", "unseen"):
            a, b = getattr(trained, field), getattr(split, field)
            if a == b:
                continue
            only_a = [n for n in a if n not in b]
            only_b = [n for n in b if n not in a]
            fields.append(f"{field}: only the checkpoint's has {only_a}, only the config's "
                          f"{only_b}" if (only_a or only_b) else f"{field}: another order")
        problems.append(f"split: the checkpoint was trained for '{trained.name}', the config "
                        f"gives '{split.name}'" + (f" ({'; '.join(fields)})" if fields else ""))
    if hparams["variant"] != cfg.model.variant:
        problems.append(f"model.variant: checkpoint {hparams['variant']}, config "
                        f"{cfg.model.variant}")
    if hparams["variant"] == "fcn_je" and hparams["embed_dim"] != cfg.model.embed_dim:
        problems.append(f"model.embed_dim (j): checkpoint {hparams['embed_dim']}, config "
                        f"{cfg.model.embed_dim}")
    backbone = dict(hparams["backbone"])
    config_backbone = OmegaConf.to_container(cfg.model.backbone)
    # a key one side lacks has its backbone's default (e.g. a checkpoint from before the key);
    # each side its own backbone's, so that two backbones differ in every key they set
    backbone_args = {**_backbone_defaults(backbone.get("name")), **backbone}
    config_args = {**_backbone_defaults(config_backbone.get("name")), **config_backbone}
    for key in sorted((set(backbone_args) | set(config_args)) - {"weights", "weights_format"}):
        if backbone_args.get(key) != config_args.get(key):
            problems.append(f"model.backbone.{key}: checkpoint {backbone_args.get(key)!r}, "
                            f"config {config_args.get(key)!r}")
    if preprocessing_for_backbone(backbone) != preprocessing_for_backbone(config_backbone):
        problems.append(
            f"model.backbone.weights: the checkpoint was trained from weights "
            f"{backbone.get('weights')!r} (format {backbone.get('weights_format')!r}), whose "
            f"preprocessing is {preprocessing_for_backbone(backbone)}; the config names "
            f"{config_backbone.get('weights')!r} (format "
            f"{config_backbone.get('weights_format')!r}), i.e. "
            f"{preprocessing_for_backbone(config_backbone)}")
    trained_protocol = Protocol.recorded(hparams.get("protocol"))
    wanted = Protocol(**(cfg.get("protocol") or {}))
    if trained_protocol != wanted:
        problems.append(f"protocol: the checkpoint was trained under "
                        f"{trained_protocol.as_dict()}, the config gives {wanted.as_dict()} "
                        f"(pass protocol={trained_protocol.name})")
    trained_source = hparams.get("embedding_source")
    if trained_source is not None and not same_source(trained_source, embedding_source(cfg)):
        problems.append(f"embedding: the checkpoint's class vectors come from "
                        f"{trained_source!r}, the config names {embedding_source(cfg)!r}")
    return problems


_WHICH_FILE = ("pass the stage1-<epoch>.ckpt of a zss run: its checkpoints/stage1/ folder "
               "(metrics.json names it as stage1_ckpt), or run stage 1 (stages=[stage1,stage2,"
               "test])")


def not_a_stage1_checkpoint(path: Path) -> str | None:
    """Why ``path`` is not a zss stage-1 checkpoint (for the error message), or None when it
    is one (a file Lightning wrote for :class:`~zss.stages.Stage1Module`)."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch and pickle raise many types for a file they cannot read
        return (f"cannot be read as a PyTorch checkpoint ({type(err).__name__}: {err}): the "
                "file is empty, cut short (an interrupted copy?) or not a checkpoint")
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        keys = sorted(map(str, ckpt)) if isinstance(ckpt, dict) else []
        what = (f"its keys are {', '.join(keys[:3])}{', …' if len(keys) > 3 else ''}"
                if isinstance(ckpt, dict) else f"it holds a {type(ckpt).__name__}")
        return (f"is a PyTorch file but not a Lightning checkpoint ({what}; a plain state "
                "dict or model file is not enough: zss reads its split, backbone and class "
                "vectors from the checkpoint)")
    hparams = ckpt.get("hyper_parameters") or {}
    missing = [k for k in ("split", "backbone", "variant") if k not in hparams]
    if missing:
        return (f"is a Lightning checkpoint of another model (its hyper-parameters lack "
                f"{missing}), not of zss")
    if hparams.get("seenmask"):
        return ("is a zss stage-2 (seenmask) checkpoint; stage 2 and test start from the "
                "stage-1 one (checkpoints/stage1/ of the same run)")
    return None


def load_stage1(path: str | Path, cfg: DictConfig, split: ClassSplit) -> Stage1Module:
    """Load a stage-1 checkpoint for a run whose config must agree with it.

    Args:
        path: the ``.ckpt`` file (``stage1_ckpt``).
        cfg: the run's config; split: its class split.

    Returns:
        the :class:`~zss.stages.Stage1Module` on the CPU, with the checkpoint's class
        vectors, backbone config (so its preprocessing) and embedding source.

    Raises:
        FileNotFoundError: the file does not exist.
        ConfigError: the config contradicts the checkpoint (every difference named, with the
            overrides to fix it), or the file is not a zss stage-1 checkpoint (unreadable or
            cut short, a plain state dict, another model's or a stage-2 checkpoint: said
            which, :func:`not_a_stage1_checkpoint`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"stage1_ckpt {str(path)!r} does not exist; {_WHICH_FILE}")
    try:
        module = Stage1Module.load_from_checkpoint(path, map_location="cpu")
    except Exception as err:
        problem = not_a_stage1_checkpoint(path)
        if problem is None:  # a stage-1 checkpoint of zss that fails to load: not the input
            raise
        raise ConfigError(f"stage1_ckpt {str(path)!r} {problem}; {_WHICH_FILE}") from err
    problems = config_conflicts(module.hparams, cfg, split)
    if problems:
        raise ConfigError(
            f"stage1_ckpt {str(path)!r} contradicts the config:\n  - " + "\n  - ".join(problems)
            + "\nA run continues with what the checkpoint was trained with: pass the "
            "+experiment and overrides it was trained with (see config.yaml in the run "
            "directory that holds its checkpoints/stage1/ folder), or another checkpoint.")
    return module
