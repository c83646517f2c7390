"""The launchers (conf/launcher/, zss.runtime.launchers): DDP sweeps refused where they would
relaunch, one owner of requeueing under SLURM, one GPU per joblib job."""

import os

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import open_dict

from zss.runtime.errors import ConfigError
from zss.runtime.launchers import (
    check_sweep_launch,
    claim_gpu,
    cluster_plugins,
    relaunched_ranks,
    sbatch_refusal,
    slurm_gpus,
    submit_said_the_zss_way,
)

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def _cfg(*overrides):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=["+experiment=demo", *overrides],
                       return_hydra_config=True)


@pytest.fixture
def as_multirun_job():
    """Install a composed config as the running Hydra job's (mode MULTIRUN)."""
    def install(cfg):
        with open_dict(cfg):
            cfg.hydra.mode = RunMode.MULTIRUN
        HydraConfig.instance().set_config(cfg)
        return cfg
    yield install
    HydraConfig.instance().cfg = None


@pytest.mark.parametrize("launcher", [None, "joblib", "submitit_local"])
def test_a_ddp_sweep_under_a_local_launcher_is_refused(as_multirun_job, launcher):
    cfg = as_multirun_job(_cfg("trainer=ddp", *([f"+launcher={launcher}"] if launcher else [])))
    with pytest.raises(ConfigError, match="whole sweep once per rank") as err:
        check_sweep_launch(cfg)
    assert f"'{launcher or 'basic'}' launcher" in str(err.value)
    assert "+launcher=slurm" in str(err.value)


def test_under_slurm_a_ddp_sweep_needs_one_task_per_device(as_multirun_job):
    cfg = as_multirun_job(_cfg("trainer=ddp", "trainer.devices=4", "+launcher=slurm"))
    assert cfg.hydra.launcher.tasks_per_node == 4
    assert cfg.hydra.launcher.gpus_per_node is None  # the demo trains on the CPU
    check_sweep_launch(cfg)  # accepted: SLURM starts the 4 ranks, nothing relaunches
    cfg = as_multirun_job(_cfg("trainer=ddp", "+launcher=slurm",
                               "hydra.launcher.tasks_per_node=1"))
    with pytest.raises(ConfigError, match="tasks_per_node is 1"):
        check_sweep_launch(cfg)


def test_one_device_per_job_and_spawning_strategies_are_not_relaunched(as_multirun_job):
    check_sweep_launch(as_multirun_job(_cfg("trainer=gpu")))
    check_sweep_launch(as_multirun_job(_cfg("trainer=ddp", "trainer.devices=1")))
    assert relaunched_ranks(_cfg("trainer=ddp", "trainer.strategy=ddp_spawn").trainer) == 0
    assert relaunched_ranks(_cfg("trainer=ddp", "trainer.devices='0,1,2'").trainer) == 3
    assert relaunched_ranks(_cfg("trainer=ddp", "trainer.devices=-1").trainer) is None


def test_a_single_ddp_run_is_not_refused():
    cfg = _cfg("trainer=ddp")  # RUN mode (no -m): one DDP job, Lightning starts the ranks
    HydraConfig.instance().set_config(cfg)
    try:
        check_sweep_launch(cfg)
    finally:
        HydraConfig.instance().cfg = None


def test_under_slurm_lightning_does_not_requeue_submitit_does(monkeypatch):
    for key in list(os.environ):
        if key.startswith("SLURM_"):
            monkeypatch.delenv(key)
    assert cluster_plugins() == []
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_JOB_NAME", "run")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.setenv("SLURM_PROCID", "0")
    monkeypatch.setenv("SLURM_LOCALID", "0")
    monkeypatch.setenv("SLURM_NODEID", "0")
    monkeypatch.setenv("SLURM_NODELIST", "node1")
    trainer = L.Trainer(accelerator="cpu", devices=1, plugins=cluster_plugins(), logger=False,
                        enable_checkpointing=False)
    env = trainer._accelerator_connector.cluster_environment
    assert isinstance(env, SLURMEnvironment) and env.auto_requeue is False
    # Lightning registers its requeue handler only when auto_requeue is on
    trainer._signal_connector.register_signal_handlers()
    try:
        assert not any(h.__name__ == "_slurm_sigusr_handler_fn" for h in getattr(
            __import__("signal").getsignal(env.requeue_signal), "signal_handlers", []))
    finally:
        trainer._signal_connector.teardown()


def test_joblib_jobs_on_a_multi_gpu_machine_each_hold_their_own_gpu(tmp_path, as_multirun_job):
    cfg = as_multirun_job(_cfg("+launcher=joblib", "trainer.accelerator=gpu",
                               f"paths.cache_dir={tmp_path}"))
    with claim_gpu(cfg, count=2) as first, claim_gpu(cfg, count=2) as second:
        assert (first, second) == (0, 1)
        with pytest.raises(ConfigError, match="n_jobs=2 or fewer"), claim_gpu(cfg, count=2):
            pass
    with claim_gpu(cfg, count=2) as again:  # released at the end of the job
        assert again == 0
    with claim_gpu(cfg, count=1) as one:  # one GPU: nothing to share out
        assert one is None
    cpu = as_multirun_job(_cfg("+launcher=joblib", f"paths.cache_dir={tmp_path}"))
    with claim_gpu(cpu, count=2) as none:  # the demo trains on the CPU
        assert none is None


def test_the_entry_point_refuses_a_ddp_sweep_before_anything_is_written(
        as_multirun_job, tmp_path, capsys):
    import zss.run

    out = tmp_path / "job"
    cfg = as_multirun_job(_cfg("trainer=ddp", f"paths.output_dir={out}"))
    with pytest.raises(SystemExit) as exit_:
        zss.run.main(cfg)
    assert exit_.value.code == 2 and "whole sweep once per rank" in capsys.readouterr().err
    assert not out.exists()


def test_under_slurm_a_job_asks_for_gpus_only_when_its_trainer_uses_them():
    """gpus_per_node: trainer=gpu / ddp ask for trainer.devices GPUs, a CPU trainer (the
    default auto, cpu) for none (None: submitit writes no GPU option)."""
    gpus = {}
    for name, overrides in {"auto": [], "gpu": ["trainer=gpu"], "ddp": ["trainer=ddp"],
                            "ddp4": ["trainer=ddp", "trainer.devices=4"],
                            "ddp_cpu": ["trainer=ddp", "trainer.accelerator=cpu"]}.items():
        with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
            cfg = compose("config", overrides=[*overrides, "+launcher=slurm"],
                          return_hydra_config=True)
        gpus[name] = cfg.hydra.launcher.gpus_per_node
    assert gpus == {"auto": None, "gpu": 1, "ddp": 2, "ddp4": 4, "ddp_cpu": None}
    with pytest.raises(ConfigError, match="trainer.devices=auto"):
        slurm_gpus("gpu", "auto")


@pytest.mark.parametrize("line, key", [
    ("sbatch: error: Batch job submission failed: Invalid partition name specified",
     "hydra.launcher.partition"),
    ("sbatch: error: Invalid generic resource (gres) specification",
     "hydra.launcher.gpus_per_node"),
    ("sbatch: error: Memory specification can not be satisfied", "hydra.launcher.mem_gb"),
    ("sbatch: error: Batch job submission failed: Requested node configuration is not "
     "available", "hydra.launcher.cpus_per_task"),
    ("sbatch: error: Batch job submission failed: Invalid account or account/partition "
     "combination specified", "hydra.launcher.account"),
    ("sbatch: error: something new", "hydra.launcher.partition, gpus_per_node"),
    ("sbatch: fatal: Unable to process configuration file", "sinfo fails too"),
])
def test_an_sbatch_refusal_names_the_launcher_key_to_change(line, key):
    message = sbatch_refusal(f"sbatch: warning: a note\n{line}\n")
    assert f'sbatch said "{line}"' in message and key in message and "\n" not in message


def test_a_refused_submission_exits_2_and_the_sacct_warning_is_printed_once(
        tmp_path, monkeypatch, capsys):
    """sbatch (a stand-in script that refuses) called through submitit's SLURM executor, as
    hydra-submitit-launcher does; submitit's sacct warning logged at three polls."""
    import logging

    import submitit

    sbatch, srun = tmp_path / "sbatch", tmp_path / "srun"  # srun: submitit looks for it
    sbatch.write_text("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Invalid "
                      "partition name specified' >&2\nexit 1\n")
    srun.write_text("#!/bin/sh\nexit 1\n")
    sbatch.chmod(0o755)
    srun.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    records = []
    handler = logging.Handler()
    handler.emit = records.append

    def submit():
        logger = logging.getLogger("submitit")
        logger.addHandler(handler)
        try:
            for call in (1, 2, 3):
                logger.warning(f"Call #{call} - Bypassing sacct error ..., status may be "
                               "inaccurate.")
            logger.warning("another warning")
        finally:
            logger.removeHandler(handler)
        executor = submitit.AutoExecutor(folder=tmp_path / "jobs", cluster="slurm")
        return executor.map_array(print, [1, 2])

    with pytest.raises(SystemExit) as exit_:
        submit_said_the_zss_way(submit)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "zss: error: SLURM refused the sweep" in err and "hydra.launcher.partition" in err
    assert [r.getMessage()[:7] for r in records] == ["Call #1", "another"]
    with pytest.raises(ValueError, match="not sbatch"):  # any other error: unchanged
        submit_said_the_zss_way(lambda: (_ for _ in ()).throw(ValueError("not sbatch")))
