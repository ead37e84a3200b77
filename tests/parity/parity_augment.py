# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxraugment's operations must each equal torchvision 0.14's functional op on PIL 'L' images
(Pillow 9.4) bit for bit: hflip, adjust_sharpness (factor 2 as the study, and 0.5, 3.5),
autocontrast, and all three in RandomHorizontalFlip -> RandomAdjustSharpness ->
RandomAutocontrast order. Then the seeded draws: with p = 0.5 each, scan i of the stream (no scan
meta, so its buffer offset is the index, epoch 0) gets exactly the operations that the documented
splitmix64 draw of (seed, 0, i) selects. Input: the study's equalized, blurred scans resized to 255."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
import torchvision.transforms.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import preprocess_util as pu  # noqa: E402

pu.require("cxraugment")
items = pu.scans()
pre = [np.array(T.Resize(255)(Image.fromarray(F.gaussian_blur(F.equalize(torch.from_numpy(g)[None]), [5, 5])[0].numpy())))
       for _, g in items]
failures = 0


def only(flip=0.0, sharp=0.0, contrast=0.0, factor=2.0):
    return (f"cxraugment always=true flip-probability={flip} sharpness-probability={sharp} "
            f"autocontrast-probability={contrast} sharpness-factor={factor}")


def compose(img, flip, sharp, contrast, factor=2.0):
    if flip:
        img = F.hflip(img)
    if sharp:
        img = F.adjust_sharpness(img, factor)
    if contrast:
        img = F.autocontrast(img)
    return img


cases = [("hflip", only(flip=1), lambda p: F.hflip(p)),
         ("adjust_sharpness(2)", only(sharp=1), lambda p: F.adjust_sharpness(p, 2.0)),
         ("adjust_sharpness(0.5)", only(sharp=1, factor=0.5), lambda p: F.adjust_sharpness(p, 0.5)),
         ("adjust_sharpness(3.5)", only(sharp=1, factor=3.5), lambda p: F.adjust_sharpness(p, 3.5)),
         ("autocontrast", only(contrast=1), lambda p: F.autocontrast(p)),
         ("all three", only(1, 1, 1), lambda p: compose(p, True, True, True))]
for name, chain, op in cases:
    ours = pu.run(pre, chain)
    worst, differing, changed = 0, 0, 0
    for p, o in zip(pre, ours):
        ref = np.array(op(Image.fromarray(p)))
        d = pu.diff(o, ref)
        worst, differing = max(worst, d[0]), differing + d[1]
        changed += not np.array_equal(ref, p)
    print(f"{name}: max diff {worst}, {differing} pixels differ; {changed} of {len(pre)} scans changed by the op")
    failures += worst != 0 or changed == 0

# Equalized scans mostly span 0..255 already; the raw grey scans seldom do.
raw = [np.array(T.Resize(255)(Image.fromarray(g))) for _, g in items]
ours = pu.run(raw, only(contrast=1))
worst, changed = 0, 0
for p, o in zip(raw, ours):
    ref = np.array(F.autocontrast(Image.fromarray(p)))
    worst = max(worst, pu.diff(o, ref)[0])
    changed += not np.array_equal(ref, p)
print(f"autocontrast on raw grey scans: max diff {worst}; {changed} of {len(raw)} scans changed by the op")
failures += worst != 0 or changed < len(raw) // 4

# The seeded draws, reimplemented from the documented hash.
M = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def splitmix64(x):
    z = (x + GOLDEN) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def uniform(seed, epoch, index, stream):
    h = splitmix64(seed)
    h = splitmix64(h ^ epoch)
    h = splitmix64(h ^ index)
    h = splitmix64((h + (stream + 1) * GOLDEN) & M)
    return (h >> 11) * 2.0 ** -53


seed = 42
frames = pre * 3
offsets = list(range(100, 100 + len(frames)))
ours = pu.run(frames, f"cxraugment always=true seed={seed}", offsets)
counts = [0, 0, 0]
mismatched = 0
for i, p, o in zip(offsets, frames, ours):
    ops = [uniform(seed, 0, i, s) < 0.5 for s in range(3)]
    counts = [c + k for c, k in zip(counts, ops)]
    ref = np.array(compose(Image.fromarray(p), *ops))
    if not np.array_equal(o, ref):
        mismatched += 1
        print(f"MISMATCH seeded scan {i}: draws {ops}")
print(f"seeded run: {len(frames)} scans, flips {counts[0]}, sharpness {counts[1]}, autocontrast {counts[2]}, "
      f"{mismatched} mismatches")
failures += mismatched != 0 or 0 in counts or len(frames) in counts
print(f"{len(items)} scans, {failures} failures")
sys.exit(1 if failures else 0)
