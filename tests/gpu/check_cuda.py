#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""gst-cxr's networks on a GPU against torchvision on the same GPU: parity and throughput.

    tests/gpu/build-model-run.sh /tmp/cxr-gpu
    python3 tests/gpu/check_cuda.py /tmp/cxr-gpu/cxr-model-run [--device cuda] [--seconds 2]

For each architecture, torchvision weights with non-trivial BatchNorm statistics:
- fp32 parity, TF32 off on both sides: max |probability difference| <= 1e-4 against torchvision on
  the same device and against torchvision on the CPU;
- fp16 / bf16 (CUDA only): the same scans' probabilities against torchvision's fp32 on the CPU,
  next to torchvision's own fp16 / bf16 error; ours may be at most twice it plus 1e-3, and the
  predicted classes must be torchvision fp32's wherever its top two are 0.05 apart or more;
- throughput (images/s, forward + softmax + copy back to the host, default TF32 settings on both
  sides): the raw gst-cxr module (cxr-model-run --time) and torchvision eager in Python, batch 1,
  8 and 32 at 224 px, in fp32 and (on CUDA) fp16, torchvision in channels-last at fp16 as ours.

Prints a table; exits 1 when a parity check fails. With --json FILE, writes the figures there.
`--device cpu` runs the same on the CPU (parity and fp32 throughput only).
"""
import argparse
import contextlib
import json
import os
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
import model_common as mc  # noqa: E402

ARCHS = ["resnet34", "mobilenet_v3_large", "efficientnet_b1"]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def set_tf32(on):
    if torch.cuda.is_available():
        torch.backends.cudnn.allow_tf32 = on
        torch.backends.cuda.matmul.allow_tf32 = False  # PyTorch's default, and LibTorch's


@contextlib.contextmanager
def placed(m, x, device, precision):
    """torchvision's model and input on `device` in `precision` (channels-last below fp32, as
    gst-cxr runs them); the model goes back to fp32 on the CPU afterwards."""
    dtype = DTYPES[precision]
    m.to(device, dtype)
    x = x.to(device, dtype)
    if precision != "fp32":
        m.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    try:
        with torch.inference_mode():
            yield x
    finally:
        m.to("cpu", torch.float32).to(memory_format=torch.contiguous_format)


def tv_probs(m, x, device, precision):
    with placed(m, x, device, precision) as xx:
        return torch.softmax(m(xx).float(), 1).cpu().numpy()


def tv_rate(m, device, precision, batch, seconds):
    with placed(m, torch.randn(batch, 3, 224, 224), device, precision) as x:
        for _ in range(3):
            torch.softmax(m(x), 1).cpu()
        iters, t0 = 0, time.perf_counter()
        while True:
            torch.softmax(m(x), 1).cpu()
            iters += 1
            s = time.perf_counter() - t0
            if s >= seconds and iters >= 3:
                break
    return iters * batch / s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model_run")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--json")
    a = ap.parse_args()
    cuda = a.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        sys.exit("check_cuda: torch sees no CUDA device")
    where = torch.cuda.get_device_name(torch.device(a.device)) if cuda else "CPU"
    print(f"torch {torch.__version__}, device {a.device} ({where}); cxr-model-run {a.model_run}")
    precisions = ["fp32", "fp16", "bf16"] if cuda else ["fp32"]
    failures, figures = [], {"device": a.device, "name": where, "torch": torch.__version__,
                             "parity": [], "throughput": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i, arch in enumerate(ARCHS):
            m = mc.torchvision_model(arch, 3, seed=40 + i)
            weights = os.path.join(tmp, f"{arch}.pth")
            torch.save(m.state_dict(), weights)
            torch.manual_seed(400 + i)
            x = torch.randn(8, 3, 224, 224)
            ref = tv_probs(m, x, "cpu", "fp32")
            top2 = np.sort(ref, 1)[:, -2:]
            clear = (top2[:, 1] - top2[:, 0]) >= 0.05
            for precision in precisions:
                opts = ["--weights", weights, "--device", a.device, "--precision", precision]
                if precision == "fp32":
                    set_tf32(False)
                    opts.append("--no-tf32")
                _, ours, _, _ = mc.run_cxx(arch, 3, x, tmp, *opts, exe=a.model_run)
                tv = tv_probs(m, x, a.device, precision)
                set_tf32(True)
                d_ref = float(np.abs(ours - ref).max())
                d_tv = float(np.abs(tv - ref).max())
                d_same = float(np.abs(ours - tv).max())
                agree = bool((ours.argmax(1) == ref.argmax(1))[clear].all())
                row = {"arch": arch, "precision": precision, "ours_vs_cpu_fp32": d_ref,
                       "torchvision_vs_cpu_fp32": d_tv, "ours_vs_torchvision": d_same, "classes_agree": agree}
                figures["parity"].append(row)
                print(f"parity {arch:20s} {precision}: max|dprob| ours-vs-cpu-fp32 {d_ref:.2e}, "
                      f"torchvision-{a.device}-vs-cpu-fp32 {d_tv:.2e}, ours-vs-torchvision {d_same:.2e}, "
                      f"classes agree {agree}")
                if precision == "fp32":
                    if not (d_ref <= 1e-4 and d_same <= 1e-4):
                        failures.append(f"{arch} fp32: probabilities differ by {max(d_ref, d_same):.2e} (> 1e-4)")
                elif not (d_ref <= 2 * d_tv + 1e-3 and agree):
                    failures.append(f"{arch} {precision}: error {d_ref:.2e} against torchvision's own {d_tv:.2e}, "
                                    f"classes agree {agree}")
            for precision in (["fp32", "fp16"] if cuda else ["fp32"]):
                for batch in [int(b) for b in a.batches.split(",")]:
                    xb = torch.randn(batch, 3, 224, 224)
                    out = []
                    mc.run_cxx(arch, 3, xb, tmp, "--weights", weights, "--device", a.device, "--precision",
                               precision, "--time", str(a.seconds), exe=a.model_run, stdout=out)
                    ours = float(out[0].split("rate ")[1].split()[0])
                    tv = tv_rate(m, a.device, precision, batch, a.seconds)
                    figures["throughput"].append({"arch": arch, "precision": precision, "batch": batch,
                                                  "ours": ours, "torchvision": tv})
                    print(f"rate   {arch:20s} {precision} b{batch:<3d}: gst-cxr {ours:9.1f} img/s, "
                          f"torchvision {tv:9.1f} img/s, ratio {ours / tv:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(figures, f, indent=1)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("check_cuda: parity OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
