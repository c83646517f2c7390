"""The runner behind ``python -m zss.run``: one run, from the checks to the result files.

In order: the config and run directory are checked and the resolved config written
(:func:`zss.runtime.fitting.resume_state` for the directory's rules); the data and the model
are set up (:func:`zss.runtime.setup.prepare`); stage 1 and stage 2 train
(:func:`zss.runtime.fitting.train_stages`); the gates are tuned on stage 2's held-out
training images and every variant is tested (:mod:`zss.runtime.testing`); the result files
are written from the test's one result object (:mod:`zss.evaluation.run_files`). The
``stages`` key picks which of stage1, stage2 and test run; without ``stage1`` the model comes
from ``stage1_ckpt`` (:func:`zss.runtime.stage1_checkpoint.load_stage1`), whose
preprocessing, class vectors and held-out images are used, never the config's.
``python -m zss.run resume=DIR`` continues the run in ``DIR``: finished stages are not run
again, the interrupted one continues from its ``last.ckpt``.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from zss.data.protocols import Protocol
from zss.data.splits import split_from_config
from zss.evaluation.run_files import run_metrics, write_metrics_json, write_test_files
from zss.models import pretraining_record
from zss.runtime import fitting, testing
from zss.runtime.checkpointing import write_atomic, write_progress
from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types
from zss.runtime.console import quiet_lightning
from zss.runtime.dashboards import WandbLogger
from zss.runtime.errors import EmbeddingDimensionError, user_error
from zss.runtime.launchers import scheduler_job
from zss.runtime.run_record import (
    is_global_zero,
    machine,
    recorded_config,
    recorded_paths,
    tensor_sha256,
    write_failure,
)
from zss.runtime.setup import check_accelerator, check_stages, prepare

log = logging.getLogger("zss")


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
    progress = fitting.resume_state(cfg, out)
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


def _train_and_test(cfg: DictConfig, out: Path, progress: dict[str, Any],
                    meta: dict[str, Any]) -> dict[str, Any]:
    check_config_keys(cfg)  # before anything is read
    check_config_types(cfg)
    check_accelerator(cfg)
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

    run = prepare(cfg, split, stages, protocol, meta)
    loggers = _loggers(cfg)  # one set for all stages: one W&B run / one CSV file per job
    module = fitting.train_stages(cfg, stages, run.module, run.dm, loggers, out, progress, meta)
    # what the evaluated model was trained under (load_stage1 refused any other)
    trained_under = Protocol.recorded(module.hparams.get("protocol"))
    meta.update(protocol=trained_under.name, protocol_rules=trained_under.as_dict(),
                embedding_source=module.hparams.get("embedding_source"),
                class_embeddings_sha256=tensor_sha256(getattr(module, "class_embeddings", None)),
                backbone=run.backbone, preprocessing=dataclasses.asdict(module.preprocessing),
                pretraining=pretraining_record(module.hparams.backbone))
    result = None
    if "test" in stages:
        if module.hparams.variant == "fcn_je":
            meta["gate_tuning"] = testing.tune_gates(cfg, module, run.dm, split, run.training)
        result = testing.test(cfg, module, run.dm, loggers)
    selected = {k: v for s in progress.get("scores", {}).values() for k, v in s.items()}
    metrics = run_metrics(result, meta.get("gate_tuning", {}), selected)
    if result is not None:
        _log_test_to_dashboards(loggers, module, run.dm, result, metrics)
        if is_global_zero():
            text = write_test_files(out, result, meta, split, cfg.data.test_set,
                                    bool(cfg.get("explain")), int(cfg.get("visualize") or 0),
                                    module, run.dm.test_dataloader().dataset)
            print("\n" + text)
    payload = {**meta, "metrics": metrics}
    if is_global_zero():
        write_metrics_json(out, payload)
        log.info("Results in %s", out)
    return payload


def _loggers(cfg: DictConfig) -> list:
    loggers = [instantiate(c) for c in (cfg.logger or {}).values()]
    for lg in loggers:
        if isinstance(lg, WandbLogger) and is_global_zero():
            lg.log_config(recorded_config(cfg))  # the resolved config, paths absolute
    return loggers


def _log_test_to_dashboards(loggers: list, module, dm, result, metrics: dict) -> None:
    """W&B: the per-class table and prediction overlays, and what Lightning did not log (the
    tuned gate values and the AUSUC; Lightning logged the test scores)."""
    for lg in loggers:
        if isinstance(lg, WandbLogger):
            lg.log_evaluation(module, dm.test_dataloader().dataset, result.table)
            lg.log_metrics({k: v for k, v in metrics.items()
                            if k.startswith("tune/") or k.endswith("/ausuc")})


def in_sweep() -> bool:
    """Whether this process runs a job of a Hydra multirun (``-m``, or ``hydra.mode:
    MULTIRUN`` in an experiment file)."""
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def failure_message(err: BaseException) -> str:
    """The one paragraph that says why a run stopped: a user error's own message (the one
    ``zss.run`` prints), else the exception's type and message."""
    cause = user_error(err)
    return str(cause) if cause is not None else f"{type(err).__name__}: {err}"
