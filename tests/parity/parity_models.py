# SPDX-License-Identifier: LGPL-2.1-or-later
"""Parity of our LibTorch networks with torchvision 0.14: a state dict saved by torchvision
(non-trivial BatchNorm statistics) loads into our module, and the same input gives the same
probabilities (max abs difference <= 1e-4, fp32, CPU), with and without BatchNorm folding."""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_common as mc  # noqa: E402

TOL = 1e-4
CASES = [  # arch, classes, height, width
    ("resnet34", 3, 224, 224),
    ("mobilenet_v3_large", 7, 232, 232),
    ("efficientnet_b1", 3, 255, 255),
    ("efficientnet_b1", 1000, 193, 241),  # odd, non-square: padding and pooling
]


def main():
    torch.set_num_threads(2)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (arch, classes, h, w) in enumerate(CASES):
            m = mc.torchvision_model(arch, classes, seed=10 + i)
            weights = os.path.join(tmp, f"{arch}.pth")
            torch.save(m.state_dict(), weights)
            torch.manual_seed(100 + i)
            x = torch.randn(3, 3, h, w)
            with torch.no_grad():
                ref_logits = m(x).numpy()
                ref_probs = torch.softmax(m(x), 1).numpy()
                ref_emb = mc.embedding(m, arch, x).numpy()
            for fold in (True, False):
                opts = ["--weights", weights] + ([] if fold else ["--no-fold"])
                logits, probs, emb, split = mc.run_cxx(arch, classes, x, tmp, *opts)
                dp = float(np.abs(probs - ref_probs).max())
                dl = float(np.abs(logits - ref_logits).max())
                de = float(np.abs(emb - ref_emb).max())
                ds = float(np.abs(split - logits).max())
                print(f"{arch:20s} {classes:4d} cls {h}x{w} fold={fold!s:5s}: max|dprob|={dp:.3e} "
                      f"max|dlogit|={dl:.3e} max|demb|={de:.3e} |classify(features)-forward|={ds:.1e} "
                      f"(logit range {ref_logits.min():.2f}..{ref_logits.max():.2f})")
                if not dp <= TOL:
                    failures.append(f"{arch} fold={fold}: probabilities differ by {dp}")
                if not dl <= 1e-3 * max(1.0, float(np.abs(ref_logits).max())):
                    failures.append(f"{arch} fold={fold}: logits differ by {dl}")
                if not de <= 1e-3 * max(1.0, float(np.abs(ref_emb).max())):
                    failures.append(f"{arch} fold={fold}: embeddings differ by {de}")
                if not ds <= 1e-5 * max(1.0, float(np.abs(logits).max())):
                    failures.append(f"{arch} fold={fold}: classify(features(x)) != forward(x) by {ds}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("parity_models: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
