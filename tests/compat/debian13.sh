#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
# gst-cxr on Debian 13 (trixie): LibTorch 2.6, GCC 14, OpenCV 4.10, GStreamer 1.26, DCMTK 3.6.9,
# in a chroot, next to this machine's Debian 12 build. Not part of the suite (it takes ~10 minutes
# and 3 GB); run it as root, with Debian's archive reachable, after tools/setup.sh:
#
#   tests/compat/debian13.sh [CHROOT]        # default /srv/gst-cxr-trixie
#
# It builds the plugin and tools there, runs the pipeline tests that need no Catch2 (trixie has
# Catch2 v3) and the parity interpreter (test_train, test_classify, test_bad_input, test_cli), and
# the demo on both systems, and compares the demo's probabilities (at most 1e-4 apart) and
# predicted classes (all equal), scan by scan.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
chroot_dir="${1:-/srv/gst-cxr-trixie}"
[ "$(id -u)" = 0 ] || { echo "debian13: run as root (debootstrap, chroot)" >&2; exit 1; }
[ -x "$root/build/tools/cxr" ] || { echo "debian13: build the Debian 12 side first (tools/setup.sh)" >&2; exit 1; }
mirror="$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
          awk '$1 !~ /security/ && $2 !~ /-/ {print $1; exit}')"
mirror="${mirror:-http://deb.debian.org/debian/}"

if [ ! -f "$chroot_dir/etc/debian_version" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  debootstrap --variant=minbase --include=ca-certificates trixie "$chroot_dir" "$mirror" >/dev/null
fi
mountpoint -q "$chroot_dir/proc" || mount --bind /proc "$chroot_dir/proc"
mountpoint -q "$chroot_dir/dev" || mount --bind /dev "$chroot_dir/dev"
mkdir -p "$chroot_dir/src"
mountpoint -q "$chroot_dir/src" || mount --bind "$root" "$chroot_dir/src"
trap 'umount "$chroot_dir/src" "$chroot_dir/dev" "$chroot_dir/proc" 2>/dev/null || true' EXIT

chroot "$chroot_dir" /bin/bash -euo pipefail -c '
export DEBIAN_FRONTEND=noninteractive
pkgs="meson ninja-build pkg-config g++ libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good libopencv-dev libpng-dev libdeflate-dev libjpeg62-turbo-dev
  libopenjp2-7-dev libdcmtk-dev dcmtk libtomlplusplus-dev libboost-dev gnuplot-nox libtorch-dev libopenblas0-pthread
  python3-torch python3-numpy python3-pydicom python3-pil"
dpkg-query -W $pkgs >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; }
[ -f /build/build.ninja ] || meson setup /build /src -Dtests=disabled --buildtype=release >/dev/null
ninja -C /build >/dev/null
export GST_PLUGIN_PATH_1_0=/build/plugins PATH=/build/tools:$PATH CXR_SAMPLES=/src/data/samples CXR_SOURCE_ROOT=/src \
  CXR_BUILD_ROOT=/build CXR_TOOLS=/build/tools CXR_PYTHON=python3 OMP_NUM_THREADS=2
cd /src
cxr --version
for t in test_train test_classify test_bad_input test_cli; do
  bash tests/pipelines/$t.sh >/tmp/$t.log 2>&1 || { tail -n 20 /tmp/$t.log; echo "debian13: $t FAILED"; exit 1; }
  echo "debian13: $t ok"
done
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
