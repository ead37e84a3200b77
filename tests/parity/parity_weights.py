# SPDX-License-Identifier: LGPL-2.1-or-later
"""Round trip C++ -> Python: a state dict saved by our writer (after train-mode steps that move
the BatchNorm statistics and num_batches_tracked) is read by torch.load, accepted by
torchvision's load_state_dict(strict=True), and gives the same logits as our module."""
import os
import sys
import tempfile
import zipfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_common as mc  # noqa: E402

CASES = [("resnet34", 4), ("mobilenet_v3_large", 3), ("efficientnet_b1", 7)]
STEPS = 3


def main():
    torch.set_num_threads(2)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (arch, classes) in enumerate(CASES):
            path = os.path.join(tmp, f"{arch}-cxx.pth")
            torch.manual_seed(200 + i)
            x = torch.randn(2, 3, 160, 176)
            logits, _, _, _ = mc.run_cxx(arch, classes, x, tmp, "--init", str(i + 1), "--train-steps", str(STEPS),
                                         "--save", path, "--no-fold")
            names = zipfile.ZipFile(path).namelist()
            if not any(n.endswith("/version") for n in names):
                failures.append(f"{arch}: archive has no version record ({names[:3]}...)")
            sd = torch.load(path)
            m = mc.ARCHS[arch](num_classes=classes)
            missing = m.load_state_dict(sd, strict=True)
            ref_keys = list(m.state_dict().keys())
            if list(sd.keys()) != ref_keys:
                failures.append(f"{arch}: key order differs from torchvision's")
            nbt = [v for k, v in sd.items() if k.endswith("num_batches_tracked")]
            if not nbt or any(v.dtype != torch.int64 or int(v) != STEPS for v in nbt):
                failures.append(f"{arch}: num_batches_tracked not int64 == {STEPS}")
            moved = [k for k, v in sd.items() if k.endswith("running_var") and not torch.allclose(v, torch.ones_like(v))]
            if not moved:
                failures.append(f"{arch}: BatchNorm statistics did not move; the test would prove little")
            m.eval()
            with torch.no_grad():
                ref = m(x).numpy()
            d = float(np.abs(ref - logits).max())
            print(f"{arch:20s} {len(sd)} tensors, strict load {missing}, max|dlogit|={d:.3e} "
                  f"(logit range {ref.min():.2f}..{ref.max():.2f})")
            # Relative: torchvision's MobileNetV3 head init gives logits of ~1e-3.
            if not d <= 1e-4 * float(np.abs(ref).max()) + 1e-7:
                failures.append(f"{arch}: logits differ by {d}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("parity_weights: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
