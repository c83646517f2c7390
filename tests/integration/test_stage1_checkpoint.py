"""A given stage1_ckpt (zss.runtime.stage1_checkpoint): a file that is no zss stage-1
checkpoint, a missing one, or one of another split, class list or j is named with the fix;
the user's file is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import SMALL, compose
from zss.data import split_from_config
from zss.runtime.errors import UserInputError


def _stage2_of(good: Path, out: Path) -> None:
    import torch

    from zss.stages import Stage1Module, Stage2Module

    module = Stage2Module.from_stage1(Stage1Module.load_from_checkpoint(good), optimizer=None)
    ckpt = torch.load(good, weights_only=False)
    torch.save({**ckpt, "state_dict": module.state_dict(),
                "hyper_parameters": dict(module.hparams)}, out)


def _state_dict_of(good: Path, out: Path) -> None:
    import torch

    torch.save(torch.load(good, weights_only=False)["state_dict"], out)


CKPT_ROWS = {  # a file that is no zss stage-1 checkpoint: (how to make it, the message says)
    "cut short": (lambda good, out: out.write_bytes(good.read_bytes()[:5000]),
                  "cannot be read as a PyTorch checkpoint"),
    "empty": (lambda good, out: out.write_bytes(b""),
              "cannot be read as a PyTorch checkpoint (EOFError"),
    "a text file": (lambda good, out: out.write_text("not a checkpoint\n"),
                    "cannot be read as a PyTorch checkpoint"),
    "a plain state dict": (_state_dict_of, "is a PyTorch file but not a Lightning checkpoint"),
    "a stage-2 checkpoint": (_stage2_of, "is a zss stage-2 (seenmask) checkpoint"),
}


@pytest.mark.parametrize("row", list(CKPT_ROWS))
def test_not_a_zss_stage1_checkpoint(row, stage1_ckpt, tmp_path):
    from zss.runtime.stage1_checkpoint import load_stage1

    make, needle = CKPT_ROWS[row]
    path = tmp_path / "given.ckpt"
    make(stage1_ckpt, path)
    before = path.read_bytes()
    cfg = compose("+experiment=voc_17_2_2", *SMALL)
    with pytest.raises(UserInputError) as info:
        load_stage1(path, cfg, split_from_config(**cfg.split))
    msg = str(info.value)
    assert f"stage1_ckpt '{path}' {needle}" in msg, msg
    assert "pass the stage1-<epoch>.ckpt of a zss run" in msg
    assert path.read_bytes() == before


def test_the_good_checkpoint_loads_and_a_missing_one_is_named(stage1_ckpt, tmp_path):
    from zss.runtime.stage1_checkpoint import load_stage1

    cfg = compose("+experiment=voc_17_2_2", *SMALL)
    split = split_from_config(**cfg.split)
    assert load_stage1(stage1_ckpt, cfg, split).hparams.embed_dim == 20
    with pytest.raises(FileNotFoundError, match=r"'.*nowhere\.ckpt' does not exist; pass the"):
        load_stage1(tmp_path / "nowhere.ckpt", cfg, split)


@pytest.mark.parametrize(("overrides", "needles"), [
    (["+experiment=voc_9_2_10"],
     ["split: the checkpoint was trained for 'voc_17_2_2', the config gives 'voc_9_2_10'"]),
    (["+experiment=context_31_2_2"],
     ["only the checkpoint's has ['background'], only the config's ['sky', 'grass'"]),
    (["+experiment=voc_17_2_2", "model.embed_dim=10"],
     ["model.embed_dim (j): checkpoint 20, config 10", "norm_embed_arr_10.pkl"]),
])
def test_checkpoint_of_another_split_class_list_or_j(stage1_ckpt, overrides, needles):
    from zss.runtime.stage1_checkpoint import load_stage1

    cfg = compose(*overrides, *SMALL)
    with pytest.raises(UserInputError) as info:
        load_stage1(stage1_ckpt, cfg, split_from_config(**cfg.split))
    msg = str(info.value)
    assert f"stage1_ckpt '{stage1_ckpt}' contradicts the config" in msg
    for needle in needles:
        assert needle in msg, (needle, msg)
    assert "pass the +experiment and overrides it was trained with" in msg
