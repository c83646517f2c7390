"""Benchmark 5 (GPU part): training and inference throughput of FCN-32s VGG16 (fc width 4096,
embedding head j = 20) at 512 x 512 on one CUDA GPU, with the fraction of the device's peak.

Variants (training step = forward, cosine loss, backward, Adam; same seed and batch each):
``fp32`` (TF32 off), ``tf32``, ``bf16`` (autocast), ``bf16 + channels_last``, and
``bf16 + channels_last + torch.compile``; plus bf16 + channels_last inference. FLOPs per step
come from ``torch.utils.flop_counter.FlopCounterMode`` (counted on the meta device), so each
line gives images/s, achieved TFLOP/s and the fraction of the dense peak of its precision.
Goal on an H200: >= 40 % of the bf16 peak in training (the best bf16 variant).

Self-checks (exit status 1 when one fails): a CUDA device is present; before training,
each variant's embeddings (eval mode, same weights and batch) are within a relative L2 error
of 1e-2 (tf32) / 2e-2 (bf16) of the fp32 ones; every training loss is finite; the whole run
stays within ``--budget`` seconds (variants left are skipped and reported). Expected to take
2-3 minutes on an H100/H200, most of it ``torch.compile``.

    .venv/bin/python benchmarks/gpu_throughput.py [--batch 16] [--steps 10] [--budget 270]
        [--peak-bf16 TFLOPS --peak-tf32 TFLOPS --peak-fp32 TFLOPS]   # other GPUs
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from functools import partial

import torch
from _common import header
from _fcn import batch, build, count_flops, train_step

# Dense peaks in TFLOP/s (fp32 non-tensor, TF32 tensor, BF16 tensor), NVIDIA datasheets.
PEAKS = {"H200 NVL": (60.0, 418.0, 835.0), "H200": (67.0, 494.7, 989.4),
         "H100 PCIe": (51.0, 378.0, 756.0), "H100": (67.0, 494.7, 989.4),
         "A100": (19.5, 156.0, 312.0)}


def device_peaks(name: str, args: argparse.Namespace) -> dict[str, float | None]:
    known = next((v for k, v in PEAKS.items() if k in name), (None, None, None))
    given = (args.peak_fp32, args.peak_tf32, args.peak_bf16)
    fp32, tf32, bf16 = (g if g is not None else k for g, k in zip(given, known, strict=True))
    return {"fp32": fp32, "tf32": tf32, "bf16": bf16}


def set_tf32(on: bool) -> None:
    """TF32 for matmuls and convolutions on or off (the new API when torch has it: mixing it
    with the legacy ``allow_tf32`` flags is an error)."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        torch.backends.cuda.matmul.fp32_precision = "tf32" if on else "ieee"
        conv.fp32_precision = "tf32" if on else "ieee"
    else:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def seconds_per_call(fn, dev: torch.device, warmup: int, steps: int) -> float:
    """Wall time per call: ``warmup`` untimed calls, then ``steps`` timed ones between two
    synchronisations."""
    for _ in range(warmup):
        fn()
    sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        out = fn()
    sync(dev)
    if isinstance(out, torch.Tensor) and out.ndim == 0 and not math.isfinite(float(out)):
        raise FloatingPointError(f"non-finite loss {float(out)}")
    return (time.perf_counter() - t0) / steps


def embeddings(model, x, dtype) -> torch.Tensor:
    """Eval-mode embeddings (float32) under the variant's autocast."""
    model.eval()
    with torch.no_grad(), torch.autocast(x.device.type, dtype=dtype or torch.bfloat16,
                                         enabled=dtype is not None):
        out = model(x)["embedding"].float()
    model.train()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget", type=float, default=270.0, help="seconds for the whole run")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="exercise the script on the CPU (use a tiny --size and --batch)")
    for p in ("bf16", "tf32", "fp32"):
        ap.add_argument(f"--peak-{p}", type=float, help=f"dense {p} peak, TFLOP/s")
    args = ap.parse_args()
    start = time.perf_counter()
    if args.cpu_smoke:
        dev, name = torch.device("cpu"), "CPU smoke test"
    elif not torch.cuda.is_available():
        print("FAIL: no CUDA device; this script needs a GPU (--cpu-smoke to try it on a CPU)")
        return 1
    else:
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
    header(f"5. throughput (GPU {name}): FCN-32s VGG16 + embedding head at {args.size} x "
           f"{args.size}, batch {args.batch}")
    peaks = device_peaks(name, args)
    print(f"dense peaks (TFLOP/s): {peaks}; torch {torch.__version__}, cuda "
          f"{torch.version.cuda}, cudnn {torch.backends.cudnn.version()}")
    torch.backends.cudnn.benchmark = True
    flops = {"train": count_flops(args.size, args.batch),
             "infer": count_flops(args.size, args.batch, training=False)}
    print(f"FLOPs per step: training {flops['train'] / 1e12:.2f} T, inference "
          f"{flops['infer'] / 1e12:.2f} T")
    images, labels = batch(args.batch, args.size, dev)

    variants = [  # name, precision, autocast dtype, channels_last, compile
        ("fp32", "fp32", None, False, False), ("tf32", "tf32", None, False, False),
        ("bf16", "bf16", torch.bfloat16, False, False),
        ("bf16 + channels_last", "bf16", torch.bfloat16, True, False),
        ("bf16 + channels_last + compile", "bf16", torch.bfloat16, True, True)]
    failures, rows, ref = [], {}, None
    for vname, precision, dtype, channels_last, compiled in variants:
        if time.perf_counter() - start > args.budget * 0.6:
            failures.append(f"{vname}: skipped, over 60 % of the {args.budget:.0f} s budget")
            continue
        set_tf32(precision == "tf32")
        net, emb = build(dev)
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        net = net.to(memory_format=fmt)
        x = images.contiguous(memory_format=fmt)
        opt = torch.optim.Adam(net.parameters(), lr=1e-5)
        model = torch.compile(net) if compiled else net
        step = train_step(model, emb, opt, dtype)
        try:
            out = embeddings(model, x, dtype)  # same initial weights in every variant
            if ref is None:
                ref = out
            err = float((out - ref).norm() / ref.norm())
            tol = {"fp32": 1e-5, "tf32": 1e-2, "bf16": 2e-2}[precision]
            print(f"  {vname:<32} check: relative error of the embeddings vs fp32 {err:.1e} "
                  f"(tolerance {tol:g})", flush=True)
            if not err <= tol:
                failures.append(f"{vname}: embeddings differ from fp32 by {err:.1e} > {tol:g}")
            del out
            rows[vname] = (precision, seconds_per_call(partial(step, x, labels), dev,
                                                       args.warmup, args.steps))
            if vname == "bf16 + channels_last":
                net.eval()
                with torch.inference_mode(), torch.autocast(dev.type, dtype=torch.bfloat16):
                    rows["inference bf16 + channels_last"] = ("bf16", seconds_per_call(
                        partial(net, x), dev, args.warmup, args.steps))
        except (RuntimeError, FloatingPointError) as err:  # OOM, compile error, NaN
            failures.append(f"{vname}: {type(err).__name__}: {err}")
        del net, opt, model, step
        if dev.type == "cuda":
            torch.cuda.empty_cache()

    best = 0.0
    for vname, (precision, sec) in rows.items():
        f = flops["infer" if vname.startswith("inference") else "train"]
        tflops = f / sec / 1e12
        peak = peaks[precision]
        frac = tflops / peak if peak else float("nan")
        if precision == "bf16" and not vname.startswith("inference"):
            best = max(best, frac)
        print(f"  {vname:<32} {args.batch / sec:8.1f} images/s  {tflops:7.1f} TFLOP/s  "
              f"{frac:6.1%} of {precision} peak")
    if peaks["bf16"]:
        print(f"RATIO gpu training best bf16 fraction of peak = {best:.3f}  (goal >= 0.4: "
              f"{'met' if best >= 0.4 else 'MISSED'})")
    if dev.type == "cuda":
        print(f"peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")
    print(f"wall {time.perf_counter() - start:.0f} s")
    if time.perf_counter() - start > args.budget:
        failures.append(f"run took over the {args.budget:.0f} s budget")
    for f in failures:
        print(f"FAIL: {f}")
    print("OK" if not failures else f"{len(failures)} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
