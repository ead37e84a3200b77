# SPDX-License-Identifier: LGPL-2.1-or-later
"""Training side by side: cxrtrain in a gst-launch-1.0 pipeline vs the study's Python recipe
(tests/parity/reference_train.py) on the same split, seed, hyperparameters and augmentations.

Data: the 624-scan Kermany pneumonia test set under $CXR_SHARED_DATA/pneumonia (3 classes from
labels.csv: BACTERIA, NORMAL, VIRUS), split 0.7/0.15/0.15 stratified by cxrscansrc (seed 30);
the reference reads the same split from cxrscansrc's rows. mobilenet_v3_large from scratch at
64x64, Adam 0.01 -> 0.001 cosine, batch 32, seed 42, the study's normalisation (0.4810/0.2373).
Our pipeline decodes, equalizes, blurs, resizes and augments every scan in every epoch; the
reference preprocesses (equalize + blur) once, offline, as the study did, and only resizes and
augments per epoch. Both use the same number of threads.

Goals: |test macro F1 ours - Python| <= 0.05; seconds per epoch ours <= Python's. With a few
epochs on a few hundred scans the F1 is noisy: the goal is a sanity check of the recipe, not a
statistical test; seconds per epoch compare medians. Exits 1 when a goal is missed. Options:
--epochs, --threads, --arch, --size, --lr, --lr-end.

--kermany: the study file's data and pipeline instead (pipelines/study/train-pneumonia.toml run by
`cxr run` on data/kermany/index.csv: 4279 training scans of ../shared/data/pneumonia-train, 757
for validation, the official 624 for test; shorter side to --size, default 128), the reference
with DataLoader workers (--workers, default 1). Both sides print where each epoch's training
time went (data, forward, backward, optimizer); the F1 goal is left out (a few epochs say
nothing about it: docs/results.md compares full runs).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=int(os.environ.get("CXR_BENCH_EPOCHS", "5")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--arch", default="mobilenet_v3_large")
    ap.add_argument("--size", type=int, default=0, help="input size (default 64; 128 with --kermany)")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--lr-end", type=float, default=0.001)
    ap.add_argument("--kermany", action="store_true")
    ap.add_argument("--workers", type=int, default=1)
    a = ap.parse_args()
    a.size = a.size or (128 if a.kermany else 64)
    if a.kermany:
        sys.exit(kermany(a))
    data = os.path.join(os.environ.get("CXR_SHARED_DATA", os.path.join(HERE, "..", "..", "..", "shared", "data")),
                        "pneumonia")
    if not os.path.exists(os.path.join(data, "labels.csv")):
        sys.exit(f"{data}/labels.csv is missing")
    src = (f"cxrscansrc location={data} labels={data}/labels.csv label-column=label_3class "
           f"split=0.7,0.15,0.15 seed=30 shuffle=true")
    with tempfile.TemporaryDirectory() as tmp:
        split = os.path.join(tmp, "split.jsonl")
        subprocess.run(["gst-launch-1.0", "-q"] + f"{src} epochs=1 ! cxrresultsink location={split}".split(),
                       check=True)
        run = os.path.join(tmp, "run")
        pipeline = (f"{src} epochs={a.epochs} ! cxrdecode ! cxrequalize ! cxrblur ! cxrresize mode=stretch "
                    f"width={a.size} height={a.size} ! cxraugment seed=42 ! cxrtrain model={a.arch} output-dir={run} "
                    f"batch-size=32 learning-rate={a.lr} lr-end={a.lr_end} epochs={a.epochs} seed=42 threads={a.threads} "
                    f"mean=0.4810 std=0.2373")
        t = time.perf_counter()
        subprocess.run(["gst-launch-1.0", "-q"] + pipeline.split(), check=True)
        ours_wall = time.perf_counter() - t
        rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
        summary = json.load(open(os.path.join(run, "summary.json")))
        t = time.perf_counter()
        ref = json.loads(subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "parity", "reference_train.py"), split, "--arch", a.arch,
             "--size", str(a.size), "--epochs", str(a.epochs), "--threads", str(a.threads), "--lr", str(a.lr),
             "--lr-end", str(a.lr_end)],
            check=True, capture_output=True, text=True).stdout)
        ref_wall = time.perf_counter() - t

    # The median: the first epoch of either side may carry one-off costs (allocator, kernel
    # selection) and a busy machine adds outliers.
    ours_epoch = statistics.median(r["seconds"] for r in rows)
    ref_epoch = statistics.median(e["seconds"] for e in ref["epochs"])
    print(f"{a.arch} {a.size}px, {a.epochs} epochs, {a.threads} threads, "
          f"{summary['test']['n']} test scans")
    print(f"{'':22}{'gst-cxr':>12}{'Python':>12}")
    print(f"{'test macro F1':22}{summary['test']['f1']:12.3f}{ref['test']['f1']:12.3f}")
    print(f"{'test accuracy':22}{summary['test']['accuracy']:12.3f}{ref['test']['accuracy']:12.3f}")
    print(f"{'best epoch':22}{summary['best_epoch']:12d}{ref['best_epoch']:12d}")
    print(f"{'seconds / epoch (med)':22}{ours_epoch:12.2f}{ref_epoch:12.2f}")
    ours_list = " ".join(f"{r['seconds']:.1f}" for r in rows)
    ref_list = " ".join(f"{e['seconds']:.1f}" for e in ref["epochs"])
    print(f"each epoch (s): gst-cxr {ours_list} | Python {ref_list}")
    print(f"{'offline preprocessing':22}{0.0:12.2f}{ref['offline_seconds']:12.2f}")
    print(f"{'wall seconds':22}{ours_wall:12.1f}{ref_wall:12.1f}")
    print(f"confusion ours {summary['test']['confusion']} python {ref['test']['confusion']}")
    ok = True
    if abs(summary["test"]["f1"] - ref["test"]["f1"]) > 0.05:
        print("GOAL MISSED: test macro F1 differs by more than 0.05")
        ok = False
    if ours_epoch > ref_epoch:
        print("GOAL MISSED: slower per epoch than the Python recipe")
        ok = False
    sys.exit(0 if ok else 1)


def kermany(a):
    root = os.path.abspath(os.path.join(HERE, "..", ".."))
    shared = os.environ.get("CXR_SHARED_DATA", os.path.join(root, "..", "shared", "data"))
    size = a.size
    cxr = os.path.join(os.environ.get("CXR_TOOLS", os.path.join(root, "build", "tools")), "cxr")
    index = os.path.join(root, "data", "kermany", "index.csv")
    with tempfile.TemporaryDirectory() as tmp:
        split = os.path.join(tmp, "split.jsonl")
        subprocess.run(["gst-launch-1.0", "-q", "cxrscansrc", f"location={shared}", f"labels={index}",
                        "label-column=label", "split=0.85,0.15", "seed=30", "epochs=1", "!", "cxrresultsink",
                        f"location={split}"], check=True)
        run = os.path.join(tmp, "run")
        sets = {"data": shared, "labels": index, "label-column": "label", "split": "0.85,0.15", "size": size,
                "epochs": a.epochs, "architecture": a.arch, "device": "cpu", "threads": a.threads, "output": run,
                "learning-rate": a.lr, "resume": "false"}
        cmd = [cxr, "run", os.path.join(root, "pipelines", "study", "train-pneumonia.toml"), "--no-progress"]
        for k, v in sets.items():
            cmd += ["--set", f"{k}={v}"]
        subprocess.run(cmd, check=True, capture_output=True)
        rows = [json.loads(line) for line in open(os.path.join(run, "metrics.jsonl"))]
        ref = json.loads(subprocess.run(
            [sys.executable, os.path.join(HERE, "..", "parity", "reference_train.py"), split, "--arch", a.arch,
             "--size", str(size), "--resize", "shorter", "--epochs", str(a.epochs), "--threads", str(a.threads),
             "--workers", str(a.workers), "--lr", str(a.lr), "--lr-end", str(a.lr_end)],
            check=True, capture_output=True, text=True).stdout)
    ours = statistics.median(r["seconds"] for r in rows)
    theirs = statistics.median(e["seconds"] for e in ref["epochs"])
    print(f"{a.arch} {size}px, {a.epochs} epochs, {a.threads} threads; reference DataLoader workers {a.workers}")
    print(f"{'seconds / epoch (median)':28}{'gst-cxr':>10}{'PyTorch':>10}")
    print(f"{'whole epoch (train + val)':28}{ours:10.1f}{theirs:10.1f}")
    print(f"{'train phase':28}{statistics.median(r['train_seconds'] for r in rows):10.1f}"
          f"{statistics.median(e['train_seconds'] for e in ref['epochs']):10.1f}")
    prof = {k: statistics.median(r["train_profile"][k] for r in rows)
            for k in ("input", "forward", "backward", "optimizer", "waiting")}
    rprof = {k: statistics.median(e["split_seconds"][k] for e in ref["epochs"])
             for k in ("data", "forward", "backward", "optimizer")}
    print(f"{'  data (waiting + input)':28}{prof['waiting'] + prof['input']:10.1f}{rprof['data']:10.1f}")
    for k in ("forward", "backward", "optimizer"):
        print(f"{'  ' + k:28}{prof[k]:10.1f}{rprof[k]:10.1f}")
    ours_list = " ".join(f"{r['seconds']:.1f}" for r in rows)
    ref_list = " ".join(f"{e['seconds']:.1f}" for e in ref["epochs"])
    print(f"each epoch (s): gst-cxr {ours_list} | PyTorch {ref_list}")
    print(f"PyTorch / gst-cxr seconds per epoch: {theirs / ours:.2f}")
    if ours > theirs:
        print("GOAL MISSED: slower per epoch than the PyTorch recipe")
        return 1
    return 0


if __name__ == "__main__":
    main()
