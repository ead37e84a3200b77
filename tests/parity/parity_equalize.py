# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrequalize mode=torchvision must equal torchvision 0.14's F.equalize bit for bit on the grey
scans (read_image(GRAY), as the study did). The grey input is the same array on both sides
(appsrc), plus a gst-launch-1.0 cross-check from PNG. (mode=opencv is checked against
cv::equalizeHist in tests/lib: this interpreter has no cv2.)"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms.functional as F  # noqa: E402

import preprocess_util as pu  # noqa: E402

pu.require("cxrequalize")
items = pu.scans()
frames = [g for _, g in items]
failures = 0

ours_tv = pu.run(frames, "cxrequalize mode=torchvision")
changed = 0
for (path, g), tv in zip(items, ours_tv):
    ref = F.equalize(torch.from_numpy(g)[None])[0].numpy()
    d_tv = pu.diff(tv, ref)
    changed += not np.array_equal(ref, g)
    print(f"{os.path.basename(path)} {g.shape[1]}x{g.shape[0]}: max diff {d_tv[0]} ({d_tv[1]} px)")
    if d_tv[0] != 0:
        print("  MISMATCH")
        failures += 1

# The same through a gst-launch-1.0 pipeline from a PNG file.
for path, g in items[:3]:
    out = pu.run_launch(g, "cxrequalize mode=torchvision", g.shape[1], g.shape[0])
    d = pu.diff(out, F.equalize(torch.from_numpy(g)[None])[0].numpy())
    print(f"gst-launch {os.path.basename(path)}: max diff {d[0]}")
    failures += d[0] != 0

if changed < len(items) // 2:
    print(f"only {changed} of {len(items)} scans changed by equalization: the comparison proves little")
    failures += 1
print(f"{len(items)} scans, {failures} failures")
sys.exit(1 if failures else 0)
