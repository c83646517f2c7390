"""A submitit_local sweep (conf/launcher/) runs to the end with one job preempted and
requeued, which continues its run in its own folder."""

import json
import os
import re
import subprocess
import sys

from tests.helpers import TINY_DEMO

REPO = __import__("pathlib").Path(__file__).resolve().parents[2]

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
