#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# gst-cxr on Debian 13 (trixie): LibTorch 2.6, GCC 14, OpenCV 4.10, GStreamer 1.26, DCMTK 3.6.9,
# in a chroot, next to this machine's Debian 12 build. Not part of the suite (~15 minutes on 2
# vCPUs, 4 GB; with --cuda 2.4 GB more to fetch); run it as root, with Debian's archive
# reachable, after tools/setup.sh:
#
#   tests/compat/debian13.sh [--cuda] [CHROOT]   # default /srv/gst-cxr-trixie[-cuda]
#
# Without --cuda: runs tools/run-tests there, the README's test command: Debian 13's packages
# (LibTorch 2.6, Catch2 v3, torchvision 0.21 for the parity tests, Orthanc), the build, and the
# whole suite.
# With --cuda: builds with -Dlibtorch_dir against Debian 13's CUDA LibTorch (libtorch-cuda-dev,
# CUDA 12), which is what a GPU user does. Its cuDNN package downloads cuDNN from NVIDIA when it is
# installed, which fails without the internet: the build then links against a stub libcudnn.so.9
# made here from the symbols libtorch_cuda asks for (never called without a GPU). It checks that
# the build loads, falls back to the CPU when no GPU is present, and refuses device=cuda and
# precision=fp16 with a clear error.
# Both then run the demo there and here, and compare the probabilities (at most 1e-4 apart) and
# predicted classes (all equal), scan by scan.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cuda=0 suffix=""
if [ "${1:-}" = --cuda ]; then cuda=1 suffix=-cuda; shift; fi
chroot_dir="${1:-/srv/gst-cxr-trixie$suffix}"
[ "$(id -u)" = 0 ] || { echo "debian13: run as root (debootstrap, chroot)" >&2; exit 1; }
[ -x "$root/build/tools/cxr" ] || { echo "debian13: build the Debian 12 side first (tools/setup.sh)" >&2; exit 1; }
mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
          awk '$1 !~ /security/ && $2 !~ /-/ {print $1; exit}')"
mirror="${mirror:-http://deb.debian.org/debian/}"

if [ ! -f "$chroot_dir/etc/debian_version" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase --include=ca-certificates trixie "$chroot_dir" "$mirror" >/dev/null
fi
echo "deb $mirror trixie main contrib non-free" >"$chroot_dir/etc/apt/sources.list"
mountpoint -q "$chroot_dir/proc" || mount --bind /proc "$chroot_dir/proc"
mountpoint -q "$chroot_dir/dev" || mount --bind /dev "$chroot_dir/dev"
mkdir -p "$chroot_dir/src" "$chroot_dir/shared"
mountpoint -q "$chroot_dir/src" || mount --bind "$root" "$chroot_dir/src"
# The suite reads the shared scans beside the checkout (CXR_SHARED_DATA: /src/../shared/data).
if [ -d "$root/../shared" ] && ! mountpoint -q "$chroot_dir/shared"; then
  mount --bind -o ro "$root/../shared" "$chroot_dir/shared"
fi
trap 'umount "$chroot_dir/shared" "$chroot_dir/src" "$chroot_dir/dev" "$chroot_dir/proc" 2>/dev/null || true' EXIT

chroot "$chroot_dir" /usr/bin/env CUDA="$cuda" SUFFIX="$suffix" CHROOT_DIR="$chroot_dir" /bin/bash -euo pipefail -c '
export DEBIAN_FRONTEND=noninteractive
lib=/usr/lib/x86_64-linux-gnu
b=/build$SUFFIX
export GST_PLUGIN_PATH_1_0=$b/plugins PATH=$b/tools:$PATH CXR_SAMPLES=/src/data/samples CXR_SOURCE_ROOT=/src \
  CXR_BUILD_ROOT=$b CXR_TOOLS=$b/tools CXR_PYTHON=python3 OMP_NUM_THREADS=2
if [ "$CUDA" = 0 ]; then
  # A build folder left by an earlier version of this script may have the tests off.
  [ ! -f $b/build.ninja ] || meson configure $b -Dtests=enabled >/dev/null
  (cd /src && CXR_BUILD=$b tools/run-tests) >/tmp/run-tests.log 2>&1 ||
    { grep -E "^ *[0-9]+/[0-9]+ .*(FAIL|TIMEOUT|ERROR)|^(Ok|Fail|Timeout):" /tmp/run-tests.log; tail -n 30 /tmp/run-tests.log
      echo "debian13: tools/run-tests FAILED (log: $CHROOT_DIR/tmp/run-tests.log)"; exit 1; }
  echo "debian13: tools/run-tests: $(awk "/^Ok:/ {print \$2}" /tmp/run-tests.log) tests pass, none failed"
else
  pkgs="meson ninja-build pkg-config g++ libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
    gstreamer1.0-plugins-base gstreamer1.0-plugins-good libopencv-dev libpng-dev libdeflate-dev libjpeg62-turbo-dev
    libopenjp2-7-dev libdcmtk-dev dcmtk libtomlplusplus-dev libboost-dev gnuplot-nox libopenblas0-openmp
    python3-numpy python3-pydicom python3-pil"
  if [ ! -e $lib/libtorch_cuda.so ]; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
    # nvidia-cudnn fails to configure (it downloads cuDNN); the LibTorch files are unpacked all the same.
    apt-get install -y -qq --no-install-recommends libtorch-cuda-dev >/tmp/cuda-install.log 2>&1 || true
    [ -e $lib/libtorch_cuda.so ] || { tail -n 20 /tmp/cuda-install.log; exit 1; }
  fi
  mkdir -p /opt/cudnn-stub /opt/libtorch-cuda/lib /opt/libtorch-cuda/include
  nm -D --undefined-only $lib/libtorch_cuda.so | awk "{print \$2}" | sed "s/@.*//" | grep "^cudnn" | sort -u |
    awk "{print \"void \" \$1 \"(void) { __builtin_trap(); }\"}" >/opt/cudnn-stub/stub.c
  echo "libcudnn.so.9 { global: *; };" >/opt/cudnn-stub/version
  gcc -shared -fPIC -Wl,-soname,libcudnn.so.9 -Wl,--version-script=/opt/cudnn-stub/version \
    -o /opt/cudnn-stub/libcudnn.so.9 /opt/cudnn-stub/stub.c
  for d in ATen c10 torch caffe2; do ln -sfn /usr/include/$d /opt/libtorch-cuda/include/$d; done
  for l in torch torch_cpu c10 torch_cuda c10_cuda; do ln -sf $lib/lib$l.so /opt/libtorch-cuda/lib/lib$l.so; done
  export LD_LIBRARY_PATH=/opt/cudnn-stub
  [ -f $b/build.ninja ] || LDFLAGS="-Wl,-rpath-link,/opt/cudnn-stub" meson setup $b /src \
    -Dlibtorch_dir=/opt/libtorch-cuda -Dtests=disabled --buildtype=release | grep -E "LibTorch|ABI|compile as"
fi
ninja -C $b >/dev/null
cd /src
cxr --version
[ "$CUDA" = 0 ] || ldd $b/plugins/libgstcxr.so | grep -q libtorch_cuda || { echo "debian13: not linked to libtorch_cuda"; exit 1; }
if [ "$CUDA" = 1 ]; then
  for props in device=cuda precision=fp16; do
    msg="$(gst-launch-1.0 cxrscansrc location=data/samples/covid ! cxrdecode ! \
           cxrinfer model=data/models/kermany-efficientnet_b1/model.toml $props ! fakesink 2>&1 | grep "^ERROR: from element" || true)"
    case "$msg" in *"no CUDA device"*|*"needs a CUDA device"*) echo "debian13: $props without a GPU: ${msg#*: }" ;;
      *) echo "debian13: $props without a GPU gave no clear error: $msg"; exit 1 ;; esac
  done
fi
rm -rf /tmp/demo && cxr run pipelines/demo.toml --set output=/tmp/demo
'
out="$(mktemp -d)"
(cd "$root" && GST_PLUGIN_PATH_1_0="$root/build/plugins" build/tools/cxr run pipelines/demo.toml --set output="$out" >/dev/null)
/usr/bin/python3 - "$out/results.jsonl" "$chroot_dir/tmp/demo/results.jsonl" <<'PY'
import json, sys
rows = [{json.loads(l)["path"]: json.loads(l) for l in open(p)} for p in sys.argv[1:]]
a, b = rows
assert set(a) == set(b), "the two runs saw different scans"
worst, same = 0.0, 0
for k in a:
    worst = max([worst] + [abs(x - y) for x, y in zip(a[k]["probabilities"], b[k]["probabilities"])])
    same += a[k]["predicted"] == b[k]["predicted"]
print(f"debian13: demo, {len(a)} scans: max |probability difference| Debian 12 vs 13 {worst:.2e}, "
      f"same predicted class {same}/{len(a)}")
sys.exit(0 if worst <= 1e-4 and same == len(a) else 1)
PY
rm -rf "$out"
