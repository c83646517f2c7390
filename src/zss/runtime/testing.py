"""The passes after training: the gates tuned on stage 2's held-out training images (never
the test split), then the test pass over every variant, which gives one
:class:`~zss.evaluation.evaluator.TestResult`."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig

from zss.data.splits import ClassSplit
from zss.evaluation.evaluator import TestResult
from zss.evaluation.tuning import OBJECTIVE, TUNING_RULES, gates_for
from zss.inference.gates import GATES
from zss.runtime.console import progress_callbacks, progress_every_s
from zss.runtime.fitting import gpu_options
from zss.runtime.launchers import cluster_plugins
from zss.stages.gate_tuning import GateTuning

log = logging.getLogger("zss")


def tune_gates(cfg: DictConfig, module: L.LightningModule, dm, split: ClassSplit,
                training: bool) -> dict[str, Any]:
    """Tune every gate the model can use on stage 2's held-out training images
    (:mod:`zss.evaluation.tuning`) and set them on ``module`` for the test; returns what
    ``metrics.json`` records under ``gate_tuning`` (or why nothing was tuned)."""
    if not split.train_unseen:
        reason = (f"split '{split.name}' has no train_unseen class to stand in for the unseen "
                  f"ones, so the gate variants ({', '.join(GATES)}) are skipped")
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
    rule = tuning_rule(cfg)
    tuner = GateTuning(module, gates_for(bool(module.hparams.seenmask)),
                       data=dm.gate_tuning_dataloader, rule=rule["name"],
                       budget=rule.get("seen_budget", 0.0))
    progress, bar = progress_callbacks("gates", cfg.trainer, progress_every_s(cfg))
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
    tuning = {"rule": rule, "objective": OBJECTIVE, "images": tuner.images,
              "data": f"stage2_val: held-out images of '{dm.train_set}'", "gates": result,
              "reference": reference}
    untuned = {g: r["untuned"] for g, r in result.items() if r["value"] is None}
    if untuned:  # not evaluated on the test split; metrics.json says why, per gate
        tuning["untuned"] = untuned
    log.info("gates: %s", ", ".join(
        f"{g} {r['parameter']}={r['value']:.4g} (tuned)" if r["value"] is not None
        else f"{g} untuned" for g, r in result.items()))
    return tuning


def tuning_rule(cfg: DictConfig) -> dict[str, Any]:
    """The run's tuning rule as ``metrics.json`` records it: ``name`` (``gates.tuning``;
    ``stand_in`` for a config recorded before the key existed), ``criterion``,
    ``unseen_branch`` and, for ``seen_budget``, ``seen_budget`` (``gates.seen_budget``)."""
    gates = cfg.get("gates") or {}
    rule = TUNING_RULES[gates.get("tuning", "stand_in")]
    out = {"name": rule.name, "criterion": rule.criterion, "unseen_branch": rule.unseen_branch}
    if rule.name == "seen_budget":
        out["seen_budget"] = float(gates.get("seen_budget", 0.05))
    return out


def test(cfg: DictConfig, module: L.LightningModule, dm, loggers: list) -> TestResult:
    """Evaluate every variant of ``module`` (the tuned gates included) on the test split, each
    test image counted once (also under DDP); returns the module's
    :class:`~zss.evaluation.evaluator.TestResult`."""
    progress, bar = progress_callbacks("test", cfg.trainer, progress_every_s(cfg))
    trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=progress,
                          enable_progress_bar=bar, enable_checkpointing=False,
                          plugins=cluster_plugins())
    gpu_options(module, cfg)
    trainer.test(module, datamodule=dm, verbose=False)
    return module.test_result
