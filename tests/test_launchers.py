"""The launchers (conf/launcher/, zss.runtime.launchers): a submitit_local sweep that runs to the end
with one job preempted and requeued, DDP sweeps refused where they would relaunch, one
owner of requeueing under SLURM, one GPU per joblib job."""

import json
import os
import re
import subprocess
import sys

import lightning as L
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.plugins.environments import SLURMEnvironment
from omegaconf import open_dict

from tests.helpers import TINY_DEMO
from zss.runtime.errors import ConfigError
from zss.runtime.launchers import check_sweep_launch, claim_gpu, cluster_plugins, relaunched_ranks

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]

PREEMPT = '''
import os, signal, threading, time
from pathlib import Path

from hydra.experimental.callback import Callback


class PreemptOnce(Callback):
    """Job 0 sends itself submitit's preemption signal once, right after its first stage-1
    last.ckpt is written (what SLURM does to a preempted or timing-out job)."""

    def on_job_start(self, config, **kwargs):
        out = Path(config.hydra.runtime.output_dir)
        marker = out.parent / "preempted"
        if config.hydra.job.num != 0 or marker.exists():
            return

        def watch():
            while not (out / "checkpoints" / "stage1" / "last.ckpt").exists():
                time.sleep(0.005)
            marker.write_text(out.name)
            os.kill(os.getpid(), signal.SIGUSR2)

        threading.Thread(target=watch, daemon=True).start()
'''


@pytest.mark.slow
def test_a_submitit_local_sweep_finishes_and_a_preempted_job_resumes_in_its_folder(
        tmp_path, glove_cache):
    """Two jobs that train the same model (they differ only in how often last.ckpt is
    written); job 0 is preempted in stage 1, requeued by submitit and continues its run in
    its own folder: it ends with the same test metrics as job 1, bit for bit."""
    (tmp_path / "preempt.py").write_text(PREEMPT)
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY_DEMO if not o.startswith(("+trainer.limit_train_batches",
                                                      "stage1.max_epochs"))]
    cmd = [sys.executable, "-m", "zss.run", "-m", "+experiment=demo", "+launcher=submitit_local",
           *tiny, "+trainer.limit_train_batches=6", "stage1.max_epochs=2",
           "+trainer.limit_test_batches=2", "trainer.deterministic=true",
           f"paths.cache_dir={glove_cache}", f"hydra.sweep.dir={sweep}",
           "+hydra.callbacks.preempt._target_=preempt.PreemptOnce",
           "last_ckpt_every_n_steps=1,100"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    # one folder per job, named <job number>_<submitit job id>, and no third one
    assert [p.name.split("_")[0] for p in jobs] == ["0", "1"]
    assert (sweep / "preempted").read_text() == jobs[0].name
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "this job is preempted" in logs and "Requeued job" in logs
    first, second = (json.loads((p / "metrics.json").read_text()) for p in jobs)
    assert first["status"] == second["status"] == "finished"
    # job 0 continued stage 1 from its last.ckpt; job 1 ran straight through
    assert first["resumed"][0]["stage"] == "stage1" and first["resumed"][0]["from_step"] >= 1
    assert "resumed" not in second
    log = (jobs[0] / "run.log").read_text()
    assert "Requeued job: continuing the run in" in log
    # the epoch the requeue continued is timed from the restart, not from 0
    seconds = [int(s) for s in re.findall(r"stage 1 epoch \d/2: .* \((\d+) s\)", log)]
    assert len(seconds) >= 2 and max(seconds) < 600, seconds
    assert json.loads((jobs[0] / "progress.json").read_text())["job"] == jobs[0].name[2:]
    assert first["metrics"] == second["metrics"] and first["metrics"]["test/fcn_je/miou"] > 0


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
