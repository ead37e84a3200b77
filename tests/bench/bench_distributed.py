#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Data-parallel training on one host: seconds per epoch of 1 process x T threads against
N ranks (`cxr run --nproc N`) x T/N threads, the same global batch, and the time the ranks spend
averaging gradients (train_profile.allreduce in metrics.jsonl) per step.

Scans: the first --scans rows of the Kermany training split (../shared/data/pneumonia-train),
classes interleaved, all in the train split (no validation phase), equalize + blur, stretched to
--size px, no augmentation. Sides run interleaved, --rounds times. On one host the point is the
overhead, not a speed-up: both sides share the same cores.

usage: bench_distributed.py [--scans 640] [--size 128] [--arch mobilenet_v3_large,resnet34]
                            [--threads 2] [--nproc 2] [--batch 32] [--rounds 1]
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CXR = os.environ.get("CXR_TOOLS", os.path.join(ROOT, "build", "tools")) + "/cxr"
DATA = os.environ.get("CXR_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data"))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import train_pipeline  # noqa: E402



def pipeline(data, index, size):
    return train_pipeline.training_pipeline(
        "data-parallel training benchmark",
        variables={"output": "out", "arch": "mobilenet_v3_large", "batch": 32, "threads": 2},
        scansrc={"location": data, "labels": index, "label-column": "label_3class", "seed": 30, "epochs": 1,
                 "shuffle": True},
        train={"model": "${arch}", "output-dir": "${output}", "batch-size": "${batch}", "learning-rate": 0.001,
               "epochs": 1, "mean": 0.481, "std": 0.2373, "seed": 42, "threads": "${threads}"},
        size=size, queue={"max-size-buffers": 64})


def index(tmp, scans):
    src = os.path.join(DATA, "pneumonia-train", "labels.csv")
    by_class = {}
    for row in csv.DictReader(open(src)):
        by_class.setdefault(row["label_3class"], []).append(row)
    rows, i = [], 0
    while len(rows) < scans and any(i < len(v) for v in by_class.values()):
        for v in by_class.values():
            if i < len(v) and len(rows) < scans:
                rows.append(v[i])
        i += 1
    path = os.path.join(tmp, "index.csv")
    with open(path, "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["path", "label_3class", "split"])
        for r in rows:
            w.writerow([r["path"], r["label_3class"], "train"])
    return path, len(rows)


def run(toml, out, arch, batch, threads, nproc):
    cmd = [CXR, "run", toml, "-q", "--set", f"output={out}", "--set", f"arch={arch}", "--set", f"batch={batch}",
           "--set", f"threads={threads}"]
    if nproc > 1:
        cmd += ["--nproc", str(nproc)]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stderr}")
    row = json.loads(open(os.path.join(out, "metrics.jsonl")).readline())
    return wall, row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scans", type=int, default=640)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--arch", default="mobilenet_v3_large,resnet34")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--batch", type=int, default=32, help="global batch")
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        idx, n = index(tmp, a.scans)
        toml = os.path.join(tmp, "bench.toml")
        with open(toml, "w") as f:
            f.write(pipeline(os.path.join(DATA, "pneumonia-train"), idx, a.size))
        print(f"{n} scans of pneumonia-train at {a.size} px, global batch {a.batch}; "
              f"1 process x {a.threads} threads against {a.nproc} ranks x {a.threads // a.nproc} threads")
        print("| network | side | train s (epoch of these scans) | s per 5036-scan epoch | allreduce s per step | wall s |")
        print("|---|---|---|---|---|---|")
        for arch in a.arch.split(","):
            for k in range(a.rounds):
                sides = [("1 x %d threads" % a.threads, 1, a.threads, a.batch),
                         ("%d ranks x %d" % (a.nproc, a.threads // a.nproc), a.nproc, a.threads // a.nproc,
                          a.batch // a.nproc)]
                if k % 2:
                    sides.reverse()
                for name, nproc, threads, batch in sides:
                    out = os.path.join(tmp, f"{arch}-{nproc}-{k}")
                    wall, row = run(toml, out, arch, batch, threads, nproc)
                    train = row["train_seconds"]
                    steps = math.ceil(math.ceil(n / nproc) / batch)
                    ar = row["train_profile"].get("allreduce", 0.0) / steps
                    print(f"| {arch} | {name} | {train:.1f} | {train * 5036 / n:.0f} | {ar:.3f} | {wall:.1f} |",
                          flush=True)


if __name__ == "__main__":
    main()
