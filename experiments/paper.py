"""Every run the paper's tables and figures need, with its image-steps and an estimate of its
GPU-hours: ``python experiments/paper.py [--efficiency 0.1]``; with ``--peers``, the runs of
the comparison with ZS3Net and JoEm on the peers' network and recipe instead (the
``zs3_{voc,context}_k{2..10}_deeplab`` experiments: DeepLabv3+ ResNet-101, 200 epochs, batches
of 16 (Context 10) crops of 312 x 312).

The runs are the experiment files (conf/experiment/): FCN-S and FCN-JE on VOC (21, 0, 0),
FCN-JE / SZN / SZN-PS on VOC (9, 2, 10), (17, 2, 2) and Context (31, 2, 2), and the three
ablations (sweeps: one job per grid point, read from the file). For each, the stage-1
epochs follow the original's early stop (``zss.stages.stage1.epochs_within_image_budget``)
on n1 training images. n1 and n2 are taken as the whole training list minus the held-out
10 %: the stage-1 filter (labels all train_seen) lowers them by an amount only SBD's labels
decide, so the zero-shot rows are estimates from above for stage 2 and close for stage 1.

GPU-hours = FLOPs / (efficiency x the device's bf16 dense peak). The FLOPs per step were
counted on the CPU by ``benchmarks/bench_memory.py`` (torch's FlopCounterMode, FCN-32s fc
4096 at 375 x 500, batch 1); no GPU has measured the achieved efficiency yet
(``benchmarks/gpu_throughput.py`` does): the hours are an estimate, and the efficiency is an
assumption you can change. DeepLabv3+ R101 (``benchmarks/bench_deeplab.py``): 2722.5 GFLOPs
per training step of 16 crops of 312 x 312 (170.2 per crop), 53.4 per forward pass of a crop
(stage 2) and 102.6 of a 375 x 500 image (held-out and test images, evaluated at full size);
its n1, n2 are likewise the whole list minus the held-out 10 % (images with an unseen pixel,
which ZS3's protocol drops, would lower them), and the last incomplete batch is counted.
The peak is NVIDIA's H100 SXM datasheet figure (989.4 TFLOP/s dense bf16); the 10 %
efficiency is an assumption, not a measurement (no GPU has run these networks here).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from zss.stages.stage1 import epochs_within_image_budget

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = ("voc_21_0_0_fcn_s", "voc_21_0_0", "voc_9_2_10", "voc_17_2_2", "context_31_2_2",
               "ablation_loss", "ablation_optimizer", "ablation_embedding_dim",
               "ablation_embedding_dim_17_2_2")
PEERS = tuple(f"zs3_{d}_k{k}_deeplab" for d in ("voc", "context") for k in (2, 4, 6, 8, 10))
TRAIN_LIST = {"sbd_train": 8498, "train_aug": 10582, "train": 4998}  # train: Context's
TEST_LIST = {"seg11valid": 736, "val": 1449, "context": 5105}  # val: VOC 2012's
TRAIN_GFLOP, FORWARD_GFLOP = 876.5, 292.6        # per image, bench_memory.py (375 x 500)
# per image: (training, stage-2 forward, full-image forward) GFLOPs
GFLOP = {"fcn32s": (TRAIN_GFLOP, FORWARD_GFLOP, FORWARD_GFLOP),
         "deeplabv3plus": (2722.5 / 16, 53.4, 102.6)}  # bench_deeplab.py
PEAK_TFLOPS = {"H200 / H100 SXM (bf16 dense)": 989.4}
PUBLISHED_J = {2, 5, 10, 20, 21, 50, 100, 200, 300}  # the original's VOC tables


def _jobs(cfg) -> list[dict[str, str]]:
    params = OmegaConf.select(cfg, "hydra.sweeper.params") or {}
    axes = [[(k, v.strip()) for v in str(vals).split(",")] for k, vals in params.items()]
    return [dict(c) for c in itertools.product(*axes)] if axes else [{}]


def plan(experiment: str) -> dict:
    """The jobs of one experiment file (those whose j has a published table) and their
    image-steps: ``{"experiment", "jobs", "skipped", "epochs", "stage1", "stage2",
    "forward"}`` (step counts summed over the jobs)."""
    with initialize_config_dir(str(REPO / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=[f"+experiment={experiment}"], return_hydra_config=True)
    family = "context" if "Context" in cfg.data.dataset._target_ else "voc"
    holdout = int(round(TRAIN_LIST[cfg.data.train_set] * cfg.data.holdout_fraction))
    n1 = n2 = TRAIN_LIST[cfg.data.train_set] - holdout
    tests = TEST_LIST["context" if family == "context" else cfg.data.test_set]
    jobs = [j for j in _jobs(cfg) if int(j.get("model.embed_dim", 20)) in PUBLISHED_J]
    epochs = epochs_within_image_budget(cfg.stage1.max_epochs, n1,
                                        cfg.stage1.get("max_image_steps"))
    stage2 = cfg.stage2.max_epochs * n2 if "stage2" in cfg.stages else 0
    per_job = {"stage1": epochs * n1, "stage2": stage2,
               "forward": (epochs + (cfg.stage2.max_epochs if stage2 else 0)) * holdout
               + tests}
    return {"experiment": experiment, "jobs": len(jobs), "skipped": len(_jobs(cfg)) - len(jobs),
            "epochs": epochs, "backbone": cfg.model.backbone.name,
            **{k: v * len(jobs) for k, v in per_job.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--efficiency", type=float, default=0.10,
                        help="assumed achieved fraction of the bf16 dense peak (default 0.10)")
    parser.add_argument("--peers", action="store_true",
                        help="the zs3_*_deeplab runs (the peers' network and recipe)")
    args = parser.parse_args()
    experiments = PEERS if args.peers else EXPERIMENTS
    (device, peak), = PEAK_TFLOPS.items()
    print(f"GPU-hours on one {device} at {args.efficiency:.0%} of {peak} TFLOP/s (an "
          "estimate: FLOPs counted on the CPU, efficiency assumed). Steps are image-steps "
          "(one image through a training step; a batch of 16 is 16) and upper bounds: every "
          "training image counted, before a protocol drops images with classes a stage may "
          "not see\n")
    head = f"{'experiment':<32}{'jobs':>5}{'stage-1 img-steps':>19}{'stage-2 img-steps':>19}" \
           f"{'forward':>10}{'GPU-h':>8}"
    print(head + "\n" + "-" * len(head))
    total = 0.0
    for experiment in experiments:
        p = plan(experiment)
        train, stage2, forward = GFLOP[p["backbone"]]
        flops = (p["stage1"] * train + p["stage2"] * stage2 + p["forward"] * forward) * 1e9
        hours = flops / (args.efficiency * peak * 1e12) / 3600
        total += hours
        skipped = f"  (+{p['skipped']} skipped: no table)" if p["skipped"] else ""
        print(f"{experiment:<32}{p['jobs']:>5}{p['stage1']:>19,}{p['stage2']:>19,}"
              f"{p['forward']:>10,}{hours:>8.1f}{skipped}")
    print("-" * len(head) + f"\n{'all':<32}{'':>53}{total:>8.1f}\n")
    print("Commands (add paths.data_dir=... trainer=gpu):")
    for experiment in experiments:
        print(f"  python -m zss.run +experiment={experiment}")


if __name__ == "__main__":
    main()
