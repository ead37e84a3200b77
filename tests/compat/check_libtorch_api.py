#!/usr/bin/env python3
# SPDX-License-Identifier: LGPL-2.1-or-later
"""Compiles every LibTorch-using source of the build against another LibTorch's headers.

Debian 12's LibTorch is 1.13 and CPU-only; users build gst-cxr for CUDA against a 2.x LibTorch
(meson -Dlibtorch_dir=...). This check keeps that build compiling without a GPU or a CUDA
toolkit: it takes each compile command of BUILD/compile_commands.json that uses LibTorch, puts
HEADERS/usr/include (the headers of Debian trixie's libtorch-cuda-dev, fetched by tools/setup.sh)
in place of the system LibTorch, and runs the compiler with -fsyntax-only. It fails when a file
does not compile, or when a file still reaches a header of the system LibTorch.

usage: check_libtorch_api.py BUILD HEADERS [--jobs N] [FILE-SUFFIX ...]
"""
import argparse
import concurrent.futures
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile

SYSTEM_API = "/usr/include/torch/csrc/api/include"
SYSTEM_HEADER = re.compile(r"(?:^|\s)/usr/include/(?:ATen|c10|torch|caffe2)/")


def torch_version(include):
    text = open(os.path.join(include, "torch/csrc/api/include/torch/version.h")).read()
    parts = [re.search(r"#define TORCH_VERSION_%s (\d+)" % k, text).group(1) for k in ("MAJOR", "MINOR", "PATCH")]
    return ".".join(parts)


def torch_outputs(build):
    """Objects whose sources reach a system LibTorch header, from ninja's dependency log; None
    when the log cannot be read (then every source with LibTorch's include path is checked)."""
    try:
        r = subprocess.run(["ninja", "-C", build, "-t", "deps"], capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    outputs, target = set(), None
    for line in r.stdout.splitlines():
        if line and not line[0].isspace():
            target = line.split(":")[0]
        elif target and SYSTEM_HEADER.search(line):
            outputs.add(target)
    return outputs or None


def checked_command(entry, include, depfile, std=None):
    """The entry's compiler call with the other LibTorch's headers (and language standard `std`,
    when given), no output but dependencies."""
    args = shlex.split(entry["command"]) if "command" in entry else list(entry["arguments"])
    out = [args[0], "-isystem", include, "-isystem", os.path.join(include, "torch/csrc/api/include")]
    i = 1
    while i < len(args):
        a = args[i]
        if a == "-isystem" and i + 1 < len(args) and args[i + 1] == SYSTEM_API:
            i += 2
            continue
        if a in ("-o", "-MQ", "-MF", "-MT"):
            i += 2
            continue
        if a in ("-c", "-MD", "-MMD"):
            i += 1
            continue
        if std and a.startswith("-std=") and not entry["file"].endswith(".c"):
            a = "-std=" + std
        out.append(a)
        i += 1
    return out + ["-fsyntax-only", "-fdiagnostics-color=never", "-MD", "-MF", depfile]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("headers")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--std", help="compile as this C++ standard (c++20: what LibTorch 2.12 and later need)")
    ap.add_argument("--all", action="store_true", help="every source of the build, not only LibTorch's users")
    ap.add_argument("only", nargs="*", help="check only sources whose path ends so")
    a = ap.parse_intermixed_args()

    include = os.path.join(os.path.abspath(a.headers), "usr", "include")
    if not os.path.isfile(os.path.join(include, "torch/csrc/api/include/torch/version.h")):
        sys.exit(f"check_libtorch_api: no LibTorch headers under {include}: tools/setup.sh fetches them "
                 "(Debian trixie's libtorch-cuda-dev) when tools/run-tests runs; see its messages")
    version = torch_version(include)
    entries = [e for e in json.load(open(os.path.join(a.build, "compile_commands.json")))
               if a.all or SYSTEM_API in e.get("command", " ".join(e.get("arguments", [])))]
    entries = [e for e in entries if not a.only or any(e["file"].endswith(o) for o in a.only)]
    # Sources that have LibTorch's include path but include none of it compile the same on any
    # LibTorch: leave them out when ninja can tell which they are.
    outputs = None if a.all else torch_outputs(a.build)
    if outputs is not None:
        entries = [e for e in entries if e.get("output") in outputs]
    if not entries:
        sys.exit("check_libtorch_api: no source in the build uses LibTorch (built without it?)")

    tmp = tempfile.mkdtemp(prefix="cxr-libtorch-api-")

    def check(k_entry):
        k, entry = k_entry
        depfile = os.path.join(tmp, f"{k}.d")
        r = subprocess.run(checked_command(entry, include, depfile, a.std), cwd=entry["directory"],
                           capture_output=True, text=True)
        problems = []
        if r.returncode != 0:
            errors = [l for l in r.stderr.splitlines() if "error" in l]
            problems.append("does not compile:\n    " + "\n    ".join(errors[:12] or r.stderr.splitlines()[-12:]))
        elif os.path.exists(depfile):
            leaked = sorted(set(m.strip() for m in re.findall(r"\S+", open(depfile).read())
                                if SYSTEM_HEADER.search(" " + m)))
            if leaked:
                problems.append(f"reaches {len(leaked)} header(s) of the system LibTorch, e.g. {leaked[0]}")
        else:
            problems.append("the compiler wrote no dependency list")
        return entry["file"], problems

    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max(1, a.jobs)) as pool:
        for name, problems in pool.map(check, enumerate(entries)):
            for p in problems:
                failed += 1
                print(f"FAIL {name}: {p}")
    std = f", {a.std}" if a.std else ""
    print(f"LibTorch {version} ({include}{std}): {len(entries)} sources checked, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
