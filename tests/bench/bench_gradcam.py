# SPDX-License-Identifier: LGPL-2.1-or-later
"""Grad-CAM throughput on the CPU: cxrgradcam in a pipeline vs torchvision + autograd.

For each architecture at the study's input size, scans/s of
  - cxrgradcam output=heatmap between videotestsrc (GRAY8 frames of --size, default 1024x1024:
    a full-resolution scan) and fakesink: (N2 - N1) scans over the difference of two runs'
    wall times (best of two each), so process start and model load cancel out;
  - the reference in this interpreter: forward, torch.autograd.grad at the same layer,
    Grad-CAM, bilinear upsampling to the frame size, min-max (the scan is already a tensor of
    the input size here: no scaling or colour work is counted on this side).
Threads: OMP_NUM_THREADS for both (meson sets 2). Prints a table; exits 1 when cxrgradcam is
slower than 0.8x the reference (the element also scales the frame and writes the full-size map).
Options: --size S, --scans N.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import torch
import torch.nn.functional as F
import torchvision

ARCHS = [("resnet34", 256, "layer4"), ("mobilenet_v3_large", 232, "features"), ("efficientnet_b1", 255, "features")]


def write_card(tmp, arch, size):
    m = getattr(torchvision.models, arch)(num_classes=3).eval()
    torch.save(m.state_dict(), os.path.join(tmp, f"{arch}.pth"))
    card = os.path.join(tmp, f"{arch}.toml")
    with open(card, "w") as f:
        f.write(f'[model]\narchitecture = "{arch}"\ntask = "multiclass"\nclasses = ["a", "b", "c"]\n'
                f'weights = "{arch}.pth"\n[input]\nsize = [{size}, {size}]\nmean = [0.5]\nstd = [0.25]\n')
    return card, m


def pipeline_seconds(card, frame, n, method):
    cmd = ["gst-launch-1.0", "-q", "videotestsrc", f"num-buffers={n}", "pattern=smpte", "!",
           f"video/x-raw,format=GRAY8,width={frame},height={frame}", "!", "cxrgradcam", f"model={card}",
           "device=cpu", f"method={method}", "output=heatmap", "!", "fakesink"]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    t = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"pipeline failed: {r.stderr[-2000:]}")
    return t


def reference_rate(m, layer, size, frame, n):
    x = torch.randn(1, 3, size, size)
    captured = {}
    m.get_submodule(layer).register_forward_hook(lambda _m, _i, o: captured.__setitem__("a", o))

    def one():
        logits = m(x)
        a = captured["a"]
        (g,) = torch.autograd.grad(logits[0, int(logits.argmax())], a)
        cam = torch.relu((g.mean((2, 3), keepdim=True) * a.detach()).sum(1, keepdim=True))
        cam = F.interpolate(cam, size=(frame, frame), mode="bilinear", align_corners=False)
        lo, hi = cam.min(), cam.max()
        return (cam - lo) / (hi - lo + 1e-12)

    one()
    t0 = time.perf_counter()
    for _ in range(n):
        one()
    return n / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--scans", type=int, default=16)
    args = ap.parse_args()
    threads = int(os.environ.get("OMP_NUM_THREADS", "0")) or os.cpu_count()
    torch.set_num_threads(threads)
    print(f"Grad-CAM scans/s, CPU, {threads} thread(s), frames {args.size}x{args.size} GRAY8")
    print(f"{'architecture':20s} {'input':>5s} {'method':>9s} {'cxrgradcam':>11s} {'torchvision':>12s} {'ratio':>6s}")
    slow = []
    with tempfile.TemporaryDirectory() as tmp:
        for arch, size, layer in ARCHS:
            card, m = write_card(tmp, arch, size)
            ref = reference_rate(m, layer, size, args.size, args.scans)
            for method in ["gradcam", "gradcam++"]:
                # Best of two for each: on a shared machine the start-up time varies by about a second.
                t1 = min(pipeline_seconds(card, args.size, 1, method) for _ in range(2))
                t2 = min(pipeline_seconds(card, args.size, 1 + args.scans, method) for _ in range(2))
                ours = args.scans / max(t2 - t1, 1e-9)
                ratio = ours / ref
                print(f"{arch:20s} {size:5d} {method:>9s} {ours:11.2f} {ref:12.2f} {ratio:6.2f}"
                      + ("" if method == "gradcam" else "  (reference: gradcam)"), flush=True)
                if method == "gradcam" and ratio < 0.8:
                    slow.append(f"{arch}: {ours:.2f} scans/s < 0.8 x {ref:.2f}")
    if slow:
        print("GOAL MISSED:\n  " + "\n  ".join(slow))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
