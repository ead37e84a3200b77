# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrresize method=antialias must equal torchvision 0.14's Resize on PIL 'L' images (Pillow
9.4's BILINEAR resample) bit for bit: shorter side to 255 (EfficientNet-B1), 256 (ResNet-34),
232 (MobileNetV3), 384 (ChestX-ray8 storage), 224 and an upscale to 700; stretch to 224x300;
center-crop 224 = Resize(224) + CenterCrop(224). Input: the study's equalized, blurred scans."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision.transforms as T  # noqa: E402
import torchvision.transforms.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

import preprocess_util as pu  # noqa: E402

pu.require("cxrresize")
items = pu.scans()
pre = [F.gaussian_blur(F.equalize(torch.from_numpy(g)[None]), [5, 5])[0].numpy() for _, g in items]
failures = 0

cases = [(f"cxrresize size={s}", T.Resize(s)) for s in (255, 256, 232, 384, 224, 700)]
cases += [("cxrresize mode=stretch width=224 height=300", T.Resize([300, 224])),
          ("cxrresize mode=center-crop width=224 height=224", T.Compose([T.Resize(224), T.CenterCrop(224)]))]
for chain, tf in cases:
    ours = pu.run(pre, chain)
    worst, differing = 0, 0
    for (path, _), p, o in zip(items, pre, ours):
        ref = np.array(tf(Image.fromarray(p)))
        if o.shape != ref.shape:
            print(f"MISMATCH {chain} {os.path.basename(path)}: shape {o.shape}, torchvision {ref.shape}")
            failures += 1
            continue
        d = pu.diff(o, ref)
        worst, differing = max(worst, d[0]), differing + d[1]
    print(f"{chain}: max diff {worst}, {differing} pixels differ")
    failures += worst != 0

path, _ = items[6]
ref = np.array(T.Resize(255)(Image.fromarray(pre[6])))
out = pu.run_launch(pre[6], "cxrresize size=255", ref.shape[1], ref.shape[0])
d = pu.diff(out, ref)
print(f"gst-launch {os.path.basename(path)} -> {ref.shape[1]}x{ref.shape[0]}: max diff {d[0]}")
failures += d[0] != 0
print(f"{len(items)} scans, {failures} failures")
sys.exit(1 if failures else 0)
