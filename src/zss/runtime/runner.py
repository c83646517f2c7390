"""The stage runner behind ``python -m zss.run``: stage 1, stage 2 and test, in order, and
the result files.

Stages (``stages`` key): ``stage1`` trains FCN-32s + head on train_seen images; ``stage2``
trains the seenmask head on the frozen stage-1 model; ``test`` evaluates every variant
(FCN-S, or FCN-JE, SZN and SZN-PS) on the test split, beside the gates SZN-thr, SZN-CS and
SZN-cos whose parameters were tuned first on stage 2's held-out training images
(:mod:`zss.evaluation.tuning`; runs that train and whose split has train_unseen classes). Without ``stage1`` the model comes from
``stage1_ckpt`` (:func:`zss.runtime.stage1_checkpoint.load_stage1`), whose preprocessing and class vectors
are used, never the config's.

Files in ``paths.output_dir`` (written by global rank 0 only, each atomically): ``config.yaml``
(resolved), ``checkpoints/<stage>/`` (the selected checkpoint and ``last.ckpt``, the full
training state), ``progress.json`` (finished stages), ``metrics.json``,
``per_class_iou.csv``, ``confusion_matrices.json``, ``tradeoff.png`` (the seen–unseen
curve of calibrated stacking on the test split, a test-set analysis; splits with U classes);
``visualize=N`` adds ``predictions.png``
(:mod:`zss.evaluation.predictions_plot`) and ``explain=true`` prints a reading of the table
(:mod:`zss.evaluation.reading`).

``resume=DIR`` (``python -m zss.run resume=DIR``, :mod:`zss.run`) continues the run in
``DIR``: finished stages are not run again, the interrupted one continues from its
``last.ckpt`` (:mod:`zss.runtime.checkpointing`), then the remaining stages run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from zss.data.files import DataError
from zss.data.protocols import Protocol
from zss.data.splits import ClassSplit, SplitError, split_from_config
from zss.evaluation.predictions_plot import save_test_predictions
from zss.evaluation.reading import explain, explain_gates, summary
from zss.evaluation.tables import format_table, table_csv
from zss.evaluation.tradeoff_plot import save_tradeoff_png
from zss.evaluation.tuning import OBJECTIVE, format_tuning, gates_for
from zss.inference.variants import title
from zss.models import load_pretrained, preprocessing_for_backbone
from zss.runtime.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    holds_a_run,
    read_progress,
    write_atomic,
    write_progress,
)
from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types
from zss.runtime.console import progress_callbacks, quiet_lightning
from zss.runtime.dashboards import WandbLogger
from zss.runtime.errors import ConfigError, EmbeddingDimensionError, user_error
from zss.runtime.launchers import cluster_plugins, scheduler_job
from zss.runtime.run_record import (
    machine,
    recorded_config,
    recorded_paths,
    run_status,
    tensor_sha256,
    write_failure,
)
from zss.runtime.stage1_checkpoint import embedding_source, load_stage1
from zss.stages import Stage1Module, Stage2Module
from zss.stages.gate_tuning import GateTuning
from zss.stages.stage1 import epochs_within_image_budget

log = logging.getLogger("zss")

STAGES = ("stage1", "stage2", "test")


def is_global_zero() -> bool:
    """Whether this process is global rank 0 (the one that writes the run's files); Lightning
    sets the rank from the environment at import and from the strategy once it is set up."""
    return rank_zero_only.rank == 0


def _split_dict(split: ClassSplit) -> dict[str, Any]:
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


def split_classes(cfg: DictConfig) -> str:
    """The name of the split's class list (``split.classes``), or ``"custom"`` for a list."""
    classes = cfg.split.classes
    return classes if isinstance(classes, str) else "custom"


def _setup_data(dm, training: bool) -> None:
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


def _new_stage1(cfg: DictConfig, split: ClassSplit, protocol: Protocol) -> Stage1Module:
    class_embeddings = None
    if cfg.model.variant == "fcn_je":
        emb = instantiate(cfg.embedding, class_names=list(split.class_names))
        class_embeddings = torch.as_tensor(emb, dtype=torch.float32)
    module = Stage1Module(
        split=_split_dict(split), backbone=OmegaConf.to_container(cfg.model.backbone),
        embed_dim=cfg.model.embed_dim, class_embeddings=class_embeddings,
        variant=cfg.model.variant, loss=cfg.model.loss,
        optimizer=OmegaConf.to_container(cfg.optimizer), embedding_source=embedding_source(cfg),
        protocol=protocol.as_dict())
    load_pretrained(module.net.backbone, cfg.model.backbone.weights)
    return module


def _trainer(cfg: DictConfig, stage: str, loggers: list, max_epochs: int) -> tuple[L.Trainer, Any]:
    ckpt = instantiate(cfg.callbacks[f"{stage}_checkpoint"])
    last = LastCheckpoint(Path(cfg.paths.output_dir) / "checkpoints" / stage,
                          cfg.get("last_ckpt_every_n_steps"))
    # the best checkpoint first: last.ckpt, written after it, carries its updated record
    progress, bar = progress_callbacks(stage, cfg.trainer)
    trainer = instantiate(cfg.trainer, max_epochs=max_epochs, callbacks=[ckpt, last, *progress],
                          logger=loggers or False,
                          plugins=[AtomicCheckpointIO(), *cluster_plugins()],
                          enable_progress_bar=bar)
    return trainer, ckpt


def _check_accelerator(cfg: DictConfig) -> None:
    """Refuse a GPU trainer (``trainer=gpu`` / ``trainer=ddp``) on a machine without CUDA,
    before anything is written, instead of Lightning's "No supported gpu backend found!"."""
    if cfg.trainer.get("accelerator") in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(
            f"trainer.accelerator={cfg.trainer.accelerator} (trainer=gpu or trainer=ddp), but "
            "this machine has no CUDA GPU that torch can use (torch.cuda.is_available() is "
            "False). On a CPU use the default trainer (drop trainer=..., or "
            "trainer.accelerator=cpu trainer.precision=32-true); with a GPU, install a CUDA "
            "build of torch (make install TORCH_SPEC=...).")


def _gpu_options(module: L.LightningModule, cfg: DictConfig) -> None:
    """``model.channels_last`` and ``model.compile`` (``trainer=gpu`` sets the first): how
    the module runs, not what it is, so never part of a checkpoint."""
    module.channels_last = bool(cfg.model.get("channels_last", False))
    module.compile_backbone = bool(cfg.model.get("compile", False))


def _fit(cfg: DictConfig, stage: str, module: L.LightningModule, dm, loggers: list,
         max_epochs: int, out: Path, progress: dict[str, Any]) -> str:
    """Train ``stage`` (from its ``last.ckpt`` when resuming and there is one); record it as
    finished in ``progress.json``, with the held-out validation score of the checkpoint it
    selected (its ``ModelCheckpoint``'s monitor, e.g. ``{"val/fcn_je/miou": 0.52}``, under
    ``scores``: a resumed run reports it for a stage finished before the resume); return the
    selected checkpoint."""
    trainer, ckpt = _trainer(cfg, stage, loggers, max_epochs)
    last = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
    module.leakage_guard = bool(cfg.get("leakage_guard", True))
    _gpu_options(module, cfg)
    dm.stage = stage
    resume_from = str(last.path) if cfg.get("resume") and last.path.is_file() else None
    if resume_from:
        log.info("%s: resuming from %s", stage, resume_from)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
    best = _best(ckpt)
    if resume_from:
        progress.setdefault("resumed", []).append({"stage": stage,
                                                   "from_step": last.resumed_step})
    progress.setdefault("completed", {})[stage] = best
    progress.setdefault("scores", {})[stage] = {ckpt.monitor: float(ckpt.best_model_score)}
    if is_global_zero():
        write_progress(out, progress)
    return best


def _resume_state(cfg: DictConfig, out: Path) -> dict[str, Any]:
    """The progress of the run that ``resume`` continues (checked), or ``{}`` for a new run.

    Raises:
        ConfigError: ``resume`` is not this run's directory, or the run already finished;
            a new run whose directory already holds a run.
    """
    resume = cfg.get("resume")
    if not resume:  # (rank 0 only: under DDP the other ranks start after it wrote)
        if is_global_zero() and holds_a_run(out):
            raise ConfigError(f"{out} already holds a run (config.yaml, checkpoints/): a new "
                              "run never writes into it; give the new run another "
                              f"hydra.run.dir (or, if it was killed, `python -m zss.run "
                              f"resume={out}`)")
        return {}
    if not Path(resume).is_dir() or Path(resume).resolve() != out.resolve():
        raise ConfigError(f"resume={resume}: not a run directory (resume with "
                          "`python -m zss.run resume=DIR`, DIR the folder of the run)")
    if run_status(out) == "finished":
        raise ConfigError(f"the run in {out} finished (its metrics.json has its results): "
                          "nothing to resume; start a new run instead")
    if is_global_zero():
        for tmp in out.glob("**/.*.tmp-*"):  # a write the kill interrupted
            tmp.unlink()
    return read_progress(out)


def _best(ckpt) -> str:
    """The selected checkpoint's path (its score is ``ckpt.best_model_score``)."""
    if not ckpt.best_model_path:
        raise RuntimeError(f"no checkpoint was saved (monitor '{ckpt.monitor}' never logged): "
                           "is the held-out part of the training images empty?")
    return ckpt.best_model_path


def train_and_test(cfg: DictConfig) -> dict[str, Any]:
    """Run the configured stages; return the scores under ``"metrics"`` plus run metadata, as
    written to ``metrics.json``. The scores are flat keys: ``val/<variant>/miou`` (stage 1) and
    ``val/seenmask/loss`` (stage 2), the held-out validation score of each trained stage's
    selected checkpoint; ``tune/<gate>/<parameter>`` and ``tune/<gate>/objective``, the
    gates tuned on held-out training images; ``test/<variant>/<metric>``, the test split.

    A run that stops with an error (or is interrupted, e.g. Ctrl-C) leaves a ``metrics.json``
    that says so (``status``: ``failed`` / ``interrupted``, ``error``: the reason), so that it
    cannot be mistaken for a finished run (:func:`zss.runtime.run_record.write_failure`); a refused
    run (a directory that holds another run) writes nothing. A sweep job whose j the
    embedding source cannot give (:class:`~zss.runtime.errors.EmbeddingDimensionError`) is
    ``skipped``: its ``metrics.json`` and the returned payload say so with the ``reason``.

    Raises:
        ConfigError, SplitError, DataError, FileNotFoundError: bad config or data (user
            errors, printed by ``zss.run`` as one paragraph).
    """
    quiet_lightning()
    out = Path(cfg.paths.output_dir)
    progress = _resume_state(cfg, out)
    meta: dict[str, Any] = {"status": "finished", "split": cfg.split.get("name"),
                            "seed": cfg.get("seed")}
    try:
        return _train_and_test(cfg, out, progress, meta)
    except BaseException as err:
        if isinstance(user_error(err), EmbeddingDimensionError) and in_sweep():
            # one j of a dimension sweep that the source cannot give: a result, not a crash
            reason = failure_message(err)
            log.warning("skipped: %s", reason)
            if is_global_zero():
                write_failure(out, "skipped", reason, meta)
            return {**meta, "status": "skipped", "reason": reason, "metrics": {}}
        if is_global_zero():
            interrupted = isinstance(err, (KeyboardInterrupt, SystemExit))
            message = (f"interrupted ({type(err).__name__}); continue it with "
                       f"`python -m zss.run resume={out}`" if interrupted else failure_message(err))
            if write_failure(out, "interrupted" if interrupted else "failed", message,
                             meta) and interrupted:
                log.error("Run interrupted: continue it with `python -m zss.run resume=%s`", out)
        raise


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``, or ``hydra.mode:
    MULTIRUN`` in an experiment file)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def failure_message(err: BaseException) -> str:
    """The one paragraph that says why a run stopped: a user error's own message (the one
    ``zss.run`` prints), else the exception's type and message."""
    cause = user_error(err)
    return str(cause) if cause is not None else f"{type(err).__name__}: {err}"


def _train_and_test(cfg: DictConfig, out: Path, progress: dict[str, Any],
                    meta: dict[str, Any]) -> dict[str, Any]:
    check_config_keys(cfg)  # before anything is read
    check_config_types(cfg)
    _check_accelerator(cfg)
    if is_global_zero() and not cfg.get("resume"):
        out.mkdir(parents=True, exist_ok=True)
        job = scheduler_job()
        if job is not None:  # first: a requeue of this job recognises its run by it
            progress["job"] = job
            write_progress(out, progress)
        write_atomic(out / "config.yaml", OmegaConf.to_yaml(recorded_config(cfg)))
    L.seed_everything(cfg.seed, workers=True)

    split = split_from_config(**cfg.split)
    stages = check_stages(cfg, split)
    protocol = Protocol(**(cfg.get("protocol") or {}))  # runs recorded before it: szn
    protocol.check(split)
    meta.update(split=split.name, protocol=protocol.name, protocol_rules=protocol.as_dict(),
                paths=recorded_paths(cfg), machine=machine())
    module: L.LightningModule | None = None
    training = bool({"stage1", "stage2"} & set(stages))
    heldout_ids = None
    if "stage1" in stages:  # a weights file of unknown format fails before anything is read
        backbone = OmegaConf.to_container(cfg.model.backbone)
    else:
        module = load_stage1(cfg.stage1_ckpt, cfg, split)
        meta["stage1_ckpt"] = str(Path(cfg.stage1_ckpt).expanduser().resolve())
        backbone = dict(module.hparams.backbone)
        heldout_ids = _checkpoint_heldout(module, training)
    preprocessing = preprocessing_for_backbone(backbone)  # a checkpoint's, never the config's
    # the data first: a missing folder or list fails before weights or tables are fetched;
    # objects go in after instantiation (Hydra would turn a dataclass argument into a config)
    dm = instantiate(cfg.data, _partial_=True)(split=split, protocol=protocol,  # the module normalises
                                               heldout_ids=heldout_ids)
    _setup_data(dm, training)
    class_set = dm.class_set or split_classes(cfg)
    meta["class_set"] = class_set
    log.info("class set %s (%d classes); split %s: train_seen %d, train_unseen %d, unseen %d",
             class_set, split.num_classes, split.name, len(split.train_seen),
             len(split.train_unseen), len(split.unseen))
    if training:
        overlap = dm.train_test_overlap()
        if overlap:
            raise SplitError(
                f"{len(overlap)} of the {dm.summary()['test']} test images ('{dm.test_set}') "
                f"are also in the training list '{dm.train_set}' (e.g. {overlap[:3]}): a model "
                "must never be evaluated on images it was trained on. Pair the lists the "
                "paper pairs -- sbd_train with seg11valid (SBD train holds VOC 2012 val "
                "images), train_aug or VOC train with VOC val.")
        for stage in ("stage1", "stage2"):
            if stage in stages:
                dm.require_holdout(stage)
        log.info(dm.describe())
        meta["images"] = dm.summary()
        meta["heldout"] = _heldout_meta(dm, module)
    if module is None:
        module = _new_stage1(cfg, split, protocol)
        if training:
            module.heldout = dm.heldout_record()  # saved with its checkpoints
    source = module.hparams.get("embedding_source")
    log.info("class embeddings: %s; input preprocessing: %s (weights %s)", source,
             preprocessing, backbone.get("weights"))

    # one set of loggers for all stages: one W&B run / one CSV file per job
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    for lg in loggers:
        if isinstance(lg, WandbLogger) and is_global_zero():
            lg.log_config(recorded_config(cfg))  # the resolved config, paths absolute
    done = progress.get("completed", {})
    if "stage1" in stages:
        if "stage1" in done:
            log.info("stage 1 finished before the resume: %s", done["stage1"])
            meta["stage1_ckpt"] = done["stage1"]
        else:
            n_train = len(dm.ids("stage1_train"))
            epochs = epochs_within_image_budget(cfg.stage1.max_epochs, n_train,
                                                cfg.stage1.get("max_image_steps"))
            log.info("stage 1: %d epoch(s) of %d images (stage1.max_epochs=%s, "
                     "stage1.max_image_steps=%s)", epochs, n_train, cfg.stage1.max_epochs,
                     cfg.stage1.get("max_image_steps"))
            meta["stage1_ckpt"] = _fit(cfg, "stage1", module, dm, loggers, epochs, out,
                                       progress)
        module = Stage1Module.load_from_checkpoint(meta["stage1_ckpt"], map_location="cpu")
    if "stage2" in stages:
        if "stage2" in done:
            log.info("stage 2 finished before the resume: %s", done["stage2"])
            meta["stage2_ckpt"] = done["stage2"]
        else:
            module = Stage2Module.from_stage1(
                module, optimizer=OmegaConf.to_container(cfg.stage2.optimizer),
                dropout=cfg.stage2.dropout, train_upsampling=cfg.stage2.train_upsampling)
            meta["stage2_ckpt"] = _fit(cfg, "stage2", module, dm, loggers,
                                       cfg.stage2.max_epochs, out, progress)
        module = Stage2Module.load_from_checkpoint(meta["stage2_ckpt"], map_location="cpu")
    if progress.get("resumed"):
        meta["resumed"] = progress["resumed"]
    # what the evaluated model was trained under (load_stage1 refused any other)
    trained_under = Protocol.recorded(module.hparams.get("protocol"))
    meta.update(protocol=trained_under.name, protocol_rules=trained_under.as_dict())
    meta.update(embedding_source=source,
                class_embeddings_sha256=tensor_sha256(getattr(module, "class_embeddings", None)),
                backbone=backbone, preprocessing=dataclasses.asdict(module.preprocessing))
    results: dict[str, Any] = {}
    if "test" in stages:
        if module.hparams.variant == "fcn_je":
            meta["gate_tuning"] = _tune_gates(cfg, module, dm, split, training)
        results = _test(cfg, module, dm, loggers, out, split, meta)
    selected = {k: v for s in progress.get("scores", {}).values() for k, v in s.items()}
    payload = {**meta, "metrics": {**selected, **results}}
    if is_global_zero():
        # strict JSON: a score that is undefined (NaN, e.g. no unseen class present) is null
        write_atomic(out / "metrics.json", json.dumps(_strict(payload), indent=2,
                                                      allow_nan=False))
        log.info("Results in %s", out)
    return payload


def _checkpoint_heldout(module: L.LightningModule, training: bool) -> list[str] | None:
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


def _heldout_meta(dm, module: L.LightningModule | None) -> dict[str, Any]:
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


def _strict(x: Any) -> Any:
    """``x`` with every NaN float replaced by None (strict JSON)."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: _strict(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_strict(v) for v in x]
    return x


def _tune_gates(cfg: DictConfig, module: L.LightningModule, dm, split: ClassSplit,
                training: bool) -> dict[str, Any]:
    """Tune every gate the model can use on stage 2's held-out training images
    (:mod:`zss.evaluation.tuning`) and set them on ``module`` for the test; returns what
    ``metrics.json`` records under ``gate_tuning`` (or why nothing was tuned)."""
    if not split.train_unseen:
        reason = (f"split '{split.name}' has no train_unseen class to stand in for the unseen "
                  "ones, so the gate variants (szn_threshold, szn_cs, szn_maxcos) are skipped")
    elif not training:
        reason = ("this run trains nothing, so it has no held-out training images to tune "
                  "on (the test split is never used for that); the gate variants are skipped")
    elif not dm.ids("stage2_val"):
        reason = "stage 2 has no held-out training image; the gate variants are skipped"
    else:
        reason = None
    if reason:
        log.info("gates: %s", reason)
        return {"skipped": reason}
    # the loader is built inside validate (tuner.val_dataloader), after DDP's process group
    # exists, so the ranks share the images without padding in every path, e.g. a resume
    # whose stages had all finished (no fit set the group up before)
    tuner = GateTuning(module, gates_for(bool(module.hparams.seenmask)),
                       data=dm.gate_tuning_dataloader)
    progress, bar = progress_callbacks("test", cfg.trainer)  # (one pass, like the test)
    trainer = instantiate(cfg.trainer, logger=False, callbacks=progress,
                          enable_progress_bar=bar, enable_checkpointing=False,
                          plugins=cluster_plugins())
    trainer.validate(tuner, verbose=False)
    result = dict(tuner.result)
    reference = result.pop("reference")
    chosen = {g: r["value"] for g, r in result.items() if r["value"] is not None}
    module.set_gates(chosen)
    held_out = len(dm.ids("stage2_val"))
    if tuner.images != held_out:  # e.g. trainer.limit_val_batches
        log.warning("gates: tuned on %d of the %d held-out images (trainer.limit_val_batches="
                    "%s)", tuner.images, held_out, cfg.trainer.get("limit_val_batches"))
    tuning = {"objective": OBJECTIVE, "images": tuner.images,
              "data": f"stage2_val: held-out images of '{dm.train_set}'", "gates": result,
              "reference": reference}
    untuned = {g: r["untuned"] for g, r in result.items() if r["value"] is None}
    if untuned:  # not evaluated on the test split; metrics.json says why, per gate
        tuning["untuned"] = untuned
    log.info("gates tuned: %s", ", ".join(f"{g} {r['parameter']}={r['value']}"
                                           for g, r in result.items()))
    return tuning


def _test(cfg: DictConfig, module: L.LightningModule, dm, loggers: list, out: Path,
          split: ClassSplit, meta: dict[str, Any]) -> dict[str, float]:
    progress, bar = progress_callbacks("test", cfg.trainer)
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=progress,
                          enable_progress_bar=bar, enable_checkpointing=False,
                          plugins=cluster_plugins())
    _gpu_options(module, cfg)
    trainer.test(module, datamodule=dm, verbose=False)
    scores, table = module.test_results
    hists = {v: m.compute() for v, m in module.evaluator.matrices.items()}  # cached sums
    meta["test_images"] = module.test_images
    meta.setdefault("images", {})["test"] = module.test_images
    results = {f"test/{v}/{k}": val for v, s in scores.items() for k, val in s.items()}
    tuning = meta.get("gate_tuning", {})
    for g, r in tuning.get("gates", {}).items():
        if r["value"] is not None:
            results[f"tune/{g}/{r['parameter']}"] = r["value"]
        if not math.isnan(r["objective"]):  # an untuned gate's constant objective too
            results[f"tune/{g}/objective"] = r["objective"]
    tradeoff = module.evaluator.tradeoff()
    if tradeoff is not None:
        results["test/fcn_je/ausuc"] = tradeoff["ausuc"]
        meta["ausuc"] = {"note": "test-set analysis: calibrated stacking with gamma swept on "
                                 "the test split; not a tuned result",
                         "definition": "Chao et al. 2016: gamma subtracted from the cosines "
                                       "of S = train_seen + train_unseen, against U; area "
                                       "under miou_seen (S) over miou_unseen (U)", **tradeoff}
    if not is_global_zero():
        return results
    write_atomic(out / "per_class_iou.csv", table_csv(table))
    write_atomic(out / "confusion_matrices.json", json.dumps({
        "classes": list(split.class_names), "test_images": meta["test_images"],
        "rows": "ground truth", "columns": "prediction", "ignore_index": 255,
        "matrices": {v: h.tolist() for v, h in hists.items()}}))
    source = meta["embedding_source"]
    source = f" (class embeddings: {source})" if source else ""
    parts = [f"Test split '{cfg.data.test_set}' ({meta['test_images']} images), "
             f"{split.name}, protocol {meta['protocol']}{source}, IoU in percent:\n"
             f"{format_table(scores, table)}"]
    if tuning or tradeoff is not None:
        parts.append(format_tuning(tuning, tradeoff))
    parts.append(f"Summary (percent; {split.name}, protocol {meta['protocol']}):\n"
                 f"{summary(scores, meta['protocol'])}")
    if tradeoff is not None:
        points = {title(v): (s["miou_unseen"], s["miou_seen"]) for v, s in scores.items()}
        meta["ausuc"]["png"] = str(save_tradeoff_png(
            tradeoff, points, out / "tradeoff.png", f"{split.name}, test '{cfg.data.test_set}'"))
        parts.append(f"Seen-unseen curve (test-set analysis): {meta['ausuc']['png']}")
    if cfg.get("explain"):
        reading = [explain(scores, split, hists)]
        if tuning.get("gates"):
            reading.append(explain_gates(scores, tuning))
        parts += [r for r in reading if r]
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_evaluation(module, dm.test_dataloader().dataset, table)
            # what Lightning did not log: the tuned gate values and the AUSUC
            lg.log_metrics({k: v for k, v in results.items()
                            if k.startswith("tune/") or k.endswith("/ausuc")})
    if cfg.get("visualize"):
        meta["predictions_png"] = str(save_test_predictions(
            module, dm.test_dataloader().dataset, int(cfg.visualize), out / "predictions.png"))
        parts.append(f"Predictions of {int(cfg.visualize)} test images: {meta['predictions_png']}")
    text = "\n\n".join(parts)
    print("\n" + text)
    m = meta["machine"]
    write_atomic(out / "results.txt", f"{text}\n\nMachine: {m['cpu']} ({m['cpu_cores']} "
                 f"logical cores), GPU {m['gpu'] or 'none'}, torch {m['torch']}; seed "
                 f"{meta['seed']}. Runs repeat exactly on one machine; the last digits may "
                 "differ on another CPU model or a GPU.\n")
    return results
