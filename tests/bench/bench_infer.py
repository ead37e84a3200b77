# SPDX-License-Identifier: LGPL-2.1-or-later
"""Inference throughput: cxrinfer in a pipeline vs the raw LibTorch forward vs torchvision eager.

For each architecture, batch 1 and 8, 224 and 255 px, one thread and all threads: images/s of
  - torchvision eager (this interpreter, torch.inference_mode, eval),
  - our module's forward (bench-infer raw: folded BatchNorm, InferenceMode, + softmax; LibTorch's
    and OpenBLAS's threads set as cxrinfer's `threads` sets them, and the caching CPU allocator
    the Predictor installs), in NCHW, in channels-last and,
    for ResNet-34, on oneDNN tensors with pre-packed weights and in channels-last with the 3x3
    convolutions by Winograd F(2x2, 3x3) (cxrinfer's memory-format=auto times them at start and
    keeps the fastest; the overhead is against the fastest),
  - cxrinfer between appsrc (GRAY8 noise frames of the input size, made before the clock
    starts, so that a test source's own per-frame work is not counted against cxrinfer) and
    fakesink (bench-infer pipeline: from the first to the last batch leaving the element).
With all threads (more than one), also the throughput setting: cxrinfer streams=N threads=1 (N
batches side by side, one thread each) and, as its reference, N raw forwards side by side.
Then the resident memory while streaming 1000 scans. Goals: cxrinfer >= 1.2x torchvision eager
(with all threads: the faster of the two settings); pipeline overhead <= 10% of the faster raw
forward of the same setting; RSS flat (growth over the last 900 scans < 5%).
Both sides run the same OpenBLAS kernels: the ones gst-cxr picks at start (bench-infer blas),
given to torchvision through OPENBLAS_CORETYPE. Exits 1 when a goal is missed. Options: --quick (fewer configurations), --arch A (only A;
repeatable), --seconds S (per measurement), --rounds N: the measurements of a configuration run
N times, interleaved, and each keeps its best rate, so that a burst of load from elsewhere on a
shared machine does not land on one side of a comparison only.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time


def helper():
    exe = os.path.join(os.environ.get("CXR_BUILD_ROOT", "build"), "tests", "bench", "bench-infer")
    if not os.path.exists(exe):
        sys.exit(f"{exe} is missing (build with LibTorch)")
    return exe


def cxr_blas():
    """OpenBLAS's kernels in a gst-cxr process: (core, whether gst-cxr switched them, library)."""
    out = subprocess.run([helper(), "blas"], capture_output=True, text=True, check=True).stdout.split()
    return out[1], out[3] == "yes", " ".join(out[5:])


# torchvision runs on the kernels gst-cxr runs on, so that the ratio measures our work, not
# OpenBLAS's choice: on a CPU newer than OpenBLAS, gst-cxr replaces its generic kernels (see
# cxr/runtime/blas.hpp), and OpenBLAS reads OPENBLAS_CORETYPE once, when torch loads it. A choice
# already in the environment holds for both.
BLAS_CORE, BLAS_TUNED, BLAS_LIBRARY = cxr_blas()
if BLAS_TUNED and "OPENBLAS_CORETYPE" not in os.environ:
    os.environ["OPENBLAS_CORETYPE"] = BLAS_CORE

import torch  # noqa: E402  (after OPENBLAS_CORETYPE)
import torchvision  # noqa: E402

ARCHS = ["resnet34", "mobilenet_v3_large", "efficientnet_b1"]
# bench-infer raw's layouts, in the table's column order; the last two are ResNet-34's only.
LAYOUTS = ["contiguous", "channels-last", "onednn", "winograd"]
RESNET_ONLY = {"onednn", "winograd"}


def blas_in_python():
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            path = line.split()[-1] if "/" in line else ""
            if "blas" in path or "mkl" in path:
                libs.add(path)
    return ",".join(sorted(libs)) or "none"


def openblas_core_in_python():
    import ctypes
    for path in blas_in_python().split(","):
        try:
            lib = ctypes.CDLL(path)
            lib.openblas_get_corename.restype = ctypes.c_char_p
            return lib.openblas_get_corename().decode()
        except (OSError, AttributeError):
            continue
    return "-"


def torchvision_rate(arch, size, batch, threads, seconds):
    torch.set_num_threads(threads)
    m = getattr(torchvision.models, arch)(num_classes=3).eval()
    x = torch.randn(batch, 3, size, size)
    with torch.inference_mode():
        m(x)
        n, t0 = 0, time.perf_counter()
        while True:
            torch.softmax(m(x), 1)
            n += 1
            if time.perf_counter() - t0 >= seconds and n >= 3:
                break
        return n * batch / (time.perf_counter() - t0)


def run(*args):
    r = subprocess.run([helper(), *map(str, args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"bench-infer {' '.join(map(str, args))} failed: {r.stderr.strip()}")
    return r.stdout.split()


def write_card(tmp, arch, size):
    weights = os.path.join(tmp, f"{arch}.pth")
    if not os.path.exists(weights):
        torch.save(getattr(torchvision.models, arch)(num_classes=3).state_dict(), weights)
    card = os.path.join(tmp, f"{arch}-{size}.toml")
    with open(card, "w") as f:
        f.write(f'[model]\narchitecture = "{arch}"\ntask = "multiclass"\nclasses = ["a", "b", "c"]\n'
                f'weights = "{weights}"\n[input]\nsize = [{size}, {size}]\nmean = 0.5\nstd = 0.25\n')
    return card


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--arch", action="append", choices=ARCHS, help="only these architectures (repeatable)")
    opts = ap.parse_args()
    all_threads = os.cpu_count() or 1
    threads_list = sorted({1, all_threads})
    batches = [1, 8]
    sizes = [224, 255]
    archs = opts.arch or ARCHS
    if opts.quick:
        batches, sizes = [8], [224]
    alt = subprocess.run(["update-alternatives", "--display", "libblas.so.3-x86_64-linux-gnu"],
                         capture_output=True, text=True).stdout.splitlines()
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, {all_threads} CPU threads")
    print(f"libblas.so.3 alternative: {' / '.join(l.strip() for l in alt[:3])}")
    print(f"BLAS mapped in Python: {blas_in_python()}")
    print(f"OpenBLAS kernels: {BLAS_CORE} in bench-infer, {openblas_core_in_python()} in torchvision"
          + (" (gst-cxr chose them: OpenBLAS did not recognise this CPU)" if BLAS_TUNED else "")
          + f"; {BLAS_LIBRARY}")
    omp = {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))}
    print(f"OpenMP environment: {omp or 'none (libgomp defaults: spin, then sleep)'}")
    failures = []
    rows = []
    blas_threads = {}
    with tempfile.TemporaryDirectory() as tmp:
        for arch in archs:
            for size in sizes:
                card = write_card(tmp, arch, size)
                for batch in batches:
                    for threads in threads_list:
                        layouts = [l for l in LAYOUTS if arch == "resnet34" or l not in RESNET_ONLY]
                        tv = pipe = pipe_streams = 0.0
                        raw = dict.fromkeys(layouts, 0.0)
                        streams = threads if threads > 1 else 0  # the throughput setting: 1 thread each
                        raw_streams = dict.fromkeys(layouts, 0.0) if streams else {}
                        for _ in range(max(1, opts.rounds)):
                            tv = max(tv, torchvision_rate(arch, size, batch, threads, opts.seconds))
                            for layout in layouts:
                                out = run("raw", arch, size, batch, threads, opts.seconds, layout)
                                raw[layout] = max(raw[layout], float(out[1]))
                                blas_cxx = out[out.index("blas") + 1]
                                blas_threads[threads] = out[out.index("blas-threads") + 1]
                            best = max(raw.values())
                            frames = max(4 * batch, int(best * opts.seconds * 1.5) // batch * batch + batch)
                            pipe = max(pipe, float(run("pipeline", card, size, batch, threads, frames)[1]))
                            if streams:
                                for layout in layouts:
                                    out = run("raw", arch, size, batch, 1, opts.seconds, layout, streams)
                                    raw_streams[layout] = max(raw_streams[layout], float(out[1]))
                                frames = max(4 * batch * streams,
                                             int(max(raw_streams.values()) * opts.seconds * 1.5) // batch * batch + batch)
                                pipe_streams = max(pipe_streams, float(run("pipeline", card, size, batch, 1, frames,
                                                                           f"streams={streams}")[1]))
                        overhead = 1.0 - pipe / max(raw.values())  # cxrinfer times the layouts at start
                        overhead_streams = 1.0 - pipe_streams / max(raw_streams.values()) if streams else None
                        best = max(pipe, pipe_streams)
                        rows.append((arch, size, batch, threads, tv, raw, pipe, overhead, raw_streams, pipe_streams,
                                     overhead_streams, best / tv))
                        raws = "  ".join(f"raw {k} {v:7.2f}" for k, v in raw.items())
                        line = (f"{arch:20s} {size:3d}px batch {batch} threads {threads}: torchvision {tv:7.2f}  "
                                f"{raws}  cxrinfer {pipe:7.2f} img/s  overhead {100 * overhead:5.1f}%")
                        if streams:
                            line += (f"  | {streams} streams x 1 thread: raw {max(raw_streams.values()):7.2f}  "
                                     f"cxrinfer {pipe_streams:7.2f}  overhead {100 * overhead_streams:5.1f}%")
                        print(f"{line}  | cxrinfer/torchvision {best / tv:4.2f}", flush=True)
                        if best < 1.2 * tv:
                            failures.append(f"{arch} {size}px b{batch} t{threads}: cxrinfer {best:.2f} < 1.2 x "
                                            f"torchvision {tv:.2f}")
                        if overhead > 0.10:
                            failures.append(f"{arch} {size}px b{batch} t{threads}: pipeline overhead "
                                            f"{100 * overhead:.1f}% > 10%")
                        if streams and overhead_streams > 0.10:
                            failures.append(f"{arch} {size}px b{batch} {streams} streams x 1 thread: pipeline "
                                            f"overhead {100 * overhead_streams:.1f}% > 10%")
        print(f"BLAS mapped in bench-infer: {blas_cxx}; OpenBLAS threads there by threads setting: {blas_threads} "
              "(-1: not OpenBLAS); torchvision here sets torch.set_num_threads only, as a Python user does")
        print("\n| arch | px | batch | threads | torchvision img/s | raw NCHW | raw channels-last | raw oneDNN "
              "| raw Winograd | cxrinfer img/s | overhead | raw, N streams x 1 thread | cxrinfer streams=N threads=1 | overhead "
              "| best cxrinfer / torchvision |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for a, s, b, t, tv, raw, pipe, ov, raw_s, pipe_s, ov_s, ratio in rows:
            cells = " | ".join(f"{raw[k]:.2f}" if k in raw else "-" for k in LAYOUTS)
            st = (f"{max(raw_s.values()):.2f} | {pipe_s:.2f} | {100 * ov_s:.1f}%" if raw_s else "- | - | -")
            print(f"| {a} | {s} | {b} | {t} | {tv:.2f} | {cells} | {pipe:.2f} | {100 * ov:.1f}% | {st} | {ratio:.2f} |")

        card = write_card(tmp, "mobilenet_v3_large", 224)
        print()
        for props in ["", f"streams={all_threads} threads=1"] if all_threads > 1 else [""]:
            out = run("rss", card, 224, 8, 1000, *([props] if props else []))
            hwm = int(out[out.index("hwm") + 1])
            rss = [int(v) for v in out[1:out.index("hwm")]]
            print(f"RSS (MiB) every 100 scans, mobilenet_v3_large 224px batch 8 {props or '(defaults)'}: "
                  f"{' '.join(f'{v / 1024:.0f}' for v in rss)}; peak {hwm / 1024:.0f} MiB")
            if len(rss) < 10 or rss[-1] > rss[0] * 1.05:
                failures.append(f"RSS grows while streaming ({props or 'defaults'}): {rss[0]} -> {rss[-1]} kB")
    if failures:
        print("\nGoals missed:\n  " + "\n  ".join(failures))
        return 1
    print("\nAll goals met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
