# SPDX-License-Identifier: LGPL-2.1-or-later
"""Shared helpers of the model parity tests: torchvision models with non-trivial BatchNorm
statistics, and the cxr-model-run helper binary."""
import os
import subprocess
import sys

import numpy as np
import torch
import torchvision

ARCHS = {
    "resnet34": torchvision.models.resnet34,
    "mobilenet_v3_large": torchvision.models.mobilenet_v3_large,
    "efficientnet_b1": torchvision.models.efficientnet_b1,
}


def build_root():
    root = os.environ.get("CXR_BUILD_ROOT")
    if not root:
        sys.exit("CXR_BUILD_ROOT is not set (run through meson test)")
    return root


def model_run():
    exe = os.path.join(build_root(), "tests", "parity", "cxr-model-run")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing (build with LibTorch)")
    return exe


def torchvision_model(arch, classes, seed):
    """A torchvision model whose BatchNorm statistics and affine parameters are far from their
    initial values, so that a wrong eps, momentum or folding shows."""
    torch.manual_seed(seed)
    m = ARCHS[arch](num_classes=classes)
    m.train()
    with torch.no_grad():
        for _ in range(2):
            m(torch.randn(2, 3, 64, 64) * 2 + 0.5)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.add_(torch.randn_like(mod.running_mean) * 0.1)
                mod.running_var.mul_(torch.empty_like(mod.running_var).uniform_(0.5, 2.0))
                mod.weight.mul_(torch.empty_like(mod.weight).uniform_(0.5, 1.5))
                mod.bias.add_(torch.randn_like(mod.bias) * 0.1)
        # torchvision's head init gives near-zero logits for some architectures, which would
        # hide differences behind a flat softmax: scale the head to logits of spread ~5.
        m.eval()
        head = [mod for mod in m.modules() if isinstance(mod, torch.nn.Linear)][-1]
        spread = float(m(torch.randn(4, 3, 96, 96)).std())
        head.weight.mul_(5.0 / max(spread, 1e-6))
    return m.eval()


def embedding(m, arch, x):
    """torchvision's penultimate features (the input of the last linear layer)."""
    f = m.features(x) if arch != "resnet34" else None
    if arch == "resnet34":
        y = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        y = m.layer4(m.layer3(m.layer2(m.layer1(y))))
        return torch.flatten(m.avgpool(y), 1)
    e = torch.flatten(m.avgpool(f), 1)
    if arch == "mobilenet_v3_large":
        e = m.classifier[2](m.classifier[1](m.classifier[0](e)))
    return e


def run_cxx(arch, classes, x, tmp, *options, exe=None, stdout=None):
    """Runs our model on x; returns (logits, probabilities, embedding, split logits). `exe`: the
    cxr-model-run to run (default: the build's); `stdout`: a list that gets its output."""
    n, _, h, w = x.shape
    inp = os.path.join(tmp, "in.f32")
    out = os.path.join(tmp, "out.f32")
    x.numpy().astype(np.float32).tofile(inp)
    r = subprocess.run([exe or model_run(), arch, str(classes), inp, str(n), str(h), str(w), out, *options],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"cxr-model-run {arch} failed: {r.stderr.strip()}")
    if stdout is not None:
        stdout.append(r.stdout)
    data = np.fromfile(out, dtype=np.float32)
    k = classes
    d = (len(data) - 3 * n * k) // n
    logits = data[: n * k].reshape(n, k)
    probs = data[n * k: 2 * n * k].reshape(n, k)
    emb = data[2 * n * k: 2 * n * k + n * d].reshape(n, d)
    split = data[2 * n * k + n * d:].reshape(n, k)
    return logits, probs, emb, split
