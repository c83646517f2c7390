"""Every file of conf/experiment/ composes and runs a few steps through `python -m zss.run`
on the shared samples or generated data: a new experiment file is tested by adding it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from zss.evaluation.tuning import gates_for

REPO = Path(__file__).resolve().parents[2]
# The ZS3 K variants differ from their K = 2 file only in the split (tests/unit/
# test_protocols.py checks that, tests/integration/test_protocols.py their image counts on the
# samples); K = 2 and K = 10 (the most filtered) run here, which keeps the suite ~1 min 40 s
# longer instead of ~5 min. zs3_context_k10 leaves one stage-1 image of the Context sample's
# 5-image train list, so only k2 runs on Context. The ablations are sweeps (hydra.mode:
# MULTIRUN): tests/cli/test_ablations.py runs them as such.
K_VARIANTS = {f"zs3_{d}_k{k}{m}" for d in ("voc", "context") for k in (4, 6, 8)
              for m in ("", "_deeplab")} | {"zs3_context_k10", "zs3_context_k10_deeplab",
                                            "zs3_voc_k10_deeplab"}
EXPERIMENTS = sorted(p.stem for p in (REPO / "conf" / "experiment").glob("*.yaml")
                     if p.stem not in K_VARIANTS and not p.stem.startswith("ablation_"))
LIMITS = ["+trainer.limit_train_batches=4", "+trainer.limit_val_batches=2",
          "+trainer.limit_test_batches=6", "++trainer.enable_progress_bar=false",
          "stage1.max_epochs=1", "stage2.max_epochs=1"]


def _compose(experiment: str):
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        return compose("config", overrides=[f"+experiment={experiment}"])


def _data_overrides(cfg, voc_sample, context_sample, word_vectors_dir) -> list[str]:
    target = cfg.data.dataset._target_
    if target.endswith("SyntheticSegmentation"):  # generated: a few small images
        return ["data.dataset.lengths.train=64", "data.dataset.lengths.val=8",
                "data.dataset.lengths.test=8", "data.dataset.size=32",
                "model.backbone.width=8", "model.backbone.fc_width=16"]
    tiny = ["+debug=cpu", f"paths.word_vectors_dir={word_vectors_dir}",
            "data.max_short_side=64", "model.backbone.fc_width=64"]
    if cfg.model.backbone.name == "deeplabv3plus":  # the *_deeplab files: their config is
        # tested here, ResNet-101 itself in tests/cli/test_deeplab_run.py
        tiny += ["model.backbone.encoder=resnet18", "data.crop_size=64", "data.base_size=64",
                 "data.batch_size=2"]
    if target.endswith("VOCSegmentation"):  # the sample has VOC's own lists
        return [*tiny, f"paths.data_dir={voc_sample}", "data.train_set=train",
                "data.test_set=val"]
    if target.endswith("ContextSegmentation"):
        # the original's drop_images rule (context_31_2_2) keeps no image of the sample's
        # lists (tests/cli/test_context.py checks that error): keep them, pixels outside void
        keep = ["data.dataset.drop_images=null"] if cfg.data.dataset.get("drop_images") else []
        return [*tiny, f"paths.data_dir={context_sample}", *keep]
    raise AssertionError(f"no test data for {target}: add it here")


def _variants(cfg, payload: dict) -> set[str]:
    if cfg.model.variant == "fcn_s":
        return {"fcn_s"}
    if not (cfg.split.train_unseen or cfg.split.unseen):
        return {"fcn_je"}  # SZN-PS would equal FCN-JE
    variants = ({"fcn_je", "szn", "szn_ps"} if "stage2" in cfg.stages
                else {"fcn_je", "szn_ps"})
    if cfg.split.train_unseen:  # the gates, tuned on held-out training images
        gates = set(gates_for("stage2" in cfg.stages))  # every registered gate it can use
        tuning = payload["gate_tuning"]
        assert set(tuning["gates"]) == gates
        # a few tiny steps leave most objectives flat: such a gate is untuned, not evaluated
        untuned = set(tuning.get("untuned", {}))
        assert untuned == {g for g in gates if tuning["gates"][g]["value"] is None}
        variants |= gates - untuned
    return variants


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_experiment_runs_to_its_metrics(experiment, voc_sample, context_sample,
                                        word_vectors_dir, glove_cache, tmp_path):
    cfg = _compose(experiment)
    # voc_21_0_0 also checks the original's early stop: 3 epochs asked, 40 image-steps
    # allowed, 44 stage-1 images -> floor(40 / 44) + 2 = 2 epochs
    budget = (["stage1.max_epochs=3", "stage1.max_image_steps=40"]
              if experiment == "voc_21_0_0" else [])
    cmd = [sys.executable, "-m", "zss.run", f"+experiment={experiment}",
           *_data_overrides(cfg, voc_sample, context_sample, word_vectors_dir),
           f"hydra.run.dir={tmp_path}", f"paths.cache_dir={glove_cache}", *LIMITS, *budget]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    payload = json.loads((tmp_path / "metrics.json").read_text())
    variants = _variants(cfg, payload)
    assert {k.split("/")[1] for k in payload["metrics"] if k.startswith("test/")} == variants
    if not cfg.split.train_unseen and cfg.model.variant == "fcn_je":
        assert "no train_unseen class" in payload["gate_tuning"]["skipped"]
    header = (tmp_path / "per_class_iou.csv").read_text().splitlines()[0]
    assert set(header.split(",")[2:]) == {f"iou_percent/{v}" for v in variants}
    assert payload["split"] == cfg.split.name and payload["test_images"] >= 1
    assert payload["protocol"] == cfg.protocol.name
    assert f"{cfg.split.name}, protocol {cfg.protocol.name}" in proc.stdout
    assert payload["class_set"] == (cfg.data.dataset.get("task") or cfg.split.classes)
    images = payload["images"]
    assert images["stage1_train"] >= 1 and images["stage1_val"] >= 1
    # each trained stage's held-out score, and the experiment's sweep objective among them
    held_out = {"stage1": f"val/{cfg.model.variant}/miou", "stage2": "val/seenmask/loss"}
    assert {held_out[s] for s in cfg.stages if s in held_out} <= set(payload["metrics"])
    assert cfg.optimized_metric in payload["metrics"]
    assert "was not computed" not in proc.stdout + proc.stderr
    if experiment == "voc_21_0_0":
        log = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text().splitlines()
        assert {row.split(",")[0] for row in log[1:]} == {"0", "1"}
    if cfg.model.variant == "fcn_s":
        _assert_fcn_s(payload)


def _assert_fcn_s(payload: dict) -> None:
    """The FCN-S run really trained FCN-32s + a softmax head over the 21 classes."""
    import torch

    from zss.stages import Stage1Module

    module = Stage1Module.load_from_checkpoint(payload["stage1_ckpt"], map_location="cpu")
    assert module.hparams.variant == "fcn_s" and module.hparams.loss == "ce"
    assert module.class_embeddings is None and "stage2_ckpt" not in payload
    net = module.net.eval()
    assert net.embedding_head is None and net.seenmask_head is None
    with torch.no_grad():
        out = net(torch.zeros(1, 3, 40, 56))
    assert set(out) == {"features", "logits"} and out["logits"].shape == (1, 21, 40, 56)
