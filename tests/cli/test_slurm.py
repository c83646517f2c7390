"""``+launcher=slurm`` on a real single-node SLURM (tests/cli/slurm_cluster.py: Debian's
slurm-wlm and munge, started for this module and stopped after it; every test skips, saying
why, where it cannot start). All SLURM tests are in this one module, so that under
``pytest -n 2 --dist loadfile`` one worker owns the cluster.

Shrunk demo runs (tests/helpers.py TINY_DEMO), 1 CPU and 1 GB per job: a 2-job sweep as a
job array in which job 0 is requeued by ``scontrol requeue`` in stage 1 (it continues its
run and ends with job 1's test metrics, bit for bit); a job past its time limit requeued by
submitit; an sbatch refusal said as a zss error; a DDP job of 2 SLURM tasks on CPU."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.cli import slurm_cluster
from tests.helpers import TINY_DEMO

REPO = Path(__file__).resolve().parents[2]

# A Hydra callback: job 0 stops in stage 1, right after its first last.ckpt is written, and
# waits there (what a long job looks like when SLURM requeues it or its time runs out); the
# marker file tells the test, and the requeued attempt, that it happened.
STALL = '''
import time
from pathlib import Path

import lightning
from hydra.experimental.callback import Callback


class StallInStage1(Callback):
    def on_job_start(self, config, **kwargs):
        out = Path(config.hydra.runtime.output_dir)
        marker = out.parent / "stalled"
        if config.hydra.job.num != 0 or marker.exists():
            return
        save = lightning.Trainer.save_checkpoint

        def save_then_stall(trainer, path, *args, **kw):
            save(trainer, path, *args, **kw)
            if str(path).endswith("stage1/last.ckpt") and not marker.exists():
                marker.write_text(out.name)
                time.sleep(3600)

        lightning.Trainer.save_checkpoint = save_then_stall
'''


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment of a running one-node SLURM (``SLURM_CONF``) and a folder with the
    STALL callback on ``PYTHONPATH``."""
    root = tmp_path_factory.mktemp("slurm")
    try:
        env = slurm_cluster.start(root)
    except slurm_cluster.Unavailable as err:
        pytest.skip(f"no SLURM to test on: {err}")
    (root / "stall.py").write_text(STALL)
    env["PYTHONPATH"] = os.pathsep.join([str(root), *filter(None, [env.get("PYTHONPATH")])])
    yield env
    slurm_cluster.stop(root, env)


@pytest.fixture(scope="module")
def time_limited_sweep(slurm, tmp_path_factory, glove_cache):
    """A one-job sweep whose job stalls in stage 1 until its time limit's signal: started by
    the first test that asks for it, so that its stalled minute passes beside that test's
    sweep (SLURM signals a job's time limit in passes 30 s apart: a 1-minute limit leaves a
    requeued attempt too little time to start Python and finish, so the limit is 2 minutes
    and the signal comes 60 s before it). Yields the ``Popen`` and the sweep folder."""
    sweep = tmp_path_factory.mktemp("time-limit") / "sweep"
    proc = subprocess.Popen(
        _sweep(slurm, sweep, f"paths.cache_dir={glove_cache}",
               "+hydra.callbacks.stall._target_=stall.StallInStage1", "last_ckpt_every_n_steps=1",
               "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=60", "seed=0"),
        cwd=REPO, env=slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    yield proc, sweep
    proc.kill()


def _sweep(env, sweep: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "zss.run", "-m", "+experiment=demo", "+launcher=slurm",
            *TINY_DEMO, "trainer.deterministic=true", "+trainer.limit_test_batches=2",
            "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
            f"hydra.sweep.dir={sweep}", *overrides]


def _jobs(sweep: Path) -> list[Path]:
    return sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} not written in {seconds} s"
        time.sleep(0.2)


@pytest.mark.usefixtures("time_limited_sweep")  # its job stalls beside this sweep
def test_a_sweep_is_a_job_array_and_a_requeued_job_continues_its_run(slurm, tmp_path,
                                                                     glove_cache):
    """Two jobs that train the same model (they differ only in how often last.ckpt is
    written) as one job array of the CPU trainer (no GPU asked for); job 0 is requeued by
    ``scontrol requeue`` in stage 1, waits for SLURM's requeue delay, and continues its run in
    its own folder: it ends with job 1's test metrics, bit for bit."""
    sweep = tmp_path / "sweep"
    proc = subprocess.Popen(
        _sweep(slurm, sweep, f"paths.cache_dir={glove_cache}",
               "+hydra.callbacks.stall._target_=stall.StallInStage1",
               "last_ckpt_every_n_steps=1,100"),
        cwd=REPO, env=slurm, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(sweep / "stalled", proc)
        job = (sweep / "stalled").read_text().split("_", 1)[1]  # <array job id>_<task id>
        subprocess.run(["scontrol", "requeue", job], env=slurm, check=True, timeout=30)
        out, err = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    array = job.split("_")[0]
    jobs = _jobs(sweep)
    assert [p.name for p in jobs] == [f"0_{array}_0", f"1_{array}_1"]
    submission = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "--array=0-1" in submission and "gpu" not in submission  # a CPU run asks for none
    # submitit's warning for a cluster without accounting storage, once for the sweep
    assert len(set(re.findall(r"Call #(\d+) - Bypassing sacct error", err))) <= 1, err[-3000:]
    first, second = (json.loads((p / "metrics.json").read_text()) for p in jobs)
    assert first["status"] == second["status"] == "finished"
    for p in jobs:
        assert json.loads((p / "progress.json").read_text())["job"] == p.name.split("_", 1)[1]
    assert first["resumed"][0]["stage"] == "stage1" and first["resumed"][0]["from_step"] >= 1
    assert "resumed" not in second
    assert "Requeued job: continuing the run in" in (jobs[0] / "run.log").read_text()
    # a few steps leave the tiny model's test mIoU at 0: the stage-1 weights that job 0
    # trained across its requeue are compared too
    assert first["metrics"] == second["metrics"] and first["metrics"]["val/seenmask/loss"] > 0
    weights = [torch.load(r["stage1_ckpt"], map_location="cpu", weights_only=False)["state_dict"]
               for r in (first, second)]
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_a_job_past_its_time_limit_is_requeued_by_submitit_and_finishes(time_limited_sweep):
    """A 2-minute job stalls in stage 1 until SLURM signals the end of its time
    (signal_delay_s = 60 s before it); submitit requeues it and the next attempt continues
    the run in the same folder and finishes."""
    proc, sweep = time_limited_sweep
    try:
        out, err = proc.communicate(timeout=400)
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:] + err[-3000:]
    (job,) = _jobs(sweep)
    logs = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.*"))
    assert "this job is timed-out" in logs and "Requeued job" in logs, logs[-3000:]
    result = json.loads((job / "metrics.json").read_text())
    assert result["status"] == "finished" and result["resumed"][0]["stage"] == "stage1"
    assert "Requeued job: continuing the run in" in (job / "run.log").read_text()


def test_an_sbatch_refusal_is_a_zss_error(slurm, tmp_path):
    proc = subprocess.run(_sweep(slurm, tmp_path / "sweep", "hydra.launcher.partition=nowhere",
                                 "seed=1,2"),
                          cwd=REPO, env=slurm, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr[-3000:]
    error = proc.stderr[proc.stderr.index("zss: error:"):]
    assert "Invalid partition name specified" in error and "hydra.launcher.partition" in error
    assert "Traceback" not in proc.stderr
    assert len(error.strip().splitlines()) == 1


def test_a_ddp_job_is_two_slurm_tasks_that_count_every_test_image_once(slurm, tmp_path,
                                                                       glove_cache):
    """trainer=ddp on CPU (gloo) with 2 devices: one SLURM job of 2 tasks, no GPU asked for;
    the test split's 8 images are each counted once."""
    sweep = tmp_path / "sweep"
    proc = subprocess.run(
        _sweep(slurm, sweep, f"paths.cache_dir={glove_cache}", "trainer=ddp",
               "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
               "seed=0"),
        cwd=REPO, env=slurm, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    submission = next((sweep / ".submitit").glob("*/*_submission.sh")).read_text()
    assert "--ntasks-per-node=2" in submission and "gpu" not in submission
    (job,) = _jobs(sweep)
    result = json.loads((job / "metrics.json").read_text())
    assert result["status"] == "finished" and result["test_images"] == 8
    log = "".join(p.read_text() for p in (sweep / ".submitit").glob("*/*_log.err"))
    assert "world_size=2" in log or "MEMBER: 2/2" in log, log[-3000:]
