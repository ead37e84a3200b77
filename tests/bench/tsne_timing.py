# SPDX-License-Identifier: LGPL-2.1-or-later
"""Time `cxr tsne` on a 50-dimensional Gaussian mixture (10 classes) at 2k and 20k points, and
optionally scikit-learn's TSNE on the same data. Not a test (no timed assertions): run by hand,

    /usr/bin/python3 tests/bench/tsne_timing.py [--cxr build/tools/cxr] [--sklearn] [--threads N]
        [--sizes 2000,20000]

Prints wall and CPU seconds per run (CPU seconds are the steadier number on a shared machine)
and trustworthiness (k = 10) where N <= 5000."""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def mixture(n, dim=50, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, 4.0, size=(classes, dim))
    labels = np.arange(n) % classes
    return centres[labels] + rng.normal(size=(n, dim)), labels


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cxr", default=os.path.join(os.environ.get("CXR_TOOLS", "build/tools"), "cxr"))
    ap.add_argument("--sklearn", action="store_true", help="also time sklearn.manifold.TSNE")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--sizes", default="2000,20000")
    args = ap.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            x, y = mixture(n)
            src = os.path.join(tmp, f"mix{n}.csv")
            np.savetxt(src, np.column_stack([x, y]), delimiter=",", fmt="%.6g",
                       header=",".join([f"f{i}" for i in range(x.shape[1])] + ["label"]), comments="")
            methods = ["exact", "barnes-hut"] if n <= 5000 else ["barnes-hut"]
            for method in methods:
                out = os.path.join(tmp, f"out{n}-{method}.csv")
                cmd = [args.cxr, "tsne", src, "--output", out, "--method", method, "--threads", str(args.threads)]
                if n <= 5000:
                    cmd += ["--trustworthiness", "10"]
                c0, t0 = children_cpu(), time.perf_counter()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                wall, cpu = time.perf_counter() - t0, children_cpu() - c0
                sys.stderr.write(proc.stderr)
                if proc.returncode:
                    raise SystemExit(f"{' '.join(cmd)}: exit {proc.returncode}")
                trust = next((l.split()[6] for l in proc.stderr.splitlines() if "trustworthiness" in l), "-")
                rows.append((f"cxr {method}", n, wall, cpu, trust))
            if args.sklearn:
                from sklearn.manifold import TSNE, trustworthiness
                for method in (["exact", "barnes_hut"] if n <= 5000 else ["barnes_hut"]):
                    c0, t0 = self_cpu(), time.perf_counter()
                    e = TSNE(perplexity=30, init="pca", learning_rate="auto", method=method,
                             random_state=0).fit_transform(x)
                    wall, cpu = time.perf_counter() - t0, self_cpu() - c0
                    trust = f"{trustworthiness(x, e, n_neighbors=10):.6f}" if n <= 5000 else "-"
                    rows.append((f"sklearn {method}", n, wall, cpu, trust))
    print(f"{'run':<22}{'N':>7}{'wall s':>9}{'cpu s':>9}  trustworthiness(10)")
    for name, n, wall, cpu, trust in rows:
        print(f"{name:<22}{n:>7}{wall:>9.2f}{cpu:>9.2f}  {trust}")


if __name__ == "__main__":
    main()
