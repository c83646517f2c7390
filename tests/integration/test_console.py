"""On a terminal the progress bar names the stage; in a pipe, plain progress lines inside each
epoch (zss.runtime.console), in a real fit."""

from __future__ import annotations

import logging
from pathlib import Path

from hydra import compose, initialize_config_dir
from lightning.pytorch.callbacks import Callback

import zss.runtime.runner
from zss.runtime import fitting

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_on_a_terminal_the_progress_bar_names_the_stage(tmp_path, monkeypatch, capsys,
                                                        glove_cache):
    monkeypatch.setattr("zss.runtime.console.is_terminal", lambda: True)
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path}",
                   f"paths.cache_dir={glove_cache}", "data.dataset.lengths.train=64",
                   "data.dataset.lengths.val=8", "data.dataset.lengths.test=8",
                   "data.dataset.size=32", "model.backbone.width=8", "model.backbone.fc_width=16",
                   "+trainer.limit_train_batches=2", "+trainer.limit_val_batches=1",
                   "stage1.max_epochs=1", "stage2.max_epochs=1", "visualize=0", "explain=false",
                   "trainer.enable_progress_bar=true")  # (the demo turns the bar off)
    zss.runtime.runner.train_and_test(cfg)
    out = capsys.readouterr()
    bars = out.out + out.err
    assert "stage 1 epoch 0" in bars and "stage 2 epoch 0" in bars and "\r" in bars
    assert "Summary (percent; " in out.out


class _Clock:
    """The clock of zss.runtime.console, advanced only by the training batches: the lines
    are then the same on a busy machine as on an idle one."""

    def __init__(self) -> None:
        self.t = 1000.0

    def monotonic(self) -> float:
        return self.t


class _SlowSteps(Callback):
    def __init__(self, clock: _Clock) -> None:
        self.clock = clock

    def on_train_batch_end(self, *args):
        self.clock.t += 2.0  # each training batch "takes" 2 s


def test_piped_output_prints_progress_lines_inside_an_epoch(tmp_path, monkeypatch, caplog,
                                                            glove_cache):
    """Not a terminal: a line every callbacks.progress_lines.every_s inside each epoch, with
    the step of steps, the images/s and the time left (epoch, stage) at that rate; a finished
    stage with keep_last_ckpt=true keeps its last.ckpt beside the selected checkpoint."""
    monkeypatch.setattr("zss.runtime.console.is_terminal", lambda: False)
    clock = _Clock()
    monkeypatch.setattr("zss.runtime.console.time", clock)
    make = fitting.make_trainer

    def slow_trainer(*args, **kwargs):
        trainer, ckpt = make(*args, **kwargs)
        trainer.callbacks.insert(0, _SlowSteps(clock))  # before the progress lines
        return trainer, ckpt

    monkeypatch.setattr(fitting, "make_trainer", slow_trainer)
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path}",
                   f"paths.cache_dir={glove_cache}", "data.dataset.lengths.train=64",
                   "data.dataset.lengths.val=8", "data.dataset.lengths.test=8",
                   "data.dataset.size=32", "model.backbone.width=8", "model.backbone.fc_width=16",
                   "data.batch_size=4", "+trainer.limit_train_batches=8",
                   "+trainer.limit_val_batches=1", "stage1.max_epochs=2", "stages=[stage1]",
                   "callbacks.progress_lines.every_s=5", "keep_last_ckpt=true")
    with caplog.at_level(logging.INFO, logger="zss"):
        payload = zss.runtime.runner.train_and_test(cfg)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("stage 1 epoch")]
    # 8 batches of 4 images, 2 s each: a line once 5 s have passed since the epoch's start or
    # the previous line (after batches 3 and 6), at 4 / 2 = 2 images/s; left: the remaining
    # batches x 2 s, the stage's adding epoch 2's 8 batches while epoch 1 runs
    assert lines[:2] == ["stage 1 epoch 1/2: step 3/8, 2.0 images/s, left: epoch 10 s, stage 26 s",
                         "stage 1 epoch 1/2: step 6/8, 2.0 images/s, left: epoch 4 s, stage 20 s"]
    assert lines[2].startswith("stage 1 epoch 1/2: train/fcn_je/loss ") and lines[2].endswith(
        " (16 s)")
    assert lines[3:5] == ["stage 1 epoch 2/2: step 3/8, 2.0 images/s, left: epoch 10 s, stage 10 s",
                          "stage 1 epoch 2/2: step 6/8, 2.0 images/s, left: epoch 4 s, stage 4 s"]
    assert lines[5].startswith("stage 1 epoch 2/2: train/fcn_je/loss ") and len(lines) == 6
    assert Path(payload["stage1_ckpt"]).is_file()
    assert (tmp_path / "checkpoints" / "stage1" / "last.ckpt").is_file()
