"""`zss.run.main`, the Hydra entry point, in-process: the user-error boundary, wandb.finish
after every job, the value it returns for sweeps, and a test objective refused under an
optimising sweeper."""

import json
import math
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

import zss.run
from tests.helpers import TINY_DEMO

REPO = Path(__file__).resolve().parents[2]
OPTUNA = "hydra_plugins.hydra_optuna_sweeper.optuna_sweeper.OptunaSweeper"


def _demo_config(tmp_path, *overrides):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=["+experiment=demo", f"paths.output_dir={tmp_path}",
                                            f"paths.cache_dir={tmp_path / 'cache'}",
                                            *TINY_DEMO, *overrides])


@pytest.fixture
def finished(monkeypatch):
    """The calls of wandb.finish (replaced: no W&B run is started)."""
    import wandb

    calls = []
    monkeypatch.setattr(wandb, "finish", lambda *a, **k: calls.append(a))
    return calls


def test_a_user_error_exits_2_with_one_paragraph_and_finishes_wandb(tmp_path, capsys,
                                                                    finished):
    cfg = _demo_config(tmp_path, "logger=wandb", "split.unseen=[sheep,trian]")
    with pytest.raises(SystemExit) as info:
        zss.run.main(cfg)
    assert info.value.code == 2 and len(finished) == 1
    err = capsys.readouterr().err
    assert err.startswith("\nzss: error: Invalid class split 'voc_17_2_2'") and "trian" in err
    assert "Traceback" not in err and err.count("\n") == 2  # one paragraph
    # the run's folder says it failed, and why (the printed paragraph), with no scores
    marker = json.loads((tmp_path / "metrics.json").read_text())
    assert marker["status"] == "failed" and marker["metrics"] == {}
    assert err == f"\nzss: error: {marker['error']}\n"


def test_any_other_error_propagates_and_still_finishes_wandb(tmp_path, monkeypatch, finished):
    def crash(cfg):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(zss.run, "train_and_test", crash)
    with pytest.raises(RuntimeError, match="a bug"):
        zss.run.main(_demo_config(tmp_path, "logger=wandb"))
    assert len(finished) == 1
    with pytest.raises(RuntimeError, match="a bug"):  # no wandb logger: nothing to finish
        zss.run.main(_demo_config(tmp_path))
    assert len(finished) == 1


METRICS = {"val/fcn_je/miou": 0.5, "val/seenmask/loss": 0.3, "tune/szn_cs/gamma": 0.1,
           "tune/szn_cs/objective": 0.4, "test/szn/hiou": 0.25, "test/szn/miou_unseen": math.nan}


def _fake_run(cfg):
    """What train_and_test records: without a test stage, no tune/ and no test/ scores."""
    held_out = "test" not in cfg.stages
    return {"metrics": {k: v for k, v in METRICS.items()
                        if not (held_out and k.startswith(("test/", "tune/")))}}


@pytest.mark.parametrize(("overrides", "expected"), [
    ([], 0.4),                                            # the demo's tune/szn_cs/objective
    (["optimized_metric=val/fcn_je/miou"], 0.5),
    (["optimized_metric=test/szn/hiou"], 0.25),           # outside a sweeper: reported
    (["optimized_metric=test/szn/miou_unseen"], "nan"),   # computed, undefined
    (["optimized_metric=test/szn/nothing"], "nan"),       # never computed: and a warning
    (["stages=[stage1,stage2]"], "nan"),                  # no test stage, no gate tuning
    (["stages=[stage1,stage2]", "optimized_metric=val/seenmask/loss"], 0.3),
    (["optimized_metric=null"], None),
])
def test_the_returned_value_is_the_optimized_metric(tmp_path, monkeypatch, caplog, overrides,
                                                    expected):
    monkeypatch.setattr(zss.run, "train_and_test", _fake_run)
    value = zss.run.main(_demo_config(tmp_path, *overrides))
    assert math.isnan(value) if expected == "nan" else value == expected
    warned = "was not computed by this run, so a sweep reads NaN for it" in caplog.text
    assert warned == ("nothing" in str(overrides) or overrides == ["stages=[stage1,stage2]"])
    if "nothing" in str(overrides):  # what the run recorded instead, held-out keys first
        assert ("the run recorded tune/szn_cs/gamma, tune/szn_cs/objective, val/fcn_je/miou, "
                "val/seenmask/loss, test/szn/*. val/ scores come from") in caplog.text
    if warned:
        assert "e.g. val/fcn_je/miou (stage 1's held-out mIoU" in caplog.text


def _sweep_job(tmp_path, sweeper, *overrides):
    """The demo's config as a job of a Hydra multirun under ``sweeper`` (its _target_)."""
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", return_hydra_config=True, overrides=[
            "+experiment=demo", f"paths.output_dir={tmp_path}", *TINY_DEMO, *overrides])
    with open_dict(cfg):
        cfg.hydra.mode = RunMode.MULTIRUN
        cfg.hydra.sweeper._target_ = sweeper
    HydraConfig.instance().set_config(cfg)
    return cfg


@pytest.fixture
def no_hydra_config():
    yield
    HydraConfig.instance().cfg = None


def test_a_test_objective_is_refused_under_an_optimising_sweeper(tmp_path, monkeypatch, capsys,
                                                                  no_hydra_config):
    monkeypatch.setattr(zss.run, "train_and_test", _fake_run)
    cfg = _sweep_job(tmp_path, OPTUNA, "optimized_metric=test/szn/hiou")
    with pytest.raises(SystemExit) as info:
        zss.run.main(cfg)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("\nzss: error: optimized_metric=test/szn/hiou is a score of the test "
                          f"split, and this job runs under the sweeper {OPTUNA}")
    assert "Traceback" not in err and err.count("\n") == 2  # one paragraph
    for held_out in ("val/fcn_je/miou", "tune/szn_cs/objective", "val/seenmask/loss"):
        assert held_out in err
    assert not (tmp_path / "metrics.json").exists()  # refused before anything ran
    # the experiment's held-out default under the same sweeper: returned
    assert zss.run.main(_sweep_job(tmp_path, OPTUNA)) == 0.4
    # a grid (Hydra's BasicSweeper) never reads the value: a test/ key is allowed there
    basic = "hydra._internal.core_plugins.basic_sweeper.BasicSweeper"
    assert zss.run.main(_sweep_job(tmp_path, basic, "optimized_metric=test/szn/hiou")) == 0.25
