# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrdecode's GRAY8 output must equal torchvision 0.14's read_image(path, ImageReadMode.GRAY)
bit for bit, for every bundled PNG and JPEG (grey, RGB and RGBA PNGs, RGB JPEGs) and for a
selection of the shared data (full-resolution NIH PNGs incl. the RGBA ones, 64 px RGB/RGBA NIH
PNGs, COVID PNGs, pneumonia JPEGs)."""
import glob
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np  # noqa: E402
import torchvision  # noqa: E402
from torchvision.io import ImageReadMode, read_image  # noqa: E402

import cxrdecode_util  # noqa: E402

cxrdecode_util.require_plugin()
samples = os.environ.get("CXR_SAMPLES", "data/samples")
shared = os.environ.get("CXR_SHARED_DATA", "../shared/data")

files = sorted(glob.glob(f"{samples}/**/*.png", recursive=True) + glob.glob(f"{samples}/**/*.jpeg", recursive=True))
if len(files) != 69:
    sys.exit(f"expected 69 bundled PNG/JPEG samples, found {len(files)}")
extra = (sorted(glob.glob(f"{shared}/nih/full_res/*/*.png"))
         + sorted(glob.glob(f"{shared}/nih/nih1000_64px/train/*/*.png"))[:150]
         + sorted(glob.glob(f"{shared}/covid/COVID/*.png"))[:30]
         + sorted(glob.glob(f"{shared}/pneumonia/*/*.jpeg"))[:60])
if len(extra) < 200:
    sys.exit(f"shared data missing under {shared}: {len(extra)} files")

failures = 0
modes = {}
for path in files + extra:
    ref = read_image(path, ImageReadMode.GRAY)[0].numpy()
    ours = cxrdecode_util.decode(path)
    modes[ours.dtype.name] = modes.get(ours.dtype.name, 0) + 1
    if ours.shape != ref.shape or ours.dtype != np.uint8 or not np.array_equal(ours, ref):
        diff = int(np.abs(ours.astype(int) - ref.astype(int)).max()) if ours.shape == ref.shape else -1
        print(f"MISMATCH {path}: ours {ours.shape} {ours.dtype}, torchvision {ref.shape}, max diff {diff}")
        failures += 1

print(f"torchvision {torchvision.__version__}: {len(files) + len(extra)} files compared, {failures} mismatches")
sys.exit(1 if failures else 0)
