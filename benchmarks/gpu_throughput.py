"""Benchmark 5 (GPU part): training throughput of FCN-32s VGG16 (fc width 4096, embedding
head j = 20) on one CUDA GPU, with the fraction of the device's peak, and whether bf16
training follows fp32.

Two settings: the paper's (500 x 500, batch 1) and batched training on random crops of 320
at the largest batch that fits (found by doubling from 2 in fp32, the most memory-hungry
variant, up to ``--max-batch``; every variant then uses it). Variants (training step =
forward, cosine loss, backward, Adam; same seed and batch each): ``fp32`` (TF32 off),
``tf32``, ``bf16`` (autocast, what ``trainer=gpu`` runs), ``bf16 + channels_last`` and
``bf16 + channels_last + compile`` (``model.compile=true``). FLOPs per step come from
``torch.utils.flop_counter.FlopCounterMode`` (counted on the meta device), so each line
gives images/s, achieved TFLOP/s and the fraction of the dense peak of its precision.
Goal on an H200: >= 40 % of the bf16 peak in training (the best bf16 variant).

Self-checks (exit status 1 when one fails):
- a CUDA device is present (else it says so and exits 1 at once);
- the device normalisation (``zss.data.batches.normalize_batch``, what the modules run in
  ``on_after_batch_transfer``) gives the CPU's float32 bytes exactly, for both
  preprocessings (ImageNet and Caffe), padding included;
- before training, each variant's embeddings (eval mode, same weights and batch) are within
  a relative L2 error of 1e-2 (tf32) / 2e-2 (bf16) of the fp32 ones;
- bf16 training follows fp32: ``--curve-steps`` (200) steps from the same weights over the
  same 8 batches (500 x 500, batch 1, Adam lr 1e-4); the two loss curves, each smoothed
  over 10 steps, differ by at most 2 % (relative) at every step;
- every loss is finite; the run stays within ``--budget`` seconds (variants left are
  skipped and reported).
Expected to take 3-4 minutes on an H100/H200, most of it ``torch.compile`` (two shapes).

    .venv/bin/python benchmarks/gpu_throughput.py [--max-batch 64] [--steps 10] [--budget 290]
        [--peak-bf16 TFLOPS --peak-tf32 TFLOPS --peak-fp32 TFLOPS]   # other GPUs
    .venv/bin/python benchmarks/gpu_throughput.py --cpu-smoke --size 64 --crop 32 \
        --max-batch 2 --steps 1 --warmup 1 --curve-steps 12        # the code paths, on a CPU
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


VARIANTS = [  # name, precision, autocast dtype, channels_last, compile
    ("fp32", "fp32", None, False, False), ("tf32", "tf32", None, False, False),
    ("bf16", "bf16", torch.bfloat16, False, False),
    ("bf16 + channels_last", "bf16", torch.bfloat16, True, False),
    ("bf16 + channels_last + compile", "bf16", torch.bfloat16, True, True)]


def check_device_normalisation(dev: torch.device) -> list[str]:
    """normalize_batch on ``dev`` against the CPU, bit for bit (both preprocessings)."""
    from zss.data.batches import normalize_batch
    from zss.models import CAFFE_PREPROCESSING, IMAGENET_PREPROCESSING

    g = torch.Generator().manual_seed(0)
    b = {"image": torch.randint(0, 256, (2, 3, 64, 80), dtype=torch.uint8, generator=g),
         "label": torch.randint(0, 21, (2, 64, 80), dtype=torch.uint8, generator=g),
         "box": torch.tensor([[0, 0, 80, 64], [5, 7, 60, 50]]),
         "size": torch.tensor([[64, 80], [50, 60]])}
    failures = []
    for name, pre in (("imagenet", IMAGENET_PREPROCESSING), ("caffe", CAFFE_PREPROCESSING)):
        cpu = normalize_batch(b, pre)["image"]
        got = normalize_batch({k: v.to(dev) for k, v in b.items()}, pre)["image"].cpu()
        same = torch.equal(cpu.view(torch.int32), got.view(torch.int32))
        ulp = int((cpu.view(torch.int32) - got.view(torch.int32)).abs().max())
        print(f"check: normalize_batch on {dev.type} == CPU bit for bit ({name}): {same} "
              f"(max difference {ulp} ulp)")
        if not same:
            failures.append(f"device normalisation ({name}) differs from the CPU by {ulp} ulp")
    return failures


def fits(dev: torch.device, n: int, size: int) -> bool:
    """Whether one fp32 training step at batch ``n`` fits in the GPU's memory."""
    net, emb = build(dev)
    step = train_step(net, emb, torch.optim.Adam(net.parameters(), lr=1e-5))
    try:
        step(*batch(n, size, dev))
        sync(dev)
        return True
    except torch.OutOfMemoryError:
        return False
    finally:
        del net, emb, step
        if dev.type == "cuda":
            torch.cuda.empty_cache()


def best_batch(dev: torch.device, size: int, max_batch: int) -> int:
    n = 1
    while n * 2 <= max_batch and fits(dev, n * 2, size):
        n *= 2
    return n


def loss_curves(dev: torch.device, size: int, steps: int) -> dict[str, list[float]]:
    """fp32 and bf16 (+ channels_last) training losses over ``steps`` steps, same start."""
    data = [batch(1, size, dev, seed=s) for s in range(8)]
    curves = {}
    for name, dtype, fmt in (("fp32", None, torch.contiguous_format),
                             ("bf16", torch.bfloat16, torch.channels_last)):
        set_tf32(False)
        net, emb = build(dev)
        net = net.to(memory_format=fmt)
        step = train_step(net, emb, torch.optim.Adam(net.parameters(), lr=1e-4), dtype)
        losses = [step(data[i % 8][0].contiguous(memory_format=fmt), data[i % 8][1])
                  for i in range(steps)]
        curves[name] = [float(x) for x in losses]
        del net, step
    return curves


def smooth(xs: list[float], k: int = 10) -> list[float]:
    return [sum(xs[max(0, i - k + 1):i + 1]) / len(xs[max(0, i - k + 1):i + 1])
            for i in range(len(xs))]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=500, help="the paper's image side")
    ap.add_argument("--crop", type=int, default=320, help="crop side of batched training")
    ap.add_argument("--max-batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--curve-steps", type=int, default=200)
    ap.add_argument("--curve-tolerance", type=float, default=0.02)
    ap.add_argument("--budget", type=float, default=290.0, help="seconds for the whole run")
    ap.add_argument("--cpu-smoke", action="store_true",
                    help="exercise the script on the CPU (use tiny --size, --crop, --max-batch)")
    for p in ("bf16", "tf32", "fp32"):
        ap.add_argument(f"--peak-{p}", type=float, help=f"dense {p} peak, TFLOP/s")
    args = ap.parse_args()
    start = time.perf_counter()
    if args.cpu_smoke:
        dev, name = torch.device("cpu"), "CPU smoke test"
    elif not torch.cuda.is_available():
        print("FAIL: no CUDA device (torch.cuda.is_available() is False): this benchmark "
              "measures a GPU. Run it on a machine with an NVIDIA GPU and a CUDA build of "
              "torch (make install), or pass --cpu-smoke to exercise its code on a CPU.")
        return 1
    else:
        dev = torch.device("cuda")
        name = torch.cuda.get_device_name(dev)
    header(f"5. throughput (GPU {name}): FCN-32s VGG16 + embedding head")
    peaks = device_peaks(name, args)
    print(f"dense peaks (TFLOP/s): {peaks}; torch {torch.__version__}, cuda "
          f"{torch.version.cuda}, cudnn {torch.backends.cudnn.version()}")
    torch.backends.cudnn.benchmark = True
    failures = check_device_normalisation(dev)
    crop_batch = best_batch(dev, args.crop, args.max_batch)
    settings = [(f"{args.size} x {args.size}, batch 1 (paper)", args.size, 1),
                (f"crops {args.crop}, batch {crop_batch} (largest that fits in fp32)",
                 args.crop, crop_batch)]
    rows, best = {}, 0.0
    for setting, size, n in settings:
        flops = count_flops(size, n)
        print(f"-- {setting}: {flops / 1e12:.2f} TFLOP per training step", flush=True)
        images, labels = batch(n, size, dev)
        ref = None
        for vname, precision, dtype, channels_last, compiled in VARIANTS:
            if time.perf_counter() - start > args.budget * 0.6:
                failures.append(f"{setting} {vname}: skipped, over 60 % of the "
                                f"{args.budget:.0f} s budget")
                continue
            set_tf32(precision == "tf32")
            net, emb = build(dev)
            fmt = torch.channels_last if channels_last else torch.contiguous_format
            net = net.to(memory_format=fmt)
            x = images.contiguous(memory_format=fmt)
            opt = torch.optim.Adam(net.parameters(), lr=1e-5)
            if compiled:
                net.backbone.compile()  # in place, as model.compile=true does
            step = train_step(net, emb, opt, dtype)
            try:
                out = embeddings(net, x, dtype)  # same initial weights in every variant
                ref = out if ref is None else ref
                err = float((out - ref).norm() / ref.norm())
                tol = {"fp32": 1e-5, "tf32": 1e-2, "bf16": 2e-2}[precision]
                print(f"  {vname:<32} check: relative error of the embeddings vs fp32 "
                      f"{err:.1e} (tolerance {tol:g})", flush=True)
                if not err <= tol:
                    failures.append(f"{setting} {vname}: embeddings differ from fp32 by "
                                    f"{err:.1e} > {tol:g}")
                del out
                sec = seconds_per_call(partial(step, x, labels), dev, args.warmup, args.steps)
                tflops = flops / sec / 1e12
                frac = tflops / peaks[precision] if peaks[precision] else float("nan")
                if precision == "bf16":
                    best = max(best, frac)
                rows[(setting, vname)] = (n / sec, tflops, frac)
                print(f"  {vname:<32} {n / sec:8.2f} images/s  {tflops:7.1f} TFLOP/s  "
                      f"{frac:6.1%} of {precision} peak", flush=True)
            except (RuntimeError, FloatingPointError) as err:  # OOM, compile error, NaN
                failures.append(f"{setting} {vname}: {type(err).__name__}: {err}")
            del net, opt, step
            if dev.type == "cuda":
                torch.cuda.empty_cache()
    set_tf32(False)
    curves = loss_curves(dev, args.size, args.curve_steps)
    a, b = smooth(curves["fp32"]), smooth(curves["bf16"])
    worst = max(abs(x - y) / abs(x) for x, y in zip(a, b, strict=True))
    print(f"check: bf16 loss curve vs fp32 over {args.curve_steps} steps: fp32 "
          f"{curves['fp32'][0]:.4f} -> {a[-1]:.4f}, bf16 {curves['bf16'][0]:.4f} -> "
          f"{b[-1]:.4f}; largest relative difference (10-step means) {worst:.2%} "
          f"(tolerance {args.curve_tolerance:.0%})")
    if not all(map(math.isfinite, curves["fp32"] + curves["bf16"])):
        failures.append("a non-finite loss in the loss curves")
    elif not worst <= args.curve_tolerance:
        failures.append(f"bf16 loss curve differs from fp32 by {worst:.2%}")
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
