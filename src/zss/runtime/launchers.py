"""What zss does differently under Hydra's launchers (``+launcher=joblib | submitit_local |
slurm``, ``conf/launcher/``): refuse a sweep that DDP would relaunch once per rank, leave
requeueing to submitit alone, continue a requeued job's run, and give each parallel job of
a multi-GPU machine its own GPU.

- :func:`check_sweep_launch`: Lightning's DDP starts ranks 1..N-1 by re-running the command
  line (``_SubprocessScriptLauncher``); under ``-m`` that command is the whole sweep, so every
  rank would launch every job (docs/clusters.md). Refused for the local launchers (basic, joblib,
  submitit_local); under SLURM each rank is a SLURM task instead (``tasks_per_node`` =
  ``trainer.devices``), which nothing relaunches.
- :func:`cluster_plugins`: requeueing has one owner, submitit (its signal handler
  checkpoints the submission and requeues the job); Lightning's SLURM environment is given
  ``auto_requeue=False`` so that it does not requeue (or save its own ``hpc_ckpt``) too.
- :func:`requeued_run`: a submitit job's folder is keyed on its job id (SLURM: array job id
  and task id, both kept by a requeue), and a new run records that id in ``progress.json``;
  a job that finds its folder holding an unfinished run started by the same job id is that
  run's requeue and continues it (``resume``), as ``python -m zss.run resume=DIR`` would. Any
  other run in the folder is refused (a new run never writes into another run's folder).
- :func:`claim_gpu`: joblib's parallel jobs would all train on GPU 0; each job that trains on
  one GPU takes one no other job holds (a lock file per GPU).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig

from zss.runtime.checkpointing import holds_a_run, read_progress
from zss.runtime.errors import ConfigError
from zss.runtime.run_record import run_status

log = logging.getLogger("zss")

SUBMITIT = ("submitit_local", "submitit_slurm")


def launcher_name() -> str | None:
    """The ``hydra/launcher`` choice of this job (``basic``, ``joblib``, ``submitit_local``,
    ``submitit_slurm``), or None outside a Hydra job."""
    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("hydra/launcher")


def device_count(devices: Any) -> int | None:
    """The number of devices of a ``trainer.devices`` value: an int (-1: all, None), a list
    of indices, a string (``"2"``, ``"0,1"``; ``"auto"`` / ``"-1"``: None)."""
    if isinstance(devices, bool):
        return None
    if isinstance(devices, int):
        return None if devices < 0 else devices
    if isinstance(devices, (list, tuple, ListConfig)):
        return len(devices)
    text = str(devices).strip()
    if "," in text:
        return len([d for d in text.split(",") if d.strip()])
    return int(text) if text.isdigit() else None


def relaunched_ranks(trainer: DictConfig) -> int | None:
    """How many processes the trainer's strategy starts by re-running the command line: 0 for
    one device or a spawning strategy (``ddp_spawn``, ``ddp_fork``, ``ddp_notebook``), else
    the device count (None: all devices, ``devices=auto`` / ``-1`` with a DDP strategy)."""
    strategy = str(trainer.get("strategy", "auto"))
    if any(word in strategy for word in ("spawn", "fork", "notebook")):
        return 0
    n = device_count(trainer.get("devices", "auto"))
    if n is None:
        return 0 if strategy in ("auto", "single_device") else None
    return n if n > 1 else 0


def check_sweep_launch(cfg: DictConfig) -> None:
    """Refuse a multirun job whose trainer would relaunch the sweep once per rank.

    Raises:
        ConfigError: ``-m`` with a multi-device DDP trainer under a local launcher (basic,
            joblib, submitit_local); under ``+launcher=slurm``, ``hydra.launcher
            .tasks_per_node`` different from ``trainer.devices`` (or devices not a number).
    """
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return
    ranks = relaunched_ranks(cfg.trainer)
    if ranks == 0:
        return
    devices = cfg.trainer.get("devices")
    launcher = launcher_name()
    if launcher == "submitit_slurm":
        tasks = HydraConfig.get().launcher.get("tasks_per_node")
        if ranks is not None and tasks == ranks:
            return
        raise ConfigError(
            f"trainer.devices={devices} with strategy {cfg.trainer.get('strategy')} under "
            f"+launcher=slurm needs one SLURM task per device: hydra.launcher.tasks_per_node "
            f"is {tasks}. Give trainer.devices as a number and leave tasks_per_node and "
            "gpus_per_node at ${trainer.devices} (conf/launcher/slurm.yaml).")
    raise ConfigError(
        f"a sweep (-m) with trainer.devices={devices} and strategy "
        f"{cfg.trainer.get('strategy', 'auto')} under the '{launcher}' launcher: DDP starts "
        "its other ranks by re-running this command, which would run the whole sweep once per "
        "rank. Give each sweep job one device (trainer=gpu, the default trainer.devices=1), "
        "or run multi-GPU jobs through SLURM (+launcher=slurm: each job is a DDP group of "
        "tasks_per_node = trainer.devices tasks), or run a single multi-GPU job without -m.")


def cluster_plugins() -> list:
    """Trainer plugins for the cluster this process runs on: under SLURM, Lightning's
    ``SLURMEnvironment`` with ``auto_requeue=False`` (submitit owns requeueing); else none."""
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def scheduler_job() -> str | None:
    """The id of the submitit job running this Hydra job (SLURM: ``<array job id>_<task
    id>``; submitit_local: the job's process id), kept by a requeue; None under another
    launcher."""
    if launcher_name() not in SUBMITIT:
        return None
    return str(HydraConfig.get().job.id)


def requeued_run(cfg: DictConfig) -> bool:
    """Whether this job is the requeue of the unfinished run in its own output folder: the
    folder holds a run (:func:`zss.runtime.checkpointing.holds_a_run`) that did not end (neither
    ``finished`` nor ``skipped``) and whose ``progress.json`` names this submitit job id
    (:func:`scheduler_job`)."""
    job = scheduler_job()
    out = Path(cfg.paths.output_dir)
    if job is None or not holds_a_run(out):
        return False
    ended = run_status(out) in ("finished", "skipped")
    return read_progress(out).get("job") == job and not ended


def _one_gpu(trainer: DictConfig) -> bool:
    accelerator = str(trainer.get("accelerator", "auto"))
    devices = trainer.get("devices", "auto")
    return accelerator in ("auto", "gpu", "cuda") and isinstance(devices, int) and devices == 1


@contextmanager
def claim_gpu(cfg: DictConfig, count: int | None = None) -> Iterator[int | None]:
    """Under ``+launcher=joblib`` on a machine with several GPUs, hold a GPU no other job of
    the machine holds for as long as the job runs, and yield its index (the job sets
    ``trainer.devices=[index]``); yield None when the job does not train on exactly one GPU,
    the launcher is another, or there is one GPU.

    The claim is a lock file ``<paths.cache_dir>/gpu-locks/gpu<index>.lock`` (``filelock``,
    released when the job ends or its process dies).

    Args:
        cfg: the job's config (``trainer``, ``paths.cache_dir``).
        count: the number of GPUs (default: ``torch.cuda.device_count()``).

    Raises:
        ConfigError: every GPU is held by another job (``hydra.launcher.n_jobs`` above the
            number of GPUs).
    """
    if launcher_name() != "joblib" or not _one_gpu(cfg.trainer):
        yield None
        return
    if count is None:
        import torch

        count = torch.cuda.device_count()
    if count < 2:
        yield None
        return
    from filelock import FileLock, Timeout

    folder = Path(cfg.paths.cache_dir) / "gpu-locks"
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        lock = FileLock(folder / f"gpu{index}.lock")
        try:
            lock.acquire(timeout=0)
        except Timeout:
            continue
        try:
            log.info("joblib job: GPU %d of %d (%s)", index, count, lock.lock_file)
            yield index
        finally:
            lock.release()
        return
    raise ConfigError(f"all {count} GPUs are held by other jobs of this machine (lock files in "
                      f"{folder}): set hydra.launcher.n_jobs={count} or fewer")
