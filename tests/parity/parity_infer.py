# SPDX-License-Identifier: LGPL-2.1-or-later
"""cxrinfer in a gst-launch-1.0 pipeline against torchvision eager on the identical grey pixels.

Real sample scans become grey PNGs, decoded by pngdec, classified by cxrinfer; the probabilities
of its cxr-result messages are compared with torchvision's on the same PNGs loaded as the study
did (PIL, RGB replication, Resize((h, w)), ToTensor, Normalize). Most cases keep the scans'
native sizes (224 to 1024 px), so the element's Pillow-exact scaling is compared too; 16-bit
PNGs (already of the input size: Pillow cannot resize them as torchvision would) check the
/ 65535 path. Every case runs with memory-format=auto; the first ResNet-34 and MobileNetV3 cases
also with each explicit memory format (NCHW, channels-last, and ResNet-34's oneDNN and Winograd
paths), and every case with streams=3 (three batches side by side, results still in scan order).
Every case also runs on each engine (engine=libtorch, engine=xnnpack) at batch-size 1 and 8 over
11 scans (one full batch of 8, then a ragged one of 3); the XNNPACK engine must come within 1e-5.
The 8-bit cases also run the same network saved with torch.jit.save(torch.jit.script(m)), from a
card with architecture = "torchscript". Max abs difference of probabilities <= 1e-4.

TorchScript exported by PyTorch 2.6 (fixtures/, see make_torchscript_2x.py), scripted and traced:
this LibTorch gives the logits PyTorch 2.6 gave on the fixture's input (<= 1e-4 relative), and
cxrinfer, from a torchscript card, the probabilities torch computes on the PNGs (<= 1e-4)."""
import glob
import os
import re
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_common as mc  # noqa: E402

TOL = 1e-4
ENGINE_TOL = {"libtorch": 1e-4, "xnnpack": 1e-5}
ENGINE_SCANS = 11  # batch 8: one full batch and a ragged one
CASES = [  # arch, task, classes, (height, width), mean, std, bits (16: PNGs of the input size)
    ("resnet34", "multiclass", ["normal", "bacterial", "viral"], (256, 256), [0.4810], [0.2373], 8),
    ("mobilenet_v3_large", "multilabel", ["Atelectasis", "Consolidation", "Effusion", "Mass", "Nodule",
                                          "Pneumothorax", "No Finding"], (232, 232), [0.4955], [0.2892], 8),
    ("efficientnet_b1", "multiclass", ["normal", "covid", "viral"], (255, 231), [0.485, 0.456, 0.406],
     [0.229, 0.224, 0.225], 8),
    ("efficientnet_b1", "multiclass", ["normal", "covid", "viral"], (255, 255), [0.5], [0.25], 16),
]
# Explicit memory formats, by index in CASES (auto runs for every case).
MEMORY_FORMATS = {0: ["contiguous", "channels-last", "onednn", "winograd"], 1: ["contiguous", "channels-last"]}
# Cases also run from a TorchScript file (torch.jit.script of the same network).
TORCHSCRIPT = {0, 1, 2}
FLOATS = re.compile(r"probabilities=\(double\)< ([^>]*) >")


def sources(pneumonia=2):
    root = os.environ.get("CXR_SAMPLES", os.path.join(os.path.dirname(__file__), "..", "..", "data", "samples"))
    files = sorted(glob.glob(os.path.join(root, "covid", "*.png")))[:3]
    files += sorted(glob.glob(os.path.join(root, "pneumonia", "*", "*.jpeg")))[:pneumonia]
    files += sorted(glob.glob(os.path.join(root, "nih", "*.png")))[:2]
    if len(files) < 3 + pneumonia:
        sys.exit(f"sample scans missing under {root}")
    return files


def write_pngs(tmp, files, size, bits):
    h, w = size
    out = []
    for i, f in enumerate(files):
        grey = Image.open(f).convert("L")
        path = os.path.join(tmp, f"scan{i:03d}.png")
        if bits == 16:
            grey = grey.resize((w, h), Image.BILINEAR)
            # Spread to 16 bits with low-order detail, so that / 65535 differs from / 255.
            a = np.asarray(grey, dtype=np.uint16) * 257 + (np.arange(h * w, dtype=np.uint16).reshape(h, w) % 97)
            Image.fromarray(a.astype(np.uint16)).save(path)
        else:
            grey.save(path)
        out.append(path)
    return out


def reference_input(path, size, mean, std, bits):
    img = Image.open(path)
    if bits == 16:
        a = np.asarray(img, dtype=np.float32) / np.float32(65535.0)
        t = torch.from_numpy(a)[None].repeat(3, 1, 1)
        return transforms.Normalize(mean * (3 if len(mean) == 1 else 1), std * (3 if len(std) == 1 else 1))(t)
    rgb = img.convert("RGB")  # as ImageFolder's loader
    t = transforms.ToTensor()(transforms.Resize(size)(rgb))
    return transforms.Normalize(mean * (3 if len(mean) == 1 else 1), std * (3 if len(std) == 1 else 1))(t)


def write_card(path, arch, task, classes, size, mean, std, weights):
    q = ", ".join(f'"{c}"' for c in classes)
    with open(path, "w") as f:
        f.write(f'[model]\narchitecture = "{arch}"\ntask = "{task}"\nclasses = [{q}]\nweights = "{weights}"\n')
        if task == "multilabel":
            f.write("thresholds = 0.4\n")
        f.write(f"[input]\nsize = [{size[0]}, {size[1]}]\nchannels = 3\nmean = {mean}\nstd = {std}\n")


def run_pipeline(tmp, card, bits, n, props, batch=3):
    fmt = "GRAY16_LE" if bits == 16 else "GRAY8"
    cmd = ["gst-launch-1.0", "-m", "multifilesrc", f"location={tmp}/scan%03d.png", "caps=image/png", "!", "pngdec",
           "!", "videoconvert", "!", f"video/x-raw,format={fmt}", "!", "cxrinfer", f"model={card}", f"batch-size={batch}",
           *props.split(), "!", "fakesink"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"pipeline failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    probs = [np.array([float(x) for x in m.group(1).split(",")]) for m in FLOATS.finditer(r.stdout)]
    if len(probs) != n:
        raise RuntimeError(f"{len(probs)} cxr-result messages for {n} scans:\n{r.stdout[-3000:]}")
    return np.stack(probs)


def torchscript_2x(files, failures):
    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    io = np.load(os.path.join(fixtures, "torchscript-2.6.0-io.npz"))
    classes, size, mean, std = ["normal", "bacterial", "viral"], (64, 64), [0.4810], [0.2373]
    for kind in ("script", "trace"):
        path = os.path.join(fixtures, f"torchscript-2.6.0-{kind}.pt")
        m = torch.jit.load(path).eval()
        with torch.no_grad():
            logits = m(torch.from_numpy(io["x"])).numpy()
        d = float(np.abs(logits - io[kind]).max())
        scale = max(1.0, float(np.abs(io[kind]).max()))
        print(f"TorchScript 2.6 {kind:6s}: LibTorch {torch.__version__} vs PyTorch 2.6 logits max|d|={d:.3e} "
              f"(range {scale:.2f})")
        if not d <= 1e-4 * scale:
            failures.append(f"TorchScript 2.6 {kind}: logits differ from PyTorch 2.6's by {d}")
        with tempfile.TemporaryDirectory() as tmp:
            card = os.path.join(tmp, "card.toml")
            write_card(card, "torchscript", "multiclass", classes, size, mean, std, path)
            pngs = write_pngs(tmp, files, size, 8)
            x = torch.stack([reference_input(p, size, mean, std, 8) for p in pngs])
            with torch.no_grad():
                ref = torch.softmax(m(x), 1).numpy()
            got = run_pipeline(tmp, card, 8, len(pngs), "")
            d = float(np.abs(got - ref).max())
            print(f"TorchScript 2.6 {kind:6s}: cxrinfer {len(pngs)} scans max|dprob|={d:.3e} "
                  f"(prob range {ref.min():.3f}..{ref.max():.3f})")
            if not d <= TOL:
                failures.append(f"TorchScript 2.6 {kind} in cxrinfer: probabilities differ by {d}")


def engines(m, i, case, tmp, files, failures):
    """The case on each engine at batch-size 1 and 8 over ENGINE_SCANS scans."""
    arch, task, classes, size, mean, std, bits = case
    folder = os.path.join(tmp, "engines")
    os.makedirs(folder)
    pngs = write_pngs(folder, files, size, bits)
    x = torch.stack([reference_input(p, size, mean, std, bits) for p in pngs])
    with torch.no_grad():
        logits = m(x)
    ref = (torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)).numpy()
    card = os.path.join(tmp, "card.toml")
    for engine, tol in ENGINE_TOL.items():
        for batch in (1, 8):
            got = run_pipeline(folder, card, bits, len(pngs), f"engine={engine}", batch=batch)
            d = float(np.abs(got - ref).max())
            label = f"engine={engine} batch-size={batch}"
            print(f"{arch:20s} {task:10s} {size[0]}x{size[1]} {bits:2d}-bit {label:31s} {len(pngs)} scans: "
                  f"max|dprob|={d:.3e} (tolerance {tol:.0e}, prob range {ref.min():.3f}..{ref.max():.3f})")
            if not d <= tol:
                failures.append(f"{arch} {bits}-bit {label}: probabilities differ by {d} > {tol}")


def main():
    torch.set_num_threads(2)
    files = sources()
    engine_files = sources(pneumonia=ENGINE_SCANS - 5)
    failures = []
    torchscript_2x(files, failures)
    for i, (arch, task, classes, size, mean, std, bits) in enumerate(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            m = mc.torchvision_model(arch, len(classes), seed=300 + i)
            torch.save(m.state_dict(), os.path.join(tmp, "weights.pth"))
            card = os.path.join(tmp, "card.toml")
            write_card(card, arch, task, classes, size, mean, std, "weights.pth")
            pngs = write_pngs(tmp, files, size, bits)
            x = torch.stack([reference_input(p, size, mean, std, bits) for p in pngs])
            with torch.no_grad():
                logits = m(x)
            ref = (torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)).numpy()
            # Every memory format asked for, and batches side by side on three streams: results
            # in the order of the scans either way.
            settings = [f"memory-format={f}" for f in ["auto"] + MEMORY_FORMATS.get(i, [])] + ["streams=3 threads=1"]
            runs = [(card, props, props) for props in settings]  # card, label, cxrinfer properties
            if i in TORCHSCRIPT:
                # The same network as a torch.jit.save file: a card with architecture = "torchscript".
                torch.jit.save(torch.jit.script(m), os.path.join(tmp, "model.pt"))
                ts_card = os.path.join(tmp, "ts.toml")
                write_card(ts_card, "torchscript", task, classes, size, mean, std, "model.pt")
                runs += [(ts_card, f"TorchScript {props}", props) for props in ["", "streams=3 threads=1"]]
            for run_card, label, props in runs:
                got = run_pipeline(tmp, run_card, bits, len(pngs), props)
                d = float(np.abs(got - ref).max())
                agree = float((got.argmax(1) == ref.argmax(1)).mean())
                print(f"{arch:20s} {task:10s} {size[0]}x{size[1]} {bits:2d}-bit {label:31s} {len(pngs)} scans: "
                      f"max|dprob|={d:.3e} argmax agreement {agree:.2f} (prob range {ref.min():.3f}..{ref.max():.3f})")
                if not d <= TOL:
                    failures.append(f"{arch} {bits}-bit {label}: probabilities differ by {d}")
            engines(m, i, CASES[i], tmp, engine_files, failures)
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    print("parity_infer: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
