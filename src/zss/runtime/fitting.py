"""Training the stages: the trainer of a stage (its checkpoints, ``last.ckpt``, progress
lines), a fit that resumes from ``last.ckpt`` when the run is resumed, and stage 1 then stage
2 in order, each skipped when a resumed run finished it before."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zss.runtime.checkpointing import (
    AtomicCheckpointIO,
    LastCheckpoint,
    holds_a_run,
    read_progress,
    write_progress,
)
from zss.runtime.console import progress_callbacks, progress_every_s
from zss.runtime.errors import ConfigError
from zss.runtime.launchers import cluster_plugins
from zss.runtime.run_record import is_global_zero, run_status
from zss.stages import Stage1Module, Stage2Module
from zss.stages.stage1 import epochs_within_image_budget

log = logging.getLogger("zss")


def train_stages(cfg: DictConfig, stages: list[str], module: L.LightningModule, dm,
                 loggers: list, out: Path, progress: dict[str, Any],
                 meta: dict[str, Any]) -> L.LightningModule:
    """Stage 1 (FCN-32s + head on train_seen images), then stage 2 (the seenmask head on the
    frozen stage-1 model), those of ``stages``; a stage a resumed run finished before is not
    run again. Records each selected checkpoint in ``meta`` (``stage1_ckpt``,
    ``stage2_ckpt``) and returns the model of the last stage, loaded from its selected
    checkpoint (``module`` itself when no stage trains)."""
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
            meta["stage1_ckpt"] = fit(cfg, "stage1", module, dm, loggers, epochs, out, progress)
        module = Stage1Module.load_from_checkpoint(meta["stage1_ckpt"], map_location="cpu")
    if "stage2" in stages:
        if "stage2" in done:
            log.info("stage 2 finished before the resume: %s", done["stage2"])
            meta["stage2_ckpt"] = done["stage2"]
        else:
            module = Stage2Module.from_stage1(
                module, optimizer=OmegaConf.to_container(cfg.stage2.optimizer),
                dropout=cfg.stage2.dropout, train_upsampling=cfg.stage2.train_upsampling)
            meta["stage2_ckpt"] = fit(cfg, "stage2", module, dm, loggers,
                                      cfg.stage2.max_epochs, out, progress)
        module = Stage2Module.load_from_checkpoint(meta["stage2_ckpt"], map_location="cpu")
    if progress.get("resumed"):
        meta["resumed"] = progress["resumed"]
    return module


def make_trainer(cfg: DictConfig, stage: str, loggers: list, max_epochs: int) -> tuple[L.Trainer, Any]:
    """The trainer of ``stage`` and its ``ModelCheckpoint`` (the selected checkpoint, chosen
    on the held-out training images; ``conf/callbacks``), with ``last.ckpt`` written by
    :class:`~zss.runtime.checkpointing.LastCheckpoint` and the progress lines."""
    ckpt = instantiate(cfg.callbacks[f"{stage}_checkpoint"])
    last = LastCheckpoint(Path(cfg.paths.output_dir) / "checkpoints" / stage,
                          cfg.get("last_ckpt_every_n_steps"))
    # the best checkpoint first: last.ckpt, written after it, carries its updated record
    progress, bar = progress_callbacks(stage, cfg.trainer, progress_every_s(cfg))
    trainer = instantiate(cfg.trainer, max_epochs=max_epochs, callbacks=[ckpt, last, *progress],
                          logger=loggers or False,
                          plugins=[AtomicCheckpointIO(), *cluster_plugins()],
                          enable_progress_bar=bar)
    return trainer, ckpt


def gpu_options(module: L.LightningModule, cfg: DictConfig) -> None:
    """``model.channels_last`` and ``model.compile`` (``trainer=gpu`` sets the first): how
    the module runs, not what it is, so never part of a checkpoint."""
    module.channels_last = bool(cfg.model.get("channels_last", False))
    module.compile_backbone = bool(cfg.model.get("compile", False))


def fit(cfg: DictConfig, stage: str, module: L.LightningModule, dm, loggers: list,
         max_epochs: int, out: Path, progress: dict[str, Any]) -> str:
    """Train ``stage`` (from its ``last.ckpt`` when resuming and there is one); record it as
    finished in ``progress.json``, with the held-out validation score of the checkpoint it
    selected (its ``ModelCheckpoint``'s monitor, e.g. ``{"val/fcn_je/miou": 0.52}``, under
    ``scores``: a resumed run reports it for a stage finished before the resume); delete the
    stage's ``last.ckpt`` unless ``keep_last_ckpt`` (a resume skips a finished stage and
    loads its selected checkpoint, never its ``last.ckpt``); return the selected checkpoint."""
    trainer, ckpt = make_trainer(cfg, stage, loggers, max_epochs)
    last = next(c for c in trainer.callbacks if isinstance(c, LastCheckpoint))
    module.leakage_guard = bool(cfg.get("leakage_guard", True))
    gpu_options(module, cfg)
    dm.stage = stage
    resume_from = str(last.path) if cfg.get("resume") and last.path.is_file() else None
    if resume_from:
        log.info("%s: resuming from %s", stage, resume_from)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_from)
    best = selected_checkpoint(ckpt)
    if resume_from:
        progress.setdefault("resumed", []).append({"stage": stage,
                                                   "from_step": last.resumed_step})
    progress.setdefault("completed", {})[stage] = best
    progress.setdefault("scores", {})[stage] = {ckpt.monitor: float(ckpt.best_model_score)}
    if is_global_zero():
        write_progress(out, progress)
        if not cfg.get("keep_last_ckpt", False):  # after progress.json names the stage done
            last.path.unlink(missing_ok=True)
    return best


def resume_state(cfg: DictConfig, out: Path) -> dict[str, Any]:
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


def selected_checkpoint(ckpt) -> str:
    """The selected checkpoint's path (its score is ``ckpt.best_model_score``)."""
    if not ckpt.best_model_path:
        raise RuntimeError(f"no checkpoint was saved (monitor '{ckpt.monitor}' never logged): "
                           "is the held-out part of the training images empty?")
    return ckpt.best_model_path
