"""What a run records (zss.runtime.run_record): absolute paths, a failed or interrupted run
marked as such and a finished one never, the class table's fingerprint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import zss.runtime.runner
from zss.runtime.run_record import recorded_config, run_status, tensor_sha256, write_failure

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def _compose(*overrides):
    with initialize_config_dir(str(CONF), version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_recorded_paths_are_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "ckpts").mkdir()
    (tmp_path / "ckpts" / "s1.ckpt").write_bytes(b"x")
    cfg = _compose("+experiment=voc_17_2_2", "paths.data_dir=data/voc",
                   "paths.word_vectors_dir=../wv", "stage1_ckpt=ckpts/s1.ckpt",
                   "paths.output_dir=out")
    rec = recorded_config(cfg)
    assert rec["paths"]["data_dir"] == str(tmp_path / "data" / "voc")
    assert rec["paths"]["word_vectors_dir"] == str(tmp_path.parent / "wv")
    assert rec["data"]["dataset"]["root"] == str(tmp_path / "data" / "voc")
    assert rec["stage1_ckpt"] == str(tmp_path / "ckpts" / "s1.ckpt")
    assert rec["model"]["backbone"]["weights"] == "torchvision"  # a name, not a path
    assert rec["paths"]["cache_dir"].startswith("/")


def test_a_failed_and_an_interrupted_run_are_marked_and_a_finished_one_never_is(
        tmp_path, monkeypatch):
    cfg = _compose("+experiment=demo", f"paths.output_dir={tmp_path / 'a'}")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(zss.runtime.runner, "_train_and_test", interrupted)
    with pytest.raises(KeyboardInterrupt):
        zss.runtime.runner.train_and_test(cfg)
    (tmp_path / "a").mkdir()  # (the real run created it before it was interrupted)
    with pytest.raises(KeyboardInterrupt):
        zss.runtime.runner.train_and_test(cfg)
    marker = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert marker["status"] == "interrupted" and marker["metrics"] == {}
    assert f"python -m zss.run resume={tmp_path / 'a'}" in marker["error"]
    assert run_status(tmp_path / "a") == "interrupted"  # resumable, not finished
    # a finished run's metrics.json is never replaced by a marker
    done = tmp_path / "done"
    done.mkdir()
    (done / "metrics.json").write_text('{"metrics": {"test/szn/miou": 0.5}}')
    assert run_status(done) == "finished"
    assert not write_failure(done, "failed", "x", {})
    assert json.loads((done / "metrics.json").read_text())["metrics"] == {"test/szn/miou": 0.5}


def test_the_table_fingerprint_is_of_the_values_and_their_shape():
    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert tensor_sha256(t) == tensor_sha256(t.double()) == tensor_sha256(t.clone())
    assert tensor_sha256(t) != tensor_sha256(t.reshape(3, 2))
    assert tensor_sha256(t) != tensor_sha256(t + 1e-6) and tensor_sha256(None) is None
