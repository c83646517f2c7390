"""What a run sets up before anything trains: the stages it runs, the data (every file
read and checked, the held-out images drawn or taken from a stage-1 checkpoint) and the
model (new, or a stage-1 checkpoint's), in that order, so that bad data fails before weights
or class-vector tables are fetched."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zss.data.files import DataError
from zss.data.protocols import Protocol
from zss.data.splits import ClassSplit, SplitError
from zss.models import Preprocessing, load_pretrained, preprocessing_for_backbone
from zss.runtime.errors import ConfigError
from zss.runtime.stage1_checkpoint import embedding_source, load_stage1
from zss.stages import Stage1Module

log = logging.getLogger("zss")

STAGES = ("stage1", "stage2", "test")
"""What ``stages`` may list, in the order a run runs them."""


@dataclass
class Setup:
    """What :func:`prepare` gives the runner.

    Attributes:
        module: the stage-1 model: new (its pretrained weights loaded) or the checkpoint's.
        dm: the data module, set up (every image and label of both lists read and checked).
        backbone: the backbone config the model was built from (a checkpoint's own).
        preprocessing: its input normalisation (the checkpoint's, never the config's).
        training: whether the run trains a stage.
    """

    module: L.LightningModule
    dm: Any
    backbone: dict[str, Any]
    preprocessing: Preprocessing
    training: bool


def prepare(cfg: DictConfig, split: ClassSplit, stages: list[str], protocol: Protocol,
            meta: dict[str, Any]) -> Setup:
    """Set the data and the model up (see the module docstring); records the class set, the
    image counts, the held-out images and a given checkpoint in ``meta``.

    Raises:
        DataError, SplitError, ConfigError: bad data (every missing file named at once), a
            test list that shares images with the training list, a stage without held-out
            images, a checkpoint that contradicts the config.
    """
    module: L.LightningModule | None = None
    training = bool({"stage1", "stage2"} & set(stages))
    heldout_ids = None
    if "stage1" in stages:  # a weights file of unknown format fails before anything is read
        backbone = OmegaConf.to_container(cfg.model.backbone)
    else:
        module = load_stage1(cfg.stage1_ckpt, cfg, split)
        meta["stage1_ckpt"] = str(Path(cfg.stage1_ckpt).expanduser().resolve())
        backbone = dict(module.hparams.backbone)
        heldout_ids = checkpoint_heldout(module, training)
    preprocessing = preprocessing_for_backbone(backbone)  # a checkpoint's, never the config's
    # the data first: a missing folder or list fails before weights or tables are fetched;
    # objects go in after instantiation (Hydra would turn a dataclass argument into a config)
    dm = instantiate(cfg.data, _partial_=True)(split=split, protocol=protocol,  # the module normalises
                                               heldout_ids=heldout_ids)
    setup_data(dm, training)
    class_set = dm.class_set or split_classes(cfg)
    meta["class_set"] = class_set
    log.info("class set %s (%d classes); split %s: train_seen %d, train_unseen %d, unseen %d",
             class_set, split.num_classes, split.name, len(split.train_seen),
             len(split.train_unseen), len(split.unseen))
    if training:
        check_no_overlap(dm)
        for stage in ("stage1", "stage2"):
            if stage in stages:
                dm.require_holdout(stage)
        log.info(dm.describe())
        meta["images"] = dm.summary()
        meta["heldout"] = heldout_meta(dm, module)
    if module is None:
        module = new_stage1(cfg, split, protocol)
        if training:
            module.heldout = dm.heldout_record()  # saved with its checkpoints
    log.info("class embeddings: %s; input preprocessing: %s (weights %s)",
             module.hparams.get("embedding_source"), preprocessing, backbone.get("weights"))
    return Setup(module, dm, backbone, preprocessing, training)


def check_no_overlap(dm) -> None:
    """Refuse a test list that shares images with the training list.

    Raises:
        SplitError: naming how many and a few, and the lists the paper pairs.
    """
    overlap = dm.train_test_overlap()
    if overlap:
        raise SplitError(
            f"{len(overlap)} of the {dm.summary()['test']} test images ('{dm.test_set}') "
            f"are also in the training list '{dm.train_set}' (e.g. {overlap[:3]}): a model "
            "must never be evaluated on images it was trained on. Pair the lists the "
            "paper pairs -- sbd_train with seg11valid (SBD train holds VOC 2012 val "
            "images), train_aug or VOC train with VOC val.")


def split_dict(split: ClassSplit) -> dict[str, Any]:
    """A split as plain data, as the stage modules keep it in their hyper-parameters."""
    return {"name": split.name, "class_names": list(split.class_names),
            "train_seen": list(split.train_seen), "train_unseen": list(split.train_unseen),
            "unseen": list(split.unseen)}


def check_stages(cfg: DictConfig, split: ClassSplit) -> list[str]:
    """The configured stages, checked before anything trains.

    Raises:
        ConfigError: an unknown stage; stage 2 for FCN-S or on a split without train_unseen
            classes; stage 2 or test with neither stage 1 nor ``stage1_ckpt``.
    """
    stages = list(cfg.stages)
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"stages lists unknown stages {unknown}; use some of {list(STAGES)}")
    if "stage2" in stages:
        if cfg.model.variant != "fcn_je":
            raise ConfigError(f"stage2 (the seenmask) needs model.variant=fcn_je, got "
                              f"{cfg.model.variant}: drop stage2 (stages=[stage1,test])")
        if not split.train_unseen:
            raise ConfigError(f"stage2 trains the seenmask on train_unseen pixels, and split "
                              f"'{split.name}' has no train_unseen class: drop stage2 "
                              "(stages=[stage1,test]) or use a split with train_unseen classes")
    if "stage1" not in stages and not cfg.stage1_ckpt and ({"stage2", "test"} & set(stages)):
        raise ConfigError("stage2 and test need a stage-1 model: add stage1 to `stages` or set "
                          "stage1_ckpt=/path/to/stage1.ckpt")
    return stages


def check_accelerator(cfg: DictConfig) -> None:
    """Refuse a GPU trainer (``trainer=gpu`` / ``trainer=ddp``) on a machine without CUDA,
    before anything is written, instead of Lightning's "No supported gpu backend found!"."""
    if cfg.trainer.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator} (trainer=gpu or trainer=ddp), but "
            "this machine has no CUDA GPU that torch can use (torch.cuda.is_available() is "
            "False). On a CPU use the default trainer (drop trainer=..., or "
            "trainer.accelerator=cpu trainer.precision=32-true); with a GPU, install a CUDA "
            "build of torch (make install TORCH_SPEC=...).")


PREPARE = {"zss.data.VOCSegmentation": "voc", "zss.data.ContextSegmentation": "context"}
"""The ``python -m zss.data.prepare`` dataset of each dataset class that reads a data root."""


def check_data_paths(cfg: DictConfig) -> None:
    """Check that the run's data root exists and has its dataset's layout (what
    ``dry_run=true`` checks before it says what the run would do; a real run finds the same
    when it reads the data). Datasets without a root (the generated demo data) pass.

    Raises:
        DataError: the root does not exist, naming the key that sets it (``paths.data_dir``,
            or ``data.dataset.root`` when set directly), the path as given and as resolved
            from the current working directory, and the ``python -m zss.data.prepare``
            command that gets the data; or the root lacks the dataset's layout
            (:func:`zss.data.datasets.voc.resolve_voc_root`,
            :func:`zss.data.datasets.context_labels.resolve_context_root`).
    """
    dataset = cfg.data.get("dataset") or {}
    if "root" not in dataset:
        return
    raw = OmegaConf.to_container(dataset, resolve=False)["root"]
    key = "paths.data_dir" if raw == "${paths.data_dir}" else "data.dataset.root"
    root = Path(str(dataset.root)).expanduser()
    target = dataset.get("_target_", "")
    name = PREPARE.get(target, "all")
    if not root.is_dir():
        extra = (" (and `python -m zss.data.prepare sbd --root DIR` for "
                 f"data.train_set={cfg.data.train_set})"
                 if name == "voc" and cfg.data.get("train_set") in ("sbd_train", "train_aug")
                 else "")
        raise DataError(
            f"{key}={root}: the data folder {root.resolve()} does not exist (a relative path "
            f"is taken from the directory python -m zss.run starts in, here {Path.cwd()}). "
            f"Get the data with `python -m zss.data.prepare {name} --root DIR`{extra} "
            f"(docs/data.md) and run with {key}=DIR as an absolute path, or start the run "
            "from the directory the relative path is meant from.")
    if name == "voc":
        from zss.data.datasets.voc import resolve_voc_root

        resolve_voc_root(root)
    elif name == "context":
        from zss.data.datasets.context_labels import resolve_context_root

        resolve_context_root(root)


def split_classes(cfg: DictConfig) -> str:
    """The name of the split's class list (``split.classes``), or ``"custom"`` for a list."""
    classes = cfg.split.classes
    return classes if isinstance(classes, str) else "custom"


def setup_data(dm, training: bool) -> None:
    """Set up the test set and, for training, the training set; report every missing
    file of both in one error rather than one per run."""
    errors = []
    for part in ("test", "fit") if training else ("test",):
        try:
            dm.setup(part)
        except DataError as err:
            errors.append(str(err))
    if errors:  # (a missing root fails both parts with one message: said once)
        raise DataError("\n".join(dict.fromkeys(errors)))


def new_stage1(cfg: DictConfig, split: ClassSplit, protocol: Protocol) -> Stage1Module:
    """A new stage-1 module of the config: its class vectors built or read (``embedding``),
    its backbone's pretrained weights loaded."""
    class_embeddings = None
    if cfg.model.variant == "fcn_je":
        emb = instantiate(cfg.embedding, class_names=list(split.class_names))
        class_embeddings = torch.as_tensor(emb, dtype=torch.float32)
    module = Stage1Module(
        split=split_dict(split), backbone=OmegaConf.to_container(cfg.model.backbone),
        embed_dim=cfg.model.embed_dim, class_embeddings=class_embeddings,
        variant=cfg.model.variant, loss=cfg.model.loss,
        optimizer=OmegaConf.to_container(cfg.optimizer), embedding_source=embedding_source(cfg),
        protocol=protocol.as_dict())
    load_pretrained(module.net.backbone, cfg.model.backbone.weights)
    return module


def checkpoint_heldout(module: L.LightningModule, training: bool) -> list[str] | None:
    """The held-out image ids a stage-1 checkpoint recorded, for the run that continues from
    it (None for a checkpoint written before they were recorded: then said, and drawn)."""
    if module.heldout is not None:
        return list(module.heldout["ids"])
    if training:
        log.warning("the stage-1 checkpoint does not record its held-out images (it was "
                    "written before zss recorded them): they are drawn again with this run's "
                    "data.seed and data.holdout_fraction; unless these are the values stage 1 "
                    "was trained with, images stage 1 trained on can be among those that "
                    "choose the seenmask checkpoint and tune the gates")
    return None


def heldout_meta(dm, module: L.LightningModule | None) -> dict[str, Any]:
    """What ``metrics.json`` records of the held-out images (and the line the log says)."""
    record = dm.heldout_record()
    ids = record.pop("ids")
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()
    if record["from_checkpoint"]:
        recorded = module.heldout
        log.info("stage 2 and the gate tuning use the %d held-out images from the checkpoint "
                 "(%d recorded there, drawn from '%s' with seed %s, fraction %s); this run's "
                 "data.seed / data.holdout_fraction do not apply to them", len(ids),
                 len(recorded["ids"]), recorded["train_set"], recorded["seed"],
                 recorded["fraction"])
        record.update(train_set=recorded["train_set"], seed=recorded["seed"],
                      fraction=recorded["fraction"])
    return {**record, "images": len(ids), "ids_sha256": digest}
