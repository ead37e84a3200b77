#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# Builds cxr-model-run on its own: gst-cxr's networks (lib/cxr/models and lib/cxr/runtime, no
# OpenCV, GStreamer or DCMTK) and the parity / timing driver, against any LibTorch. For a GPU
# machine that has a CUDA PyTorch but not the rest of gst-cxr's dependencies;
# tests/gpu/check_cuda.py runs it.
#
#   tests/gpu/build-model-run.sh OUTDIR [LIBTORCH_DIR]
#
# LIBTORCH_DIR (holding include/ and lib/) defaults to the folder of python3's torch.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
out="${1:?usage: build-model-run.sh OUTDIR [LIBTORCH_DIR]}"
py="${PYTHON:-python3}"
if [ $# -ge 2 ]; then
  torch_dir="$2"
  abi=1
else
  torch_dir="$("$py" -c 'import os, torch; print(os.path.dirname(torch.__file__))')"
  abi="$("$py" -c 'import torch; print(int(torch._C._GLIBCXX_USE_CXX11_ABI))')"
fi
version_h="$torch_dir/include/torch/csrc/api/include/torch/version.h"
[ -f "$version_h" ] || { echo "build-model-run: no LibTorch headers in $torch_dir/include" >&2; exit 1; }
major="$(awk '/#define TORCH_VERSION_MAJOR/{print $3}' "$version_h")"
minor="$(awk '/#define TORCH_VERSION_MINOR/{print $3}' "$version_h")"
std=c++17
if [ "$major" -gt 2 ] || { [ "$major" -eq 2 ] && [ "$minor" -ge 12 ]; }; then std=c++20; fi
libs=(-ltorch -ltorch_cpu -lc10)
for l in torch_cuda c10_cuda; do [ -e "$torch_dir/lib/lib$l.so" ] && libs+=("-l$l"); done

mkdir -p "$out/obj"
flags=(-O2 -std="$std" -fPIC -pthread -D_GLIBCXX_USE_CXX11_ABI="$abi" -I"$root/lib"
       -isystem "$torch_dir/include" -isystem "$torch_dir/include/torch/csrc/api/include")
sources=("$root"/lib/cxr/models/{classifier,resnet,mobilenet_v3,efficientnet,weights,silu,winograd}.cpp
         "$root"/lib/cxr/runtime/{threads,allocator,device,blas,cpu}.cpp
         "$root/tests/parity/model_run.cpp")
echo "build-model-run: LibTorch $major.$minor ($torch_dir), $std, C++11 ABI $abi, ${libs[*]}"
printf '%s\n' "${sources[@]}" |
  xargs -P "$(nproc)" -I{} sh -c 'f="$1"; shift; exec "$@" -c "$f" -o "$0/obj/$(basename "$f" .cpp).o"' \
    "$out" {} "${CXX:-g++}" "${flags[@]}"
"${CXX:-g++}" "$out"/obj/*.o -o "$out/cxr-model-run" -L"$torch_dir/lib" -Wl,-rpath,"$torch_dir/lib" \
  -Wl,--no-as-needed "${libs[@]}" -Wl,--as-needed -ldl -pthread
echo "build-model-run: $out/cxr-model-run"
