"""The peers' network through the command line: `python -m zss.run +experiment=zs3_voc_k2
model=deeplabv3plus_r101 +debug=cpu` (DeepLabv3+ ResNet-101, random init, 64-px crops in
batches of 2, a few steps) trains both stages and evaluates every variant; stage 2 leaves
the stage-1 network as it was, batch-norm buffers included; its stage-1 checkpoint is
refused under FCN-32s with each difference named (the CLI's refusal of a checkpoint that
contradicts the config: tests/cli/test_voc_run.py)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from zss.data.splits import split_from_config
from zss.runtime.stage1_checkpoint import config_conflicts

REPO = Path(__file__).resolve().parents[2]
TINY = ["data.train_set=train", "data.test_set=val", "data.max_short_side=64",
        "data.crop_size=64", "data.base_size=64", "data.batch_size=2",
        "model.backbone.fc_width=32", "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=2",
        "++trainer.enable_progress_bar=false", "stage1.max_epochs=1", "stage2.max_epochs=1"]


@pytest.fixture(scope="module")
def run(voc_sample, word_vectors_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("deeplab")
    common = [f"paths.data_dir={voc_sample}", f"paths.word_vectors_dir={word_vectors_dir}",
              f"paths.cache_dir={out / 'cache'}"]
    cmd = [sys.executable, "-m", "zss.run", "+experiment=zs3_voc_k2", "model=deeplabv3plus_r101",
           "+debug=cpu", *common, f"hydra.run.dir={out / 'run'}", *TINY]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, common


def test_both_stages_and_every_variant(run):
    out, _ = run
    payload = json.loads((out / "run" / "metrics.json").read_text())
    assert payload["backbone"]["name"] == "deeplabv3plus"
    assert payload["backbone"]["encoder"] == "resnet101"
    assert payload["pretraining"]["weights"] is None
    assert payload["pretraining"]["excludes_unseen"] is True
    variants = {k.split("/")[1] for k in payload["metrics"] if k.startswith("test/")}
    assert {"fcn_je", "szn", "szn_ps"} <= variants
    config = (out / "run" / ".hydra" / "config.yaml").read_text()
    assert "_target_: torch.optim.SGD" in config and "poly_power: 0.9" in config


def _ckpt(folder: Path) -> dict:
    path = next(p for p in sorted(folder.glob("*.ckpt")) if p.name != "last.ckpt")
    return torch.load(path, map_location="cpu", weights_only=False)


def test_stage2_leaves_the_stage1_network_and_its_batch_norm_statistics(run):
    out, _ = run
    one = _ckpt(out / "run" / "checkpoints" / "stage1")["state_dict"]
    two = _ckpt(out / "run" / "checkpoints" / "stage2")["state_dict"]
    frozen = [k for k in one if k.startswith(("net.backbone.", "net.embedding_head."))]
    assert sum(k.endswith(("running_mean", "running_var", "num_batches_tracked"))
               for k in frozen) > 300  # ResNet-101's and the decoder's batch norms
    assert [k for k in frozen if not torch.equal(one[k], two[k])] == []
    assert any(k.startswith("net.seenmask_head.") for k in two)


def test_its_checkpoint_is_refused_under_fcn32s(run):
    """The check a run makes before it continues from a stage-1 checkpoint
    (``stage1_ckpt=``), on this run's real checkpoint against the FCN-32s config."""
    out, _ = run
    hparams = _ckpt(out / "run" / "checkpoints" / "stage1")["hyper_parameters"]
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["+experiment=zs3_voc_k2"])
    problems = "\n".join(config_conflicts(hparams, cfg, split_from_config(**cfg.split)))
    for key in ("name", "encoder", "output_stride", "atrous_rates", "fc_width"):
        assert f"model.backbone.{key}:" in problems, (key, problems)
