"""Benchmark 5 (CPU part): inference and training throughput of FCN-32s VGG16 (fc width 4096,
embedding head j = 20) at 512 x 512, fp32, batch 1, on the CPU.

Baseline: the machine's attainable fp32 matrix-multiply rate, ``torch.mm`` of two 2048 x 2048
matrices on the same threads, alternated with the network runs. FLOPs per image come from
``torch.utils.flop_counter.FlopCounterMode`` (convolutions and matmuls, forward and
backward, counted on the meta device), so the script prints images/s, achieved GFLOP/s and the fraction of the GEMM rate
the network reaches. The GPU variant (bf16, channels_last, ``torch.compile``) is
``gpu_throughput.py``.

    .venv/bin/python benchmarks/bench_throughput.py [--reps 3] [--size 512]
"""

from __future__ import annotations

import argparse

import torch
from _common import alternate, header, median, ratio_line, show
from _fcn import batch, build, count_flops, train_step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--size", type=int, default=512)
    args = ap.parse_args()
    header(f"5. throughput (CPU, fp32): FCN-32s VGG16 + embedding head at {args.size} x "
           f"{args.size}, batch 1")
    net, emb = build("cpu")
    images, labels = batch(1, args.size, "cpu")
    opt = torch.optim.Adam(net.parameters(), lr=1e-5)
    step = train_step(net, emb, opt)

    def infer() -> None:
        net.eval()
        with torch.inference_mode():
            net(images)

    def train() -> None:
        net.train()
        step(images, labels)

    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)

    def gemm() -> None:
        for _ in range(4):
            torch.mm(a, b)

    flops = {"inference": count_flops(args.size, training=False),
             "training step": count_flops(args.size),
             "GEMM 4 x 2048^3": 4 * 2 * 2048 ** 3}
    print("FLOPs per image: " + ", ".join(f"{k} {v / 1e9:.1f} G" for k, v in flops.items()))
    times = alternate({"inference": infer, "training step": train, "GEMM 4 x 2048^3": gemm},
                      reps=args.reps, warmup=1)
    show(times, unit="s")
    rate = {k: flops[k] / median(v) / 1e9 for k, v in times.items()}
    for k in ("inference", "training step"):
        print(f"  {k:<14} {1 / median(times[k]):7.3f} images/s   {rate[k]:7.1f} GFLOP/s")
    print(f"  GEMM baseline  {rate['GEMM 4 x 2048^3']:7.1f} GFLOP/s")
    ratio_line("throughput CPU inference GFLOP/s / GEMM GFLOP/s",
               rate["inference"] / rate["GEMM 4 x 2048^3"], None)
    ratio_line("throughput CPU training GFLOP/s / GEMM GFLOP/s",
               rate["training step"] / rate["GEMM 4 x 2048^3"], None)


if __name__ == "__main__":
    main()
