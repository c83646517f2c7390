"""On a terminal the progress bar names the stage (zss.runtime.console), in a real fit."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_dir

import zss.runtime.runner

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
