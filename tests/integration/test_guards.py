"""The runtime leakage guard and the non-finite-loss stop, tripped in real fits of
`zss.runtime.runner.train_and_test` on tiny generated data."""

import json
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

import zss.data.datamodule as datamodule
from zss.data.filters import LeakageError
from zss.runtime.runner import train_and_test
from zss.stages.base import NonFiniteLossError

REPO = Path(__file__).resolve().parents[2]

TINY = ["+experiment=demo", "data.dataset.lengths.train=48", "data.dataset.lengths.val=4",
        "data.dataset.lengths.test=4", "data.dataset.size=32", "model.backbone.width=4",
        "model.backbone.fc_width=8", "data.batch_size=4", "stage1.max_epochs=1",
        "stage2.max_epochs=1", "visualize=0", "explain=false", "last_ckpt_every_n_steps=2"]


def _cfg(tmp_path: Path, glove_cache: Path, *overrides: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[*TINY, f"paths.output_dir={tmp_path}",
                                            f"paths.cache_dir={glove_cache}", *overrides])


def _every_image(presence, split):
    return list(range(len(presence)))  # a broken filter: lets every image through


@pytest.mark.parametrize(("stage", "filter_name", "forbidden"), [
    ("stage1", "stage1_indices", r"\['(aeroplane|horse|sheep|train)'"),
    ("stage2", "stage2_indices", r"\['(sheep|train)'"),
])
def test_a_broken_filter_trips_the_guard_in_fit(stage, filter_name, forbidden, monkeypatch,
                                                tmp_path, glove_cache):
    monkeypatch.setattr(datamodule, filter_name, _every_image)
    cfg = _cfg(tmp_path, glove_cache, "stages=[stage1,stage2]")
    with pytest.raises(LeakageError, match=forbidden) as err:
        train_and_test(cfg)
    message = str(err.value)
    assert f"zss.data.filters.{filter_name}" in message and "train_0" in message
    assert f"a {stage.replace('stage', 'stage ')} batch" in message
    if stage == "stage2":  # stage 1 finished (its filter is sound) and stage 2 stopped
        assert [p.name for p in (tmp_path / "checkpoints" / "stage1").iterdir()] == [
            Path(json.loads((tmp_path / "progress.json").read_text())["completed"]["stage1"]).name]


def test_guard_off_only_when_asked(monkeypatch, tmp_path, glove_cache):
    monkeypatch.setattr(datamodule, "stage1_indices", _every_image)
    payload = train_and_test(_cfg(tmp_path, glove_cache, "stages=[stage1]",
                                  "leakage_guard=false"))
    assert Path(payload["stage1_ckpt"]).is_file()


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(monkeypatch, tmp_path,
                                                                   glove_cache):
    from zss.models.losses import LOSSES, Loss

    calls = []
    loss_fn = LOSSES["cosine"].fn

    def nan_at_step_4(embedding, labels, class_embeddings):
        loss = loss_fn(embedding, labels, class_embeddings)
        calls.append(1)
        return loss * float("nan") if len(calls) == 4 else loss

    monkeypatch.setitem(LOSSES, "cosine", Loss("cosine", "fcn_je", nan_at_step_4))
    cfg = _cfg(tmp_path, glove_cache, "stages=[stage1]", "stage1.max_epochs=3")
    with pytest.raises(NonFiniteLossError) as err:
        train_and_test(cfg)
    last = tmp_path / "checkpoints" / "stage1" / "last.ckpt"
    message = str(err.value)
    assert message.startswith("stage 1: the training loss is nan at step 3 (epoch 0)")
    assert "train_0" in message and f"{last} (step 2)" in message
    state = torch.load(last, map_location="cpu", weights_only=True)
    assert state["global_step"] == 2
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values()
               if v.is_floating_point())
