# SPDX-License-Identifier: LGPL-2.1-or-later
"""CPU inference against ONNX Runtime on the same machine, in the same run.

For each architecture (3 classes, 224 px), batch 1 and 8, images/s of
  - ONNX Runtime 1.30 (onnxruntime-node, CPU execution provider, graph optimisation 'all', one
    intra-op thread, sequential) on the network exported by this interpreter's torch
    (torch.onnx.export, opset 14, dynamic batch),
  - LibTorch: the Predictor on the LibTorch engine in each of the layouts memory-format=auto
    chooses from (bench-infer predictor ... libtorch), the fastest counted,
  - XNNPACK: the Predictor on the XNNPACK engine (bench-infer predictor ... xnnpack),
  - cxrinfer (engine auto) between appsrc and fakesink, one thread (bench-infer pipeline).
All from one state dict: torchvision's random initialisation with the BatchNorm statistics
calibrated on noise first (else the activations shrink layer by layer to ~1e-10 logits, where
denormal floats make every side slow and parity checks prove nothing). ONNX Runtime's logits on
the benchmark input are compared with torchvision's before timing.
With more than one CPU, also the throughput setting with two threads: cxrinfer streams=2
threads=1 against ONNX Runtime with two intra-op threads.

The measurements of a configuration run in interleaved rounds (--rounds, default 3), each
keeping its best rate, so that load from elsewhere does not land on one side only. Goals:
cxrinfer >= ONNX Runtime for every network and batch, one thread and the two-thread setting;
pipeline overhead <= 10 % of the raw forward of the engine cxrinfer runs (the faster of the two).
Exits 1 when one is missed.

onnxruntime-node comes from npm (not needed by any test): --ort-dir (default $CXR_ORT_DIR, else
$XDG_CACHE_HOME/gst-cxr/ort) holds node_modules/onnxruntime-node, installed there on first use
with `ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0` (the CPU library ships
inside the package). Options: --arch A (repeatable), --seconds S per measurement, --rounds N,
--no-threads (one thread only).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torchvision

ARCHS = ["resnet34", "mobilenet_v3_large", "efficientnet_b1"]
# The LibTorch layouts memory-format=auto times (cxr/models/predictor.hpp).
LIBTORCH_LAYOUTS = {"resnet34": ["onednn", "winograd", "channels-last"],
                    "mobilenet_v3_large": ["channels-last", "contiguous"],
                    "efficientnet_b1": ["channels-last", "contiguous"]}
ORT_VERSION = "1.30.0"
SIZE = 224
HERE = os.path.dirname(os.path.abspath(__file__))


def helper():
    root = os.environ.get("CXR_BUILD_ROOT", "build")
    exe = os.path.join(root, "tests", "bench", "bench-infer")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing (build with LibTorch)")
    # Run by hand (not through meson test --benchmark): the pipeline needs the build's plugins.
    os.environ.setdefault("GST_PLUGIN_PATH_1_0", os.path.abspath(os.path.join(root, "plugins")))
    return exe


def ort_dir(arg):
    d = arg or os.environ.get("CXR_ORT_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "gst-cxr", "ort")
    if not os.path.isdir(os.path.join(d, "node_modules", "onnxruntime-node")):
        os.makedirs(d, exist_ok=True)
        print(f"installing onnxruntime-node {ORT_VERSION} into {d}", flush=True)
        env = dict(os.environ, ONNXRUNTIME_NODE_INSTALL="skip")
        subprocess.run(["npm", "install", "--prefix", d, "--no-audit", "--no-fund", f"onnxruntime-node@{ORT_VERSION}"],
                       check=True, env=env)
    return d


def calibrated(arch, seed):
    """torchvision's initialisation with BatchNorm statistics measured on noise (cumulative)."""
    torch.manual_seed(seed)
    m = getattr(torchvision.models, arch)(num_classes=3)
    for mod in m.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            mod.momentum = None
            mod.reset_running_stats()
    m.train()
    with torch.no_grad():
        for _ in range(4):
            m(torch.randn(8, 3, SIZE, SIZE))
    return m.eval()


def prepare(tmp, arch, seed):
    m = calibrated(arch, seed)
    weights = os.path.join(tmp, f"{arch}.pth")
    torch.save(m.state_dict(), weights)
    card = os.path.join(tmp, f"{arch}.toml")
    with open(card, "w") as f:
        f.write(f'[model]\narchitecture = "{arch}"\ntask = "multiclass"\nclasses = ["a", "b", "c"]\n'
                f'weights = "{weights}"\n[input]\nsize = [{SIZE}, {SIZE}]\nmean = 0.5\nstd = 0.25\n')
    onnx = os.path.join(tmp, f"{arch}.onnx")
    torch.onnx.export(m, torch.randn(1, 3, SIZE, SIZE), onnx, opset_version=14, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    return m, card, onnx


def ort_rate(ort, onnx, x_path, batch, threads, seconds, out_path):
    r = subprocess.run(["node", os.path.join(HERE, "ort_rate.js"), ort, onnx, x_path, str(batch), str(SIZE),
                        str(threads), str(seconds), out_path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"ort_rate.js failed: {r.stderr.strip()}")
    return float(r.stdout.split()[1])


def cxr(*args):
    r = subprocess.run([helper(), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench-infer {' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r.stdout.split()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", action="append", choices=ARCHS)
    ap.add_argument("--seconds", type=float, default=1.5)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--ort-dir")
    ap.add_argument("--no-threads", action="store_true", help="one thread only")
    opts = ap.parse_args()
    ort = ort_dir(opts.ort_dir)
    two = (os.cpu_count() or 1) > 1 and not opts.no_threads
    print(f"torch {torch.__version__}, onnxruntime-node {ORT_VERSION}, {os.cpu_count()} CPU threads, {SIZE} px")
    rows, failures = [], []
    with tempfile.TemporaryDirectory() as tmp:
        x = np.random.default_rng(0).standard_normal((8, 3, SIZE, SIZE)).astype(np.float32)
        x_path = os.path.join(tmp, "x.f32")
        x.tofile(x_path)
        for i, arch in enumerate(opts.arch or ARCHS):
            m, card, onnx = prepare(tmp, arch, seed=40 + i)
            with torch.no_grad():
                ref = m(torch.from_numpy(x)).numpy()
            out_path = os.path.join(tmp, "ort-out.f32")
            ort_rate(ort, onnx, x_path, 8, 1, 0.0, out_path)
            d = float(np.abs(np.fromfile(out_path, dtype=np.float32).reshape(8, 3) - ref).max())
            print(f"{arch}: ONNX Runtime vs torchvision logits max|d| = {d:.2e} (logits {ref.min():.2f}..{ref.max():.2f})",
                  flush=True)
            for batch in (1, 8):
                best = {"ort": 0.0, "libtorch": 0.0, "xnnpack": 0.0, "cxrinfer": 0.0, "ort2": 0.0, "cxrinfer2": 0.0}
                layout = {}
                # cxrinfer's memory-format=auto times its candidates on a stream's first batches and
                # remembers the winner for this card, batch and CPU (the layout cache): one untimed
                # stream long enough to settle it comes first, as a user's first stream would.
                cxr("pipeline", card, SIZE, batch, 1, 16 * batch)
                if two:
                    cxr("pipeline", card, SIZE, batch, 1, 32 * batch, "streams=2")
                for _ in range(max(1, opts.rounds)):
                    best["ort"] = max(best["ort"], ort_rate(ort, onnx, x_path, batch, 1, opts.seconds, out_path))
                    for lay in LIBTORCH_LAYOUTS[arch]:
                        r = float(cxr("predictor", card, batch, 1, opts.seconds, lay, "libtorch")[1])
                        if r > best["libtorch"]:
                            best["libtorch"], layout["libtorch"] = r, lay
                    best["xnnpack"] = max(best["xnnpack"],
                                          float(cxr("predictor", card, batch, 1, opts.seconds, "auto", "xnnpack")[1]))
                    frames = max(4 * batch, int(best["xnnpack"] * opts.seconds * 1.5) // batch * batch + batch)
                    best["cxrinfer"] = max(best["cxrinfer"], float(cxr("pipeline", card, SIZE, batch, 1, frames)[1]))
                    if two:
                        best["ort2"] = max(best["ort2"], ort_rate(ort, onnx, x_path, batch, 2, opts.seconds, out_path))
                        frames = max(8 * batch, int(2 * best["xnnpack"] * opts.seconds * 1.5) // batch * batch + batch)
                        best["cxrinfer2"] = max(best["cxrinfer2"], float(
                            cxr("pipeline", card, SIZE, batch, 1, frames, "streams=2")[1]))
                # Against the raw forward of the engine that engine=auto runs (the faster one).
                overhead = 1.0 - best["cxrinfer"] / max(best["xnnpack"], best["libtorch"])
                rows.append((arch, batch, best, layout.get("libtorch", "-"), overhead))
                print(f"{arch:20s} batch {batch}: ORT {best['ort']:7.2f}  LibTorch {best['libtorch']:7.2f} "
                      f"({layout.get('libtorch')})  XNNPACK {best['xnnpack']:7.2f}  cxrinfer {best['cxrinfer']:7.2f} img/s"
                      f"  cxrinfer/ORT {best['cxrinfer'] / best['ort']:4.2f}  overhead {100 * overhead:4.1f}%"
                      + (f"  | 2 threads: ORT {best['ort2']:7.2f}  cxrinfer streams=2 {best['cxrinfer2']:7.2f}"
                         f"  ratio {best['cxrinfer2'] / best['ort2']:4.2f}" if two else ""), flush=True)
                if best["cxrinfer"] < best["ort"]:
                    failures.append(f"{arch} b{batch}: cxrinfer {best['cxrinfer']:.2f} < ONNX Runtime {best['ort']:.2f}")
                if overhead > 0.10:
                    failures.append(f"{arch} b{batch}: pipeline overhead {100 * overhead:.1f}% > 10%")
                if two and best["cxrinfer2"] < best["ort2"]:
                    failures.append(f"{arch} b{batch} 2 threads: cxrinfer streams=2 {best['cxrinfer2']:.2f} < "
                                    f"ONNX Runtime {best['ort2']:.2f}")
    print("\n| network | batch | ONNX Runtime img/s | LibTorch (layout) | XNNPACK engine | cxrinfer | XNNPACK / ORT "
          "| cxrinfer / ORT | XNNPACK / LibTorch | overhead |" + (" ORT 2 threads | cxrinfer streams=2 | ratio |" if two else ""))
    print("|---|---|---|---|---|---|---|---|---|---|" + ("---|---|---|" if two else ""))
    for arch, batch, b, lay, ov in rows:
        line = (f"| {arch} | {batch} | {b['ort']:.1f} | {b['libtorch']:.1f} ({lay}) | {b['xnnpack']:.1f} | "
                f"{b['cxrinfer']:.1f} | {b['xnnpack'] / b['ort']:.2f} | {b['cxrinfer'] / b['ort']:.2f} | "
                f"{b['xnnpack'] / b['libtorch']:.2f} | {100 * ov:.1f}% |")
        if two:
            line += f" {b['ort2']:.1f} | {b['cxrinfer2']:.1f} | {b['cxrinfer2'] / b['ort2']:.2f} |"
        print(line)
    if failures:
        print("\nGoals missed:\n  " + "\n  ".join(failures))
        return 1
    print("\nAll goals met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
