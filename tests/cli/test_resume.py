"""Resume after a kill (a real SIGKILL of a real `python -m zss.run`), same seed same
numbers, and `resume=DIR`'s refusals; on the tiniest generated data, with dropout on so that
the RNG state matters."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]

# 44 stage-1 training images at batch 4: 11 steps per epoch; last.ckpt every 3 steps
TINY = ["+experiment=demo", "model.backbone.dropout=0.5", "data.dataset.lengths.train=64",
        "data.dataset.lengths.val=8", "data.dataset.lengths.test=8", "data.dataset.size=32",
        "model.backbone.width=8", "model.backbone.fc_width=16", "data.batch_size=4",
        "stage1.max_epochs=3", "stage2.max_epochs=2", "visualize=0", "explain=false",
        "last_ckpt_every_n_steps=3", "trainer.deterministic=true"]

# `python -m zss.run`, SIGKILLed by itself right after global step K of a stage: a real kill
# at a known step (the test cannot race the process), with zss's code untouched
KILLER = '''
import os, runpy, signal, sys
import lightning as L
import zss.runtime.fitting as p
stage, k = os.environ["ZSS_TEST_KILL"].split(":")
class Kill(L.Callback):
    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step == int(k):
            os.kill(os.getpid(), signal.SIGKILL)
make = p.make_trainer
def _trainer(cfg, name, loggers, max_epochs):
    trainer, ckpt = make(cfg, name, loggers, max_epochs)
    if name == stage:
        trainer.callbacks.insert(0, Kill())
    return trainer, ckpt
p.make_trainer = _trainer
runpy.run_module("zss.run", run_name="__main__", alter_sys=True)
'''


def _zss(*args: str, kill: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if kill:
        env["ZSS_TEST_KILL"] = kill
    cmd = [sys.executable, "-c", KILLER, *args] if kill else [sys.executable, "-m", "zss.run",
                                                              *args]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600,
                          env=env)


def _run(out: Path, cache: Path, *extra: str, kill: str | None = None):
    return _zss(*TINY, f"hydra.run.dir={out}", f"paths.cache_dir={cache}", *extra, kill=kill)


def _weights(path: str) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _same_weights(a: str, b: str) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, glove_cache):
    """An uninterrupted two-stage run."""
    out = tmp_path_factory.mktemp("reference")
    proc = _run(out, glove_cache)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, json.loads((out / "metrics.json").read_text())


@pytest.mark.parametrize(("kill", "resumed_step", "every"), [
    ("stage1:13", 12, "3"),     # mid stage-1 epoch 1 (11 steps per epoch), last write step 12
    ("stage1:13", 11, "null"),  # only epoch-end writes: resumes at the end of epoch 0
    ("stage2:5", 3, "3"),       # mid stage-2 epoch 0: stage 1 is not run again
])
def test_killed_run_resumes_to_the_same_numbers(kill, resumed_step, every, reference, tmp_path,
                                                glove_cache):
    ref_dir, ref = reference
    out = tmp_path / "run"
    proc = _run(out, glove_cache, f"last_ckpt_every_n_steps={every}", kill=kill)
    assert proc.returncode == -9, proc.stderr[-3000:]  # SIGKILL: no handler ran
    stage = kill.split(":")[0]
    last = torch.load(out / "checkpoints" / stage / "last.ckpt", map_location="cpu",
                      weights_only=True)  # the full training state, loadable without pickle
    assert last["global_step"] == resumed_step and last["optimizer_states"]
    assert {"zss_rng_states", "loops", "callbacks", "state_dict"} <= set(last)
    best = [v for k, v in last["callbacks"].items() if k.startswith("ModelCheckpoint")]
    # stage 1 was killed after its first epoch's validation: the record holds that epoch
    assert len(best) == 1 and best[0]["best_model_path"] == (
        str(out / "checkpoints" / "stage1" / "stage1-00.ckpt") if stage == "stage1" else "")
    assert last["loops"]["fit_loop"]["state_dict"]["combined_loader"]  # the loader position
    assert not (out / "metrics.json").exists()
    progress = json.loads((out / "progress.json").read_text()) if stage == "stage2" else {}
    assert set(progress.get("completed", {})) == ({"stage1"} if stage == "stage2" else set())
    overrides = (out / ".hydra" / "overrides.yaml").read_text()
    log_before = (out / "run.log").read_text()

    proc = _zss(f"resume={out}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the folder holds the run's own checkpoints: no Lightning warning about it
    assert "exists and is not empty" not in proc.stderr + proc.stdout
    payload = json.loads((out / "metrics.json").read_text())
    assert payload["metrics"] == ref["metrics"]
    assert payload["resumed"] == [{"stage": stage, "from_step": resumed_step}]
    for key in ("stage1_ckpt", "stage2_ckpt"):  # the same selection, bit-identical weights
        assert Path(payload[key]).parent == out / "checkpoints" / key[:6]
        assert Path(payload[key]).name == Path(ref[key]).name
        assert _same_weights(payload[key], ref[key]), key
    assert not list(out.glob("checkpoints/*/last.ckpt"))  # each finished stage dropped it
    # written only into the run's own directory, nothing it had replaced
    assert (out / ".hydra" / "overrides.yaml").read_text() == overrides
    log_after = (out / "run.log").read_text()
    assert log_after.startswith(log_before) and f"{stage}: resuming from" in log_after
    assert sorted(p.name for p in (out / "csv").iterdir()) == ["version_0", "version_1"]
    assert not list(out.glob("**/.*.tmp-*"))  # no temporary file left behind
    if stage == "stage1":
        assert "stage 1 finished before the resume" not in log_after
    else:
        assert "stage 1 finished before the resume" in log_after


def test_same_seed_same_numbers_other_seed_other_run(reference, tmp_path, glove_cache):
    _, ref = reference
    again = tmp_path / "again"
    assert _run(again, glove_cache).returncode == 0
    payload = json.loads((again / "metrics.json").read_text())
    assert payload["metrics"] == ref["metrics"] and payload["seed"] == ref["seed"] == 12345
    for key in ("stage1_ckpt", "stage2_ckpt"):
        assert _same_weights(payload[key], ref[key]), key

    other = tmp_path / "other"
    assert _run(other, glove_cache, "seed=7", "stages=[stage1]").returncode == 0
    payload = json.loads((other / "metrics.json").read_text())
    assert payload["seed"] == 7
    assert not _same_weights(payload["stage1_ckpt"], ref["stage1_ckpt"])


def test_resume_refuses_what_it_cannot_continue(reference, tmp_path):
    ref_dir, _ = reference
    finished = _zss(f"resume={ref_dir}")
    assert finished.returncode == 2 and "nothing to resume" in finished.stderr
    assert "Traceback" not in finished.stderr
    with_overrides = _zss(f"resume={ref_dir}", "seed=3")
    assert with_overrides.returncode == 2 and "give it alone" in with_overrides.stderr
    before = {f: f.read_bytes() for f in ref_dir.rglob("*") if f.is_file()}
    into_a_run = _run(ref_dir, tmp_path / "cache")  # a new run pointed at a finished one
    assert into_a_run.returncode == 2 and "already holds a finished run" in into_a_run.stderr
    # refused before Hydra starts: its .hydra/ record, which a resume reads, is untouched too
    assert {f: f.read_bytes() for f in ref_dir.rglob("*") if f.is_file()} == before
    killed = tmp_path / "killed"
    (killed / "checkpoints" / "stage1").mkdir(parents=True)
    into_killed = _run(killed, tmp_path / "cache")
    assert into_killed.returncode == 2 and f"resume={killed}" in into_killed.stderr
    assert sorted(p.name for p in killed.iterdir()) == ["checkpoints"]
    (tmp_path / "not_a_run").mkdir()
    not_a_run = _zss(f"resume={tmp_path / 'not_a_run'}")
    assert not_a_run.returncode == 2 and ".hydra/config.yaml" in not_a_run.stderr
    missing = _zss(f"resume={tmp_path / 'missing'}")
    assert missing.returncode == 2 and "no such folder" in missing.stderr
