"""Benchmark 7: a training step of the peers' network, DeepLabv3+ ResNet-101 (output stride
16, ``model=deeplabv3plus_r101``), beside FCN-32s VGG16 (the paper's): CPU peak memory,
seconds per step and FLOPs.

Both with the embedding head j = 20 and the cosine loss (what stage 1 trains), random init,
fp32, each with its recipe's optimiser (FCN-32s: Adam; DeepLabv3+: SGD momentum 0.9 with
ZS3Net's 10 x lr groups), on the same input: ``--batch`` images of ``--size`` x ``--size``
(default 2 x 312 x 312: ZS3Net's crop, and the smallest batch DeepLabv3+'s batch norm
trains on). Peak memory: each network in a fresh subprocess, ``VmHWM`` reset once the
network is built (as ``bench_memory.py``), the peak of 2 steps. FLOPs: forward + backward,
convolutions and matmuls, ``torch.utils.flop_counter.FlopCounterMode`` on the meta device,
at the measured input and at each recipe's own step (FCN-32s: 1 image of 375 x 500, VOC's
usual size; DeepLabv3+: 16 crops of 312 x 312); ``experiments/paper.py --peers`` turns them
into GPU-hours.

    .venv/bin/python benchmarks/bench_deeplab.py [--batch 2] [--size 312]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from _common import header, reset_peak_rss, status_mib
from torch.utils.flop_counter import FlopCounterMode

from zss.models import SZNNet, build_backbone
from zss.models.losses import cosine_embedding_loss
from zss.stages.base import make_optimizer

MIB = 2**20
NETWORKS = {
    "fcn32s": ({"name": "fcn32s", "fc_width": 4096},
               {"_target_": "torch.optim.Adam", "lr": 1e-5}),
    "deeplabv3plus_r101": ({"name": "deeplabv3plus", "encoder": "resnet101"},
                           {"_target_": "torch.optim.SGD", "lr": 0.007, "momentum": 0.9,
                            "weight_decay": 5e-4, "head_lr_factor": 10.0}),
}
RECIPE_STEP = {"fcn32s": (1, (375, 500)), "deeplabv3plus_r101": (16, (312, 312))}


def build(name: str, device: str = "cpu") -> SZNNet:
    torch.manual_seed(0)
    return SZNNet(build_backbone(NETWORKS[name][0]), embed_dim=20).to(device)


def flops(name: str, n: int, hw: tuple[int, int]) -> int:
    """Forward + backward FLOPs of one step of ``n`` images of ``hw`` (meta device)."""
    net = build(name, "meta").train()
    counter = FlopCounterMode(display=False)
    with counter:
        net(torch.empty(n, 3, *hw, device="meta"))["embedding"].sum().backward()
    return counter.get_total_flops()


def child(name: str, n: int, size: int) -> None:
    net = build(name)
    emb = torch.randn(21, 20)
    emb = emb / emb.norm(dim=1).max()
    g = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, size, size, generator=g)
    labels = torch.randint(21, (n, size, size), generator=g)
    opt = make_optimizer(NETWORKS[name][1], net.named_parameters())
    params = sum(p.numel() for p in net.parameters())
    base = reset_peak_rss()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        loss = cosine_embedding_loss(net(images)["embedding"], labels, emb)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        assert torch.isfinite(loss)
        times.append(time.perf_counter() - t0)
    print(json.dumps({"params": params, "base_mib": base, "peak_mib": status_mib("VmHWM"),
                      "seconds": min(times)}))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=312)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.batch, args.size)
        return 0
    n, s = args.batch, args.size
    header(f"7. DeepLabv3+ R101 vs FCN-32s: a training step of {n} x {s} x {s}, j = 20, fp32")
    for name in NETWORKS:
        res = subprocess.run([sys.executable, __file__, "--child", name, "--batch", str(n),
                              "--size", str(s)], capture_output=True, text=True)
        if res.returncode != 0:
            print(f"FAIL: {name}: {res.stderr[-2000:]}")
            return 1
        r = json.loads(res.stdout.strip().splitlines()[-1])
        step_n, step_hw = RECIPE_STEP[name]
        print(f"  {name:<20} {r['params'] / 1e6:6.1f} M params; peak RSS "
              f"{r['peak_mib']:8.1f} MiB ({r['peak_mib'] - r['base_mib']:+8.1f} above the "
              f"built network), {r['seconds']:.2f} s/step; FLOPs of this step "
              f"{flops(name, n, (s, s)) / 1e9:.1f} G; of its recipe's step ({step_n} x "
              f"{step_hw[0]} x {step_hw[1]}) {flops(name, step_n, step_hw) / 1e9:.1f} G",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
