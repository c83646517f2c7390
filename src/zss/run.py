"""``python -m zss.run``: the Hydra entry point and the user-error boundary.

It composes the config and hands it to :func:`zss.runtime.runner.train_and_test` (the stages and
the result files). A user error (bad data, config or file) is printed as one paragraph
without a traceback, with exit status 2. Returns ``optimized_metric`` so that sweeps can use
it.

``python -m zss.run resume=DIR`` continues the killed run in ``DIR`` with the config it was
started with (``DIR/.hydra/config.yaml``), writing only into ``DIR``
(:func:`zss.runtime.command_line.resume_arguments`). Under the launchers (``+launcher=...``, :mod:`zss.runtime.launchers`) a
sweep that DDP would relaunch per rank is refused, a requeued submitit job continues the run
in its own folder, and a joblib job on a multi-GPU machine takes a GPU of its own.
"""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from zss.runtime.command_line import checked_arguments
from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types
from zss.runtime.errors import user_error
from zss.runtime.launchers import check_sweep_launch, claim_gpu, requeued_run
from zss.runtime.objective import check_objective, objective_value
from zss.runtime.runner import train_and_test
from zss.runtime.setup import check_data_paths

log = logging.getLogger("zss")


def _exit(status: int, message: str) -> None:
    print(f"\nzss: error: {message}", file=sys.stderr)
    sys.exit(status)


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Hydra entry point; returns ``cfg.optimized_metric``, a held-out score by default (NaN if
    it was not computed; a ``test/`` key is refused under an optimising sweeper,
    :mod:`zss.runtime.objective`)."""
    try:
        check_sweep_launch(cfg)
        check_objective(cfg)
        if cfg.get("dry_run"):
            print(dry_run(cfg))
            return None
        if not cfg.get("resume") and requeued_run(cfg):
            log.info("Requeued job: continuing the run in %s", cfg.paths.output_dir)
            cfg.resume = str(Path(cfg.paths.output_dir).resolve())
        with claim_gpu(cfg) as gpu:
            if gpu is not None:
                cfg.trainer.devices = [gpu]
            payload = train_and_test(cfg)
    except Exception as err:
        cause = user_error(err)
        if cause is None:
            raise
        _exit(2, str(cause))  # bad data or config: one paragraph, no traceback
    finally:
        if "wandb" in (cfg.get("logger") or {}):
            import wandb

            wandb.finish()
    if payload.get("status") == "skipped":
        return math.nan
    return objective_value(cfg, payload["metrics"])


def dry_run(cfg: DictConfig) -> str:
    """What this job would run, after the checks a real run makes first (unknown keys, value
    types, the data root: :func:`zss.runtime.setup.check_data_paths`): one line with the
    job's overrides, its output folder and the choices that matter.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, as the real run would.
        DataError: the data root does not exist or lacks its dataset's layout.
    """
    check_config_keys(cfg)
    check_config_types(cfg)
    check_data_paths(cfg)
    hc = HydraConfig.get()
    choices = hc.runtime.choices
    job = f"job {hc.job.num}" if hc.mode == RunMode.MULTIRUN else "run"
    overrides = " ".join(hc.overrides.task) or "(no overrides)"
    stages = ",".join(cfg.stages)
    return (f"dry run, {job}: {overrides}\n  would write {hc.runtime.output_dir}; split "
            f"{cfg.split.name}, data {choices.get('data')}, model {choices.get('model')} "
            f"(j={cfg.model.embed_dim}, loss {cfg.model.loss}), embedding "
            f"{choices.get('embedding')}, optimizer {choices.get('optimizer')} (lr "
            f"{cfg.optimizer.get('lr')}), seed {cfg.seed}, stages {stages}; nothing trained")


if __name__ == "__main__":
    sys.argv = checked_arguments(sys.argv)
    main()
