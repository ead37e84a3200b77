#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Preprocessing throughput, one core: gst-cxr's decode -> equalize -> blur -> resize(255) ->
augment pipeline, decode alone, and the study's Python pipeline, side by side in one run.

Python (the study's code path): torchvision read_image(GRAY) -> F.equalize ->
F.gaussian_blur(5x5) -> PIL RGB image (ImageFolder's loader) -> Resize(255) ->
RandomHorizontalFlip -> RandomAdjustSharpness(2) -> RandomAutocontrast.
Goals: gst-cxr >= 8x Python, and >= 70% of decode-only throughput, over the whole set (both
folders together); each folder's figures are printed too.
Every process is pinned to one core (taskset -c 0); torch uses one thread.
"""
import glob
import json
import os
import subprocess
import sys
import time

shared = os.environ.get("CXR_SHARED_DATA", os.path.join(os.path.dirname(__file__), "../../../shared/data"))
cxr = os.path.join(os.environ.get("CXR_TOOLS", "build/tools"), "cxr")
sets = {
    "NIH 1024x1024 PNG": sorted(glob.glob(os.path.join(shared, "nih/full_res/*/*.png"))),
    "COVID 640px PNG": sorted(glob.glob(os.path.join(shared, "covid/COVID/*.png"))),
}
for name, files in sets.items():
    if not files:
        sys.exit(f"bench: no files for {name} under {shared} (set CXR_SHARED_DATA)")

pin = ["taskset", "-c", "0"]
env = dict(os.environ, OMP_NUM_THREADS="1", OPENCV_FOR_THREADS_NUM="1")


def blas():
    try:
        out = subprocess.run(["update-alternatives", "--query", "libblas.so.3-x86_64-linux-gnu"],
                             capture_output=True, text=True).stdout
        return next(l.split(": ", 1)[1] for l in out.splitlines() if l.startswith("Value:"))
    except Exception:
        return "unknown"


def ours(listfile, chain, repeat=3):
    desc = f"cxrscansrc location={listfile} ! {chain} ! fakesink"
    out = subprocess.run(pin + [cxr, "bench", "--repeat", str(repeat), desc], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"bench: {desc}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


PY = r'''
import sys, time, json, torch
from torchvision.io import read_image, ImageReadMode
import torchvision.transforms.functional as F
import torchvision.transforms as T
torch.set_num_threads(1)
torch.manual_seed(42)
files = [l.strip() for l in open(sys.argv[1]) if l.strip()]
train = T.Compose([T.Resize(255), T.RandomHorizontalFlip(), T.RandomAdjustSharpness(2), T.RandomAutocontrast()])
def run(grey_only):
    for f in files:
        t = F.gaussian_blur(F.equalize(read_image(f, ImageReadMode.GRAY)), [5, 5])
        img = F.to_pil_image(t)
        train(img if grey_only else img.convert("RGB"))
best = {}
for mode in (False, True):
    run(mode)  # warm-up: page cache and lazy initialisation
    times = []
    for _ in range(2):
        t0 = time.perf_counter(); run(mode); times.append(time.perf_counter() - t0)
    best["grey" if mode else "rgb"] = len(files) / min(times)
print(json.dumps(best))
'''


def python(listfile):
    out = subprocess.run(pin + [os.environ.get("CXR_PYTHON", "/usr/bin/python3"), "-c", PY, listfile],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit("bench: python reference failed\n" + out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


full = ("cxrdecode ! cxrequalize mode=torchvision ! cxrblur kernel-size=5 ! "
        "cxrresize mode=shorter-side size=255 ! cxraugment always=true seed=42")
print(f"one core (taskset -c 0); BLAS: {blas()}")
print(f"{'set':<20} {'scans':>5} {'decode/s':>9} {'gst-cxr/s':>10} {'python/s':>9} {'py grey/s':>9} "
      f"{'vs py':>6} {'vs decode':>9}")
tmp = os.environ.get("TMPDIR", "/tmp")
seconds = {"decode": 0.0, "ours": 0.0, "python": 0.0}
n_all = 0
for name, files in sets.items():
    listfile = os.path.join(tmp, f"cxr-bench-{os.getpid()}.txt")
    with open(listfile, "w") as f:
        f.write("\n".join(files) + "\n")
    dec = ours(listfile, "cxrdecode")
    pipe = ours(listfile, full)
    py = python(listfile)
    os.unlink(listfile)
    if pipe["buffers"] != len(files) or dec["buffers"] != len(files):
        sys.exit(f"bench: {len(files)} files but {pipe['buffers']} / {dec['buffers']} frames came out")
    speedup = pipe["per_s"] / py["rgb"]
    frac = pipe["per_s"] / dec["per_s"]
    seconds["decode"] += len(files) / dec["per_s"]
    seconds["ours"] += len(files) / pipe["per_s"]
    seconds["python"] += len(files) / py["rgb"]
    n_all += len(files)
    print(f"{name:<20} {len(files):>5} {dec['per_s']:>9.1f} {pipe['per_s']:>10.1f} {py['rgb']:>9.1f} "
          f"{py['grey']:>9.1f} {speedup:>5.1f}x {100 * frac:>8.0f}%")
speedup = seconds["python"] / seconds["ours"]
frac = seconds["decode"] / seconds["ours"]
print(f"{'all':<20} {n_all:>5} {n_all / seconds['decode']:>9.1f} {n_all / seconds['ours']:>10.1f} "
      f"{n_all / seconds['python']:>9.1f} {'':>9} {speedup:>5.1f}x {100 * frac:>8.0f}%")
ok = speedup >= 8 and frac >= 0.7
print("goals over all scans (>= 8x python, >= 70% of decode):", "met" if ok else "NOT met")
sys.exit(0 if ok else 1)
