"""On a terminal the progress bar names the stage; in a pipe, plain progress lines inside each
epoch (zss.runtime.console), in a real fit."""

from __future__ import annotations

import logging
import re
import time
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


SLEEP_S = 0.15  # per training batch: 8 batches make an epoch longer than the interval


class _SlowSteps(Callback):
    def on_train_batch_end(self, *args):
        time.sleep(SLEEP_S)


LINE = re.compile(r"stage 1 epoch (\d)/2: step (\d+)/(\d+), ([\d.]+) images/s, "
                  r"left: epoch (\d+) s, stage (\d+) s$")


def test_piped_output_prints_progress_lines_inside_an_epoch(tmp_path, monkeypatch, caplog,
                                                            glove_cache):
    """Not a terminal: a line every callbacks.progress_lines.every_s inside each epoch, with
    the step of steps, the images/s and the time left (epoch, stage) at that rate; a finished
    stage with keep_last_ckpt=true keeps its last.ckpt beside the selected checkpoint."""
    monkeypatch.setattr("zss.runtime.console.is_terminal", lambda: False)
    make = fitting.make_trainer

    def slow_trainer(*args, **kwargs):
        trainer, ckpt = make(*args, **kwargs)
        trainer.callbacks.insert(0, _SlowSteps())
        return trainer, ckpt

    monkeypatch.setattr(fitting, "make_trainer", slow_trainer)
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path}",
                   f"paths.cache_dir={glove_cache}", "data.dataset.lengths.train=64",
                   "data.dataset.lengths.val=8", "data.dataset.lengths.test=8",
                   "data.dataset.size=32", "model.backbone.width=8", "model.backbone.fc_width=16",
                   "data.batch_size=4", "+trainer.limit_train_batches=8",
                   "+trainer.limit_val_batches=1", "stage1.max_epochs=2", "stages=[stage1]",
                   "callbacks.progress_lines.every_s=0.4", "keep_last_ckpt=true")
    with caplog.at_level(logging.INFO, logger="zss"):
        payload = zss.runtime.runner.train_and_test(cfg)
    lines = [LINE.search(r.getMessage()) for r in caplog.records]
    lines = [m for m in lines if m]
    for epoch in (1, 2):
        steps = [int(m[2]) for m in lines if int(m[1]) == epoch]
        # at least one line per epoch (it lasts >= 8 x 0.15 s), never one per batch
        assert 1 <= len(steps) <= 4 and steps == sorted(steps), (epoch, steps)
    for m in lines:
        epoch, step, total, rate = int(m[1]), int(m[2]), int(m[3]), float(m[4])
        assert total == 8 and 0 < rate <= 4 / SLEEP_S  # a batch of 4 takes >= SLEEP_S
        per_batch = 4 / rate
        assert abs(int(m[5]) - (8 - step) * per_batch) <= 1  # rounded to the second
        assert abs(int(m[6]) - (8 - step + 8 * (2 - epoch)) * per_batch) <= 1
    done = [r.getMessage() for r in caplog.records if "train/fcn_je/loss" in r.getMessage()]
    assert [d.split(":")[0] for d in done] == ["stage 1 epoch 1/2", "stage 1 epoch 2/2"]
    assert Path(payload["stage1_ckpt"]).is_file()
    assert (tmp_path / "checkpoints" / "stage1" / "last.ckpt").is_file()
