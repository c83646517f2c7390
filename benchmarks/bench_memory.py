"""Benchmark 6: peak memory of one paper-size training step and one evaluation step.

Network: FCN-32s VGG16, fc width 4096, embedding head j = 20 (``_fcn.build``, what stage 1
trains), one 500 x 500 image (VOC's largest side; batch 1, the paper's setting), fp32.

- training step: forward, ``cosine_embedding_loss``, backward, Adam (lr 1e-5), twice; the
  peak of the two is reported (from the first step on, weights, gradients and Adam's two
  moment buffers are all resident: the steady state of training);
- evaluation step: eval mode, no gradients: forward, cosine scores against the 21 class
  vectors, the masked argmax over the seen classes, ``confusion_matrix_metric`` update (what
  ``test_step`` does for FCN-JE).

Each runs in a fresh subprocess that reports its own peak RSS (``VmHWM``, reset through
/proc/self/clear_refs once the network is built, as in ``bench_embeddings.py``); a child
that allocates a known 500 MiB checks the measurement. On a machine with CUDA the same two
steps run on the GPU too (``torch.cuda.max_memory_allocated``). Also printed: the FLOPs of
a training step and of an inference pass at 500 x 500 and 375 x 500 (FlopCounterMode on the
meta device), which ``experiments/README.md`` turns into GPU-hours.

    .venv/bin/python benchmarks/bench_memory.py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
from _common import header, reset_peak_rss, status_mib
from _fcn import EMBED_DIM, NUM_CLASSES, batch, build, count_flops, train_step

SIZE = 500
MIB = 2**20


def child(mode: str, device: str) -> None:
    """One measurement in this fresh process; prints one JSON line."""
    dev = torch.device(device)
    out: dict = {}
    if mode == "calibrate":
        base = reset_peak_rss()
        block = torch.ones(500 * MIB, dtype=torch.uint8)  # touched: resident
        del block
    else:
        net, emb = build(dev)
        images, labels = batch(1, SIZE, dev)
        params = sum(p.numel() * p.element_size() for p in net.parameters())
        out["params_mib"] = params / MIB
        base = reset_peak_rss()
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            out["gpu_base_mib"] = torch.cuda.memory_allocated() / MIB
        t0 = time.perf_counter()
        if mode == "train":
            step = train_step(net, emb, torch.optim.Adam(net.parameters(), lr=1e-5))
            losses = [float(step(images, labels)) for _ in range(2)]
            assert all(map(torch.isfinite, torch.tensor(losses))), losses
        else:
            from zss.evaluation.metrics import confusion_matrix_metric
            from zss.inference.nearest import cosine_scores, masked_argmax

            net.eval()
            metric = confusion_matrix_metric(NUM_CLASSES).to(dev)
            with torch.no_grad():
                scores = cosine_scores(net(images)["embedding"], emb)
                pred = masked_argmax(scores, torch.ones(NUM_CLASSES, dtype=torch.bool,
                                                        device=dev))
                metric.update(pred, labels)
            assert int(metric.compute().sum()) == int((labels != 255).sum())
        if dev.type == "cuda":
            torch.cuda.synchronize()
            out["gpu_peak_mib"] = torch.cuda.max_memory_allocated() / MIB
        out["seconds"] = (time.perf_counter() - t0) / (2 if mode == "train" else 1)
    out.update(peak_mib=status_mib("VmHWM"), base_mib=base)
    print(json.dumps(out))


def run_child(mode: str, device: str = "cpu") -> dict:
    res = subprocess.run([sys.executable, __file__, "--child", mode, "--device", device],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"child {mode} ({device}) failed:\n{res.stdout}\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--child")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    if args.child:
        child(args.child, args.device)
        return 0
    header(f"6. memory: FCN-32s VGG16 (fc 4096, j = {EMBED_DIM}), one {SIZE} x {SIZE} image, "
           "batch 1, fp32")
    cal = run_child("calibrate")
    above = cal["peak_mib"] - cal["base_mib"]
    print(f"check: a child allocating 500 MiB reports {above:.1f} MiB above its start")
    failures = [] if 490 <= above <= 520 else [f"calibration: {above:.1f} MiB, not ~500"]
    for dev in ["cpu"] + (["cuda"] if torch.cuda.is_available() else []):
        for mode in ("train", "eval"):
            r = run_child(mode, dev)
            name = {"train": "training step (Adam, peak of 2 steps)",
                    "eval": "evaluation step (no grad)"}[mode]
            line = (f"  {dev} {name:<36} peak RSS {r['peak_mib']:8.1f} MiB "
                    f"({r['peak_mib'] - r['base_mib']:+8.1f} above the built network; "
                    f"weights {r['params_mib']:.1f} MiB), {r['seconds']:.2f} s/step")
            if dev == "cuda":
                line += (f"; GPU max_memory_allocated {r['gpu_peak_mib']:.1f} MiB "
                         f"({r['gpu_peak_mib'] - r['gpu_base_mib']:+.1f} above the network)")
            print(line, flush=True)
    for h, w in ((500, 500), (375, 500)):
        print(f"FLOPs at {h} x {w}: training step {count_flops((h, w)) / 1e9:.1f} G, "
              f"inference {count_flops((h, w), training=False) / 1e9:.1f} G")
    for f in failures:
        print(f"FAIL: {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
