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
from zss.runtime.launchers import check_sweep_launch, claim_gpu, cluster_plugins, relaunched_ranks

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
    assert cfg.hydra.launcher.tasks_per_node == cfg.hydra.launcher.gpus_per_node == 4
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
