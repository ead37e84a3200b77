#!/usr/bin/python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Stores a torchvision state dict with its floating-point tensors in float16 (half the size).

gst-cxr loads such a file into float32 modules (the values are converted on load), so a model
card can point at it directly. Integer buffers (num_batches_tracked) are kept as they are.

    /usr/bin/python3 tools/weights-to-half.py best.pt weights.pt
"""
import sys

import torch

if len(sys.argv) != 3:
    sys.exit(__doc__)
state = torch.load(sys.argv[1], map_location="cpu")
half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
torch.save(half, sys.argv[2])
print(f"{len(half)} tensors, {sum(v.numel() for v in half.values())} values -> {sys.argv[2]}")
