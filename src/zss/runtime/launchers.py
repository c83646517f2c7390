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
- :func:`slurm_gpus` (the ``${zss.gpus:...}`` resolver of ``conf/launcher/slurm.yaml``): a
  SLURM job asks for GPUs only when its trainer trains on them, so a CPU run schedules on a
  partition without GPUs.
- :func:`submit_said_the_zss_way` (``+launcher=slurm``'s launcher,
  ``hydra_plugins.zss_launcher.SlurmLauncher``): sbatch's refusals said as zss errors
  (:func:`sbatch_refusal`), and submitit's "Bypassing sacct error" warning (a cluster without
  accounting storage) printed once instead of at every poll.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, ListConfig, OmegaConf

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
            f"is {tasks}. Give trainer.devices as a number and leave tasks_per_node "
            "at ${trainer.devices} (conf/launcher/slurm.yaml).")
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


def slurm_gpus(accelerator: Any, devices: Any) -> int | None:
    """GPUs per node a SLURM job asks for (``hydra.launcher.gpus_per_node`` =
    ``${zss.gpus:${trainer.accelerator},${trainer.devices}}``): the trainer's device count when
    it trains on GPUs (``accelerator`` ``gpu`` or ``cuda``: ``trainer=gpu``, ``trainer=ddp``),
    else None (the default trainer's ``auto``, ``cpu``): submitit then writes no GPU option,
    and a CPU run schedules on a partition without GPUs, where a GPU request is refused
    (``Invalid generic resource (gres) specification``).

    Raises:
        ConfigError: a GPU trainer whose ``devices`` is no count (``auto``, ``-1``).
    """
    if str(accelerator).lower() not in ("gpu", "cuda"):
        return None
    n = device_count(devices)
    if n is None:
        raise ConfigError(f"trainer.devices={devices} under +launcher=slurm: SLURM needs the "
                          "number of GPUs per job; give trainer.devices as a number")
    return n


OmegaConf.register_new_resolver("zss.gpus", slurm_gpus, replace=True)

# sbatch's refusal (its "error: ..." line) -> the hydra.launcher keys that choose it
_REFUSALS = (
    ("account", "hydra.launcher.account"),
    ("qos", "hydra.launcher.qos"),
    ("partition", "hydra.launcher.partition (the partitions: sinfo -s)"),
    ("generic resource", "hydra.launcher.partition to one with GPUs (trainer=gpu/ddp), or "
                         "hydra.launcher.gpus_per_node (a CPU trainer asks for none)"),
    ("gres", "hydra.launcher.gpus_per_node"),
    ("memory", "hydra.launcher.mem_gb (a node's memory: sinfo -o '%P %m')"),
    ("node configuration is not available",
     "hydra.launcher.cpus_per_task, mem_gb, gpus_per_node or tasks_per_node (what a node of "
     "the partition has: sinfo -o '%P %c %m %G')"),
    ("time limit", "hydra.launcher.timeout_min (the partition's limit: sinfo -o '%P %l')"),
)


def sbatch_refusal(stderr: str) -> str:
    """The zss error for sbatch's refusal of a sweep (``stderr``: what sbatch printed): its
    last ``error:`` (or ``fatal:``) line quoted and the ``hydra.launcher.*`` key that chooses
    what it refused (partition, GPUs, memory, CPUs, account, QOS, time limit); a line that
    names none of them gets every key of conf/launcher/slurm.yaml and the other cause, a
    SLURM that sbatch cannot use from here (``sinfo`` tells)."""
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower() or "fatal" in ln.lower()] or lines
    line = errors[-1] if errors else "(sbatch printed nothing)"
    keys = next((k for word, k in _REFUSALS if word in line.lower()), None)
    if keys is None:
        return (f"sbatch failed, nothing was submitted: sbatch said \"{line}\". If it refused "
                "what the jobs ask for, change hydra.launcher.partition, gpus_per_node, "
                "cpus_per_task, mem_gb, timeout_min or additional_parameters "
                "(conf/launcher/slurm.yaml) on the command line; if SLURM itself is not "
                "reachable from here (sinfo fails too), submit from a node of the cluster.")
    return (f"SLURM refused the sweep, nothing was submitted: sbatch said \"{line}\". Change "
            f"{keys} on the command line (hydra.launcher.KEY=VALUE).")


class _Once(logging.Filter):
    """Lets the first record whose message holds ``text`` through and drops the others."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text, self.seen = text, False

    def filter(self, record: logging.LogRecord) -> bool:
        if self.text not in record.getMessage():
            return True
        seen, self.seen = self.seen, True
        return not seen


def submit_said_the_zss_way(submit: Callable[[], Any]) -> Any:
    """Run ``submit`` (a submitit launcher's ``launch``: submit the sweep, wait for its jobs)
    with sbatch's refusal ended as :func:`sbatch_refusal`'s one paragraph (exit status 2)
    instead of submitit's traceback, and submitit's warning that ``sacct`` failed (a cluster
    without accounting storage, where submitit reads a job's end from its result file)
    printed once, not at every poll. Any other error is raised unchanged.

    A refusal is recognised as submitit raises it: ``FailedJobError`` from the
    ``subprocess.CalledProcessError`` of the ``sbatch`` command, its ``stderr`` sbatch's
    lines (facebookincubator/submitit, ``submitit/core/utils.py`` ``CommandFunction``, called
    by ``submitit/core/core.py`` ``Executor._submit_command``).

    Raises:
        SystemExit: (status 2, after the paragraph on stderr) sbatch refused the submission.
    """
    from submitit.core.utils import FailedJobError

    logger = logging.getLogger("submitit")
    once = _Once("Bypassing sacct error")
    logger.addFilter(once)
    try:
        return submit()
    except FailedJobError as err:
        cause = err.__cause__
        if not (isinstance(cause, subprocess.CalledProcessError)
                and "sbatch" in str(cause.cmd[0])):
            raise
        print(f"\nzss: error: {sbatch_refusal(str(cause.stderr or err))}", file=sys.stderr)
        sys.exit(2)
    finally:
        logger.removeFilter(once)
