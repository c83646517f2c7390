"""``python -m zss.run``: the Hydra entry point and the user-error boundary.

It composes the config and hands it to :func:`zss.runtime.runner.train_and_test` (the stages and
the result files). A user error (bad data, config or file) is printed as one paragraph
without a traceback, with exit status 2. Returns ``optimized_metric`` so that sweeps can use
it.

``python -m zss.run resume=DIR`` continues the killed run in ``DIR`` with the config it was
started with (``DIR/.hydra/config.yaml``), writing only into ``DIR``
(:func:`resume_arguments`). Under the launchers (``+launcher=...``, :mod:`zss.runtime.launchers`) a
sweep that DDP would relaunch per rank is refused, a requeued submitit job continues the run
in its own folder, and a joblib job on a multi-GPU machine takes a GPU of its own.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from zss.runtime.checkpointing import holds_a_run
from zss.runtime.command_line import check_command_line
from zss.runtime.config_keys import check_config_keys
from zss.runtime.config_types import check_config_types
from zss.runtime.errors import ConfigError, user_error
from zss.runtime.launchers import check_sweep_launch, claim_gpu, requeued_run
from zss.runtime.objective import check_objective, objective_value
from zss.runtime.run_record import run_status
from zss.runtime.runner import train_and_test

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
    types): one line with the job's overrides, its output folder and the choices that matter.

    Raises:
        ConfigError: an unknown key or a value of the wrong type, as the real run would.
    """
    check_config_keys(cfg)
    check_config_types(cfg)
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


def resume_arguments(argv: list[str]) -> list[str]:
    """The command line Hydra gets, checked before Hydra writes anything.

    ``resume=DIR`` (the only argument) becomes Hydra's re-run of ``DIR/.hydra/config.yaml``
    in ``DIR`` (``hydra.run.dir=DIR``, and no second ``.hydra/`` record). The relative paths
    of that config (``paths.data_dir``, ``paths.cache_dir``, …) meant the folder the run was
    started in, so the process changes into it first (``hydra.runtime.cwd`` in
    ``DIR/.hydra/hydra.yaml``): a resume works from any directory, and DDP's other ranks,
    which Lightning starts in Hydra's original working directory, run there too. A new run whose
    ``hydra.run.dir`` already holds a run is refused here, before Hydra would rewrite that
    run's ``.hydra/`` record (which its resume reads). Any other command line, and the
    command lines of DDP's other ranks (started with the rewritten arguments, after rank 0
    wrote the run's files), are returned unchanged.

    Raises:
        SystemExit: (status 2, with the reason) ``resume=`` with other arguments, a ``DIR``
            that does not exist or has no ``.hydra/config.yaml``, a run whose starting
            folder no longer exists, or a new run into a run's directory.
    """
    if rank_zero_only.rank != 0 or "hydra.output_subdir=null" in argv:
        return argv
    resume = [a for a in argv[1:] if a.startswith(("resume=", "++resume=", "+resume="))]
    if not resume:
        run_dirs = [Path(a.split("=", 1)[1]) for a in argv[1:] if a.startswith("hydra.run.dir=")]
        if run_dirs and holds_a_run(run_dirs[-1]):
            status = run_status(run_dirs[-1])
            trained = any((run_dirs[-1] / "checkpoints").glob("**/*.ckpt"))
            if status == "finished":
                advice = "Give the new run another hydra.run.dir."
            elif status == "failed" and not trained:  # e.g. refused by a config check
                advice = ("It failed before it wrote a checkpoint (its metrics.json says "
                          "why), so resuming it would repeat its config: give the new run "
                          "another hydra.run.dir.")
            else:
                advice = (f"Continue it with `python -m zss.run resume={run_dirs[-1]}`, or "
                          "give the new run another hydra.run.dir.")
            _exit(2, f"{run_dirs[-1]} already holds a {'finished ' if status == 'finished' else ''}"
                  f"run (config.yaml, checkpoints/): a new run never writes into it. {advice}")
        return argv
    if len(argv) != 2:
        _exit(2, "resume=DIR continues a run with the config it was started with; give it "
              "alone (got " + " ".join(argv[1:]) + ")")
    run_dir = Path(resume[0].split("=", 1)[1]).expanduser().resolve()
    recorded = run_dir / ".hydra" / "config.yaml"
    if not run_dir.is_dir():
        _exit(2, f"cannot resume {run_dir}: no such folder; give the folder of a zss run "
              "(outputs/<task_name>/<timestamp>/)")
    if not recorded.is_file():
        _exit(2, f"cannot resume {run_dir}: it has no .hydra/config.yaml (the config Hydra "
              "records for every run); give the folder of a zss run")
    hydra_record = run_dir / ".hydra" / "hydra.yaml"  # Hydra writes it beside config.yaml
    started_in = (OmegaConf.select(OmegaConf.load(hydra_record), "hydra.runtime.cwd")
                  if hydra_record.is_file() else None)
    if started_in:
        if not Path(started_in).is_dir():
            _exit(2, f"cannot resume {run_dir}: it was started in {started_in}, which no longer "
                  "exists, and the relative paths of its config (.hydra/config.yaml, e.g. "
                  "paths.data_dir, paths.cache_dir) are read from there. Recreate that folder "
                  "(links to the data its relative paths name will do), or make those paths "
                  "absolute in .hydra/config.yaml and set hydra.runtime.cwd in "
                  ".hydra/hydra.yaml to an existing folder.")
        os.chdir(started_in)
    return [argv[0], "--config-path", str(recorded.parent), "--config-name", "config",
            f"hydra.run.dir={run_dir}", "hydra.output_subdir=null", f"++resume={run_dir}"]


def checked_arguments(argv: list[str]) -> list[str]:
    """:func:`resume_arguments`, then (on rank 0) the command line's overrides checked by
    :func:`zss.runtime.command_line.check_command_line` before Hydra composes them; a refusal
    exits with status 2 and zss's one paragraph."""
    argv = resume_arguments(argv)
    if rank_zero_only.rank == 0:
        try:
            check_command_line(argv[1:])
        except ConfigError as err:
            _exit(2, str(err))
    return argv


if __name__ == "__main__":
    sys.argv = checked_arguments(sys.argv)
    main()
