"""The value ``python -m zss.run`` returns to a Hydra sweeper: ``optimized_metric``, a key of
``metrics.json``'s ``metrics``, never a test-split score under a sweeper that reads it.

A sweeper that optimises (Optuna, Ax, Nevergrad: ``hydra/sweeper=...``) proposes each job's
hyper-parameters from the values earlier jobs returned; a ``test/`` key would tune them on
the test split, where zss never selects anything (checkpoints and gate parameters are chosen
on held-out *training* images). The held-out keys a run records:

- ``val/<variant>/miou`` (``val/fcn_je/miou``, ``val/fcn_s/miou``): stage 1's mIoU over the
  train_seen classes on its held-out training images, at the selected checkpoint (every run
  that trains stage 1; higher is better).
- ``tune/<gate>/objective``: the hIoU of train_seen and train_unseen (standing in for the
  unseen classes) on stage 2's held-out training images, at the gate's tuned parameter
  (:mod:`zss.evaluation.tuning`; runs with a test stage on splits with train_unseen classes;
  higher is better).
- ``val/seenmask/loss``: stage 2's held-out loss at the selected checkpoint (lower is
  better: a sweeper must be told to minimise it).

Hydra's BasicSweeper (a grid, ``-m key=a,b``) never reads the returned value, so it may keep
a ``test/`` key.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from zss.runtime.errors import ConfigError

log = logging.getLogger("zss")

BASIC_SWEEPER = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
"""The ``_target_`` of Hydra's grid sweeper (``hydra/sweeper=basic``, the default)."""

HELD_OUT = ("val/fcn_je/miou (stage 1's held-out mIoU; val/fcn_s/miou for FCN-S), "
            "tune/szn_cs/objective (the held-out hIoU with train_unseen standing in for the "
            "unseen classes, on splits with train_unseen classes) or val/seenmask/loss "
            "(stage 2's held-out loss: minimise it)")


def check_objective(cfg: DictConfig) -> None:
    """Refuse a ``test/`` ``optimized_metric`` in a job of a sweeper other than Hydra's
    BasicSweeper, before anything is trained; nothing to check outside a Hydra multirun.

    Raises:
        ConfigError: the key, the sweeper and the held-out keys to use instead.
    """
    key = cfg.get("optimized_metric")
    if not key or not str(key).startswith("test/") or not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    sweeper = (hc.get("sweeper") or {}).get("_target_")
    if hc.mode != RunMode.MULTIRUN or sweeper in (None, BASIC_SWEEPER):
        return
    raise ConfigError(
        f"optimized_metric={key} is a score of the test split, and this job runs under the "
        f"sweeper {sweeper}, which reads that value to choose the next hyper-parameters: the "
        "sweep would be tuned on the test split (zss selects checkpoints and gates on held-out "
        f"training images, never on test). Set optimized_metric to a held-out score: "
        f"{HELD_OUT}. The test/ scores are still in every job's metrics.json.")


def objective_value(cfg: DictConfig, metrics: Mapping[str, float]) -> float | None:
    """The value of ``cfg.optimized_metric`` among a run's ``metrics``: a float (NaN when the
    score is undefined), NaN with a warning when the run did not record the key, None when
    ``optimized_metric`` is unset."""
    key = cfg.get("optimized_metric")
    if not key:
        return None
    if key in metrics:
        return metrics[key]
    held_out = sorted(k for k in metrics if not k.startswith("test/"))
    tested = sorted({f"test/{k.split('/')[1]}/*" for k in metrics if k.startswith("test/")})
    log.warning("optimized_metric %s was not computed by this run, so a sweep reads NaN for "
                "it; the run recorded %s. val/ scores come from the stages a run trains, "
                "tune/ ones from gate tuning (the test stage, on splits with train_unseen "
                "classes), test/ ones from the test stage: set optimized_metric to a recorded "
                "held-out key, e.g. %s.", key, ", ".join(held_out + tested) or "nothing",
                HELD_OUT)
    return math.nan
