"""Benchmark 1: training-step overhead of the stage-1 LightningModule through ``Trainer.fit``
vs a hand-written PyTorch loop on the same model, data, optimiser and number of steps.

Model: ``Stage1Module`` (FCN-JE, cosine loss, Adam lr 1e-5) on a small FCN-32s (VGG16 convs,
fc width 512, random init), j = 20, split voc_17_2_2; data: ``--steps`` fixed batches of one
random ``--size`` uint8 image with train_seen labels and a void band, served by the same
``DataLoader`` to both sides, normalised on the device as the modules do
(``normalize_batch``, in the module's ``on_after_batch_transfer``; by hand in the plain loop). Both sides start from the same weights and RNG seed, so they
compute the same updates (checked: the final losses must agree).

The Trainer is configured as ``conf/trainer/default.yaml`` (CPU, fp32, log every 10 steps,
progress bar on, no model summary) with the CSV logger of ``conf/logger/csv.yaml``; there is
no validation loop and no checkpointing (both run at epoch end, not per step).

Per step: the median interval between consecutive batch starts after ``--skip`` warm-up steps
(Lightning: ``on_train_batch_start``; plain loop: the top of the loop). Total: the wall time
of Trainer construction + ``fit`` (resp. the whole loop) divided by the steps. Goal: per-step
ratio <= 1.05.

    .venv/bin/python benchmarks/bench_train_step.py [--reps 5] [--steps 20] [--size 64]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import logging
import tempfile
import time
import warnings

import lightning as L
import torch
from _common import REPO, Seconds, alternate, header, median, ratio_line, show
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

from zss.data.batches import normalize_batch
from zss.data.splits import VOC_CLASSES, split_from_config
from zss.models.losses import cosine_embedding_loss
from zss.stages import Stage1Module

SPLIT = OmegaConf.to_container(OmegaConf.load(REPO / "conf/split/voc_17_2_2.yaml"))


def make_module(backbone: dict) -> Stage1Module:
    split = split_from_config(**SPLIT)
    torch.manual_seed(0)
    emb = torch.randn(len(VOC_CLASSES), 20)
    emb = emb / emb.norm(dim=1).max()
    return Stage1Module(
        split={"name": split.name, "class_names": list(split.class_names),
               "train_seen": list(split.train_seen), "train_unseen": list(split.train_unseen),
               "unseen": list(split.unseen)},
        backbone=backbone, embed_dim=20, class_embeddings=emb, variant="fcn_je",
        loss="cosine", optimizer={"_target_": "torch.optim.Adam", "lr": 1e-5})


def make_batches(n: int, size: int) -> list[dict]:
    split = split_from_config(**SPLIT)
    seen = torch.tensor(split.train_seen_idx)
    g = torch.Generator().manual_seed(1)
    cell = max(size // 8, 1)
    batches = []
    for _ in range(n):
        label = seen[torch.randint(len(seen), (1, size // cell, size // cell), generator=g)]
        label = label.repeat_interleave(cell, 1).repeat_interleave(cell, 2)
        label[:, :, size // 2 - 2:size // 2 + 2] = 255
        # uint8, as zss's loader gives them: the module normalises on the device
        image = torch.randint(0, 256, (1, 3, size, size), generator=g, dtype=torch.uint8)
        batches.append({"image": image, "label": label.to(torch.uint8),
                        "id": [f"random{len(batches)}"]})  # named by the leakage guard
    return batches


class StepClock(L.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.stamps.append(time.perf_counter())


def per_step(stamps: list[float], skip: int) -> float:
    gaps = [b - a for a, b in zip(stamps[skip:], stamps[skip + 1:], strict=False)]
    return median(gaps)


def trainer_kwargs(root: str, steps: int) -> dict:
    cfg = OmegaConf.to_container(OmegaConf.load(REPO / "conf/trainer/default.yaml"))
    cfg.pop("_target_")
    cfg.update(default_root_dir=root, accelerator="cpu", max_steps=steps, max_epochs=-1,
               limit_val_batches=0, enable_checkpointing=False)
    return cfg


def compare(backbone: dict, size: int, steps: int, reps: int,
            skip: int) -> tuple[dict[str, list[float]], dict[str, list[float]], dict]:
    """Alternate Trainer.fit and the plain loop; returns (steady per-step times, total /
    steps, last losses), each keyed "lightning" / "plain"."""
    template = make_module(backbone)
    state = copy.deepcopy(template.state_dict())
    loader = DataLoader(make_batches(steps, size), batch_size=None, shuffle=False)
    losses: dict[str, float] = {}
    totals: dict[str, list[float]] = {"lightning": [], "plain": []}

    def fresh() -> Stage1Module:
        template.load_state_dict(state)
        torch.manual_seed(0)
        return template

    def lightning_run() -> Seconds:
        module = fresh()
        clock = StepClock()
        with tempfile.TemporaryDirectory() as root, contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):  # the progress bar, not shown
            t0 = time.perf_counter()
            trainer = L.Trainer(**trainer_kwargs(root, steps), callbacks=[clock],
                                logger=L.pytorch.loggers.CSVLogger(root, name="csv"))
            trainer.fit(module, train_dataloaders=loader)
            totals["lightning"].append((time.perf_counter() - t0) / steps)
        assert trainer.global_step == steps, trainer.global_step
        losses["lightning"] = float(trainer.callback_metrics["train/fcn_je/loss"])
        return Seconds(per_step(clock.stamps, skip))

    def plain_run() -> Seconds:
        module = fresh()
        net, emb = module.net, module.class_embeddings
        net.train()
        stamps = []
        t0 = time.perf_counter()
        opt = torch.optim.Adam(net.parameters(), lr=1e-5)
        for batch in loader:
            stamps.append(time.perf_counter())
            batch = normalize_batch(batch, module.preprocessing)  # what the module's hook does
            loss = cosine_embedding_loss(net(batch["image"])["embedding"], batch["label"], emb)
            opt.zero_grad()
            loss.backward()
            opt.step()
        totals["plain"].append((time.perf_counter() - t0) / steps)
        losses["plain"] = float(loss)
        return Seconds(per_step(stamps, skip))

    times = alternate({"lightning": lightning_run, "plain": plain_run}, reps=reps, warmup=1)
    totals = {name: xs[1:] for name, xs in totals.items()}  # drop the warm-up runs
    return times, totals, losses


NAMES = {"lightning": "Trainer.fit (zss Stage1Module)", "plain": "plain PyTorch loop"}


def named(d: dict[str, list[float]]) -> dict[str, list[float]]:
    return {NAMES[k]: v for k, v in d.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--skip", type=int, default=3, help="warm-up steps left out of per-step")
    ap.add_argument("--size", type=int, default=64, help="image side in pixels")
    ap.add_argument("--fc-width", type=int, default=512)
    ap.add_argument("--tiny-steps", type=int, default=100,
                    help="steps of the tiny-backbone run that measures Lightning's own cost")
    args = ap.parse_args()
    header(f"1. training step: Stage1Module via Trainer.fit vs a plain loop ({args.steps} "
           f"steps, batch 1, {args.size}x{args.size}, FCN-32s fc width {args.fc_width})")
    warnings.filterwarnings("ignore")
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    fcn = {"name": "fcn32s", "fc_width": args.fc_width, "weights": None}
    times, totals, losses = compare(fcn, args.size, args.steps, args.reps, args.skip)
    print("per step, steady state:")
    show(named(times), unit="ms", scale=1000)
    print("per step, total wall time / steps (includes Trainer construction and fit start-up):")
    show(named(totals), unit="ms", scale=1000)
    lit, plain = median(times["lightning"]), median(times["plain"])
    ratio_line("train step per step (steady) Trainer.fit / plain loop", lit / plain, 1.05)
    ratio_line("train step total/steps Trainer.fit / plain loop",
               median(totals["lightning"]) / median(totals["plain"]), None)
    print(f"check: last-step loss Lightning {losses['lightning']:.6f}, plain "
          f"{losses['plain']:.6f}")
    if abs(losses["lightning"] - losses["plain"]) > 1e-4:
        raise SystemExit("the two loops did not compute the same training")

    # The FCN step's run-to-run noise (min..max above) is larger than Lightning's cost, so
    # measure that cost where it dominates: the same module with a tiny backbone.
    tiny = {"name": "small", "width": 4, "fc_width": 8, "output_stride": 8}
    n = args.tiny_steps
    t_times, t_totals, _ = compare(tiny, 32, n, args.reps, args.skip)
    print("Lightning's own cost, same module with a tiny backbone (SmallBackbone width 4, "
          f"32x32, {n} steps):")
    show(named(t_times), unit="ms", scale=1000)
    over = median(t_times["lightning"]) - median(t_times["plain"])
    fixed = (median(t_totals["lightning"]) - median(t_totals["plain"])) * n - over * n
    print(f"  overhead per step {over * 1000:.2f} ms; fixed cost of Trainer + fit() start-up "
          f"about {fixed:.2f} s")
    ratio_line("train step per step (plain FCN step + measured Lightning overhead) / plain",
               (plain + over) / plain, 1.05)


if __name__ == "__main__":
    main()
